"""The nas dashboard: `nas dashboard` runs this with Streamlit.

It only reads: short read-only queries through ``nas.dashboard.data`` (SQLite
opened read-only, so a running `nas run` is never blocked).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from nas.dashboard import data
from nas.errors import NasInputError
from nas.search.read.format import human_bytes, human_count
from nas.search.read.intervals import format_confirmed
from nas.search.read.results import format_score, score_objective
from nas.search.store.storage import DEFAULT_STORAGE, read_engine, redact

PLOT_UNITS = {"params": dict(tickformat="~s"), "bandwidth": dict(tickformat="~s", ticksuffix="B"),
              "bandwidth_expected": dict(tickformat="~s", ticksuffix="B"),
              "bandwidth_kept": dict(tickformat="~s", ticksuffix="B"), "latency_ms": dict(ticksuffix=" ms")}
LOG_AXES = ("params", "bandwidth", "bandwidth_expected", "bandwidth_kept")


@st.cache_resource
def _engine(url: str):
    return read_engine(url)


@st.cache_data(ttl=2, show_spinner=False)
def _candidates(url: str, study: str) -> pd.DataFrame:
    return data.candidates(_engine(url), study)


@st.cache_data(ttl=2, show_spinner=False)
def _directions(url: str, study: str) -> dict[str, str]:
    return data.directions(url, study)


@st.cache_data(ttl=2, show_spinner=False)
def _confirmed(url: str, study: str) -> pd.DataFrame:
    return data.confirmed(_engine(url), study, _candidates(url, study), _directions(url, study))


@st.cache_data(ttl=2, show_spinner=False)
def _progress(url: str, study: str) -> pd.DataFrame:
    return data.progress(_engine(url), study)


@st.cache_data(ttl=5, show_spinner=False)
def _search_quality(url: str, names: tuple[str, ...], study: str) -> dict | None:
    return data.search_quality(_engine(url), list(names), _directions(url, study))


def _axis(fig: go.Figure, metric: str, which: str, values: pd.Series | None = None) -> None:
    """Title and units; on a log axis (params, bandwidth) ticks of ``data.log_ticks`` over ``values``."""
    fmt = dict(PLOT_UNITS.get(metric, {}))
    update = fig.update_xaxes if which == "x" else fig.update_yaxes
    if metric in LOG_AXES and values is not None and len(values):
        ticks, labels = data.log_ticks(values.min(), values.max(), human_bytes if metric.startswith("bandwidth") else human_count)
        update(title=metric, type="log", tickmode="array", tickvals=ticks, ticktext=labels, tickformat=fmt["tickformat"])
    else:
        update(title=metric, **fmt)


CONFIRMED_MARKS = {  # data.confirmed's status -> legend text and marker (nas show's marking, drawn)
    "distinct": ("95 %: distinct", "star"),
    "indistinguishable": ("95 %: within the noise of a cheaper one", "circle-open"),
    "dominated": ("95 %: beaten by a cheaper one", "x"),
    "one seed": ("confirmed, one seed", "diamond-open"),
}


def front_chart(df: pd.DataFrame, x: str, y: str, dirs: dict[str, str], name: str = "",
                colour_by: str | None = None, confirmed: pd.DataFrame | None = None) -> go.Figure:
    """y against x: every complete candidate, the non-dominated ones highlighted and joined.

    ``colour_by``: a column of ``data.FAMILIES``; the points are then coloured by family (one legend entry
    each), Pareto-optimal ones outlined and larger, dominated ones faded. ``confirmed`` (``data.confirmed``):
    the candidates `nas confirm` trained with several seeds, drawn at their mean validation score with their
    95 % interval as an error bar, one marker per verdict of ``nas.search.read.intervals.significance``.
    """
    done = df[df["state"] == "COMPLETE"].copy()
    done["on the front"] = data.pareto_mask(done, dirs).loc[done.index]
    fig = go.Figure()
    rest = done[~done["on the front"]]
    front = done[done["on the front"]]
    hover = "trial %{customdata[0]}<br>%{customdata[1]}<br>" + x + " %{x:~s}<br>" + y + " %{y:.4g}<extra></extra>"
    two_d = data.pareto_mask(done, {y: dirs[y], x: dirs[x]}) if x in dirs and y in dirs else done["on the front"]
    f2 = done[two_d].sort_values(x)
    line = go.Scatter(x=f2[x], y=f2[y], mode="lines", name=f"{name} front in this plane".strip(),
                      line=dict(shape="hv", width=1.5, color="#444" if colour_by else None), hoverinfo="skip")
    if colour_by is None:
        fig.add_trace(go.Scatter(x=rest[x], y=rest[y], mode="markers", name=f"{name} dominated".strip(),
                                 marker=dict(color="lightgray", size=7), customdata=rest[["trial", "architecture"]],
                                 hovertemplate=hover))
        fig.add_trace(line)
        fig.add_trace(go.Scatter(x=front[x], y=front[y], mode="markers", name=f"{name} Pareto-optimal".strip(),
                                 marker=dict(size=10, line=dict(width=1, color="black")),
                                 customdata=front[["trial", "architecture"]], hovertemplate=hover))
    else:
        fig.add_trace(line)
        palette = px.colors.qualitative.Plotly
        for i, (family, part) in enumerate(done.groupby(colour_by)):  # sorted: FPE α 1, 2, 4; names A-Z
            colour = palette[i % len(palette)]
            on = part["on the front"].to_numpy()
            fig.add_trace(go.Scatter(
                x=part[x], y=part[y], mode="markers", name=f"{colour_by}: {family}", legendgroup=str(family),
                marker=dict(color=colour, size=[11 if o else 7 for o in on], opacity=[1.0 if o else 0.45 for o in on],
                            line=dict(width=[1 if o else 0 for o in on], color="black")),
                customdata=part[["trial", "architecture"]], hovertemplate=hover))
    if confirmed is not None and not confirmed.empty:
        conf = confirmed.merge(done[["trial", x, "architecture"]], on="trial")
        for status, (label, symbol) in CONFIRMED_MARKS.items():
            part = conf[conf["status"] == status]
            if part.empty:
                continue
            lo, hi = part["val_lo"].fillna(part["val_mean"]), part["val_hi"].fillna(part["val_mean"])
            fig.add_trace(go.Scatter(
                x=part[x], y=part["val_mean"], mode="markers", name=f"{name} {label}".strip(),
                marker=dict(symbol=symbol, size=12, color="#d62728", line=dict(width=1.5, color="#d62728")),
                error_y=dict(type="data", symmetric=False, array=(hi - part["val_mean"]).tolist(),
                             arrayminus=(part["val_mean"] - lo).tolist(), color="#d62728", thickness=1.5, width=5),
                customdata=part[["trial", "architecture", "seeds", "val_sd"]],
                hovertemplate="trial %{customdata[0]}<br>%{customdata[1]}<br>" + y + " %{y:.4g} ± %{customdata[3]:.2g}"
                              " over %{customdata[2]} seeds (bar: 95 % interval)<extra></extra>"))
    _axis(fig, x, "x", done[x])
    _axis(fig, y, "y", done[y])
    fig.update_layout(height=440, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def page() -> None:
    st.set_page_config(page_title="nas — Pareto dashboard", layout="wide")
    url = os.environ.get("NAS_STORAGE", DEFAULT_STORAGE)
    st.sidebar.title("nas")
    st.sidebar.caption(f"storage: `{redact(url)}`")
    live = st.sidebar.toggle("refresh every 5 s", value=True)

    try:
        engine = _engine(url)
        table = data.studies(engine, url)
    except NasInputError as exc:
        st.info(f"{exc}. This page refreshes on its own.")
        if live:
            st.fragment(lambda: None, run_every=5)()
        return
    if table.empty:
        st.info("No studies in this database yet: `nas run SPACE.yaml` writes them here.")
        return
    names = table["study"].tolist()
    study = st.sidebar.selectbox("study", names, index=len(names) - 1)

    @st.fragment(run_every=5 if live else None)
    def body() -> None:
        df = _candidates(url, study)
        dirs = _directions(url, study)
        show_study(url, study, df, dirs, names)

    body()


def show_study(url: str, study: str, df: pd.DataFrame, dirs: dict[str, str], names: list[str]) -> None:
    counts = df["state"].value_counts() if not df.empty else pd.Series(dtype=int)
    cols = st.columns(len(data.STATE_ORDER) + 1)
    for col, state in zip(cols, data.STATE_ORDER):
        col.metric(state.lower(), int(counts.get(state, 0)))
    acc = score_objective(dirs)
    done = df[df["state"] == "COMPLETE"] if not df.empty else df
    on_test = data.selected_on_test(df)
    cols[-1].metric(f"best {acc} ({'test' if on_test else 'val'})" if acc else "objectives",
                   format_score(acc, done[acc].max()) if acc and len(done) else "-")
    if on_test:
        st.warning(f"Scored by nas before 2026-12-07: this study's {acc} is the test split's, and its search selected "
                   "on it (an optimistic front). Run the space file again under a new --study name for a search "
                   "that selects on the validation split.")
    conf = _confirmed(url, study) if acc else None

    tabs = st.tabs(["Pareto fronts", "Progress", "What matters", "Candidates", "Compare", "Studies"])
    with tabs[0]:
        if done.empty:
            st.info("No complete candidates yet." + (" Every candidate so far failed: see Candidates."
                                                     if counts.get("FAIL", 0) else ""))
        elif acc:
            costs = [m for m in ("params", "bandwidth", "bandwidth_expected", "bandwidth_kept") if m in dirs]
            options = ["Pareto-optimal or not"] + list(data.FAMILIES)
            choice = st.selectbox("colour by", options, key="colour-by",
                                  help="; ".join(f"{k}: {v}" for k, v in data.FAMILIES.items()))
            colour_by = None if choice == options[0] else choice
            cols = st.columns(max(1, len(costs)))
            for col, cost in zip(cols, costs):
                col.plotly_chart(front_chart(df, cost, acc, dirs, colour_by=colour_by, confirmed=conf),
                                 key=f"front-{cost}")
            if conf is not None and not conf.empty:
                st.caption(f"Red: the candidates `nas confirm` trained with {int(conf['seeds'].max())} seeds, at their "
                           f"mean validation {acc} with its 95 % interval. Star: its interval lies above that of every "
                           "candidate at most as costly; open circle: within the noise of a cheaper one; cross: a "
                           "cheaper one is better beyond the noise.")
            else:
                st.caption(f"{acc}: the validation score of one training seed each (what the search selected on). "
                           f"`nas confirm {study}` trains the front with more seeds and draws their intervals here.")
            if len(dirs) >= 3:
                ms = list(dirs)[:3]
                d3 = done.assign(front=data.pareto_mask(done, dirs).loc[done.index].map({True: "Pareto-optimal",
                                                                                         False: "dominated"}))
                fig = px.scatter_3d(d3, x=ms[1], y=ms[2], z=ms[0], color="front", hover_data=["trial", "architecture"],
                                    color_discrete_map={"Pareto-optimal": "#d62728", "dominated": "lightgray"})
                fig.update_layout(height=520, margin=dict(l=0, r=0, t=30, b=0))
                st.plotly_chart(fig, key="front-3d")
    with tabs[1]:
        if not done.empty:
            hv = _progress(url, study).dropna(subset=["hypervolume"])
            if hv.empty:
                st.info("No hypervolume stored yet: nas run fixes the reference point after the first candidates.")
            else:
                st.plotly_chart(px.line(hv, x="epochs", y="hypervolume", markers=True, line_shape="hv",
                                        hover_data=["trial", "complete", "at"],
                                        title="hypervolume of the front against epochs trained (as nas run stored "
                                              "it, on the study's own reference point)"), key="hv")
            best = data.best_so_far(df, dirs)
            cols = st.columns(len(dirs))
            for col, m in zip(cols, dirs):
                fig = px.line(best, x="finished_at", y=m, title=f"best {m} so far", markers=True)
                _axis(fig, m, "y")
                col.plotly_chart(fig, key=f"best-{m}")
    with tabs[2]:
        what_matters(url, study, dirs, len(done))
    with tabs[3]:
        candidates_table(url, study, df, dirs, conf)
    with tabs[4]:
        compare(url, names, study)
    with tabs[5]:
        st.dataframe(data.studies(_engine(url), url), hide_index=True)


def what_matters(url: str, study: str, dirs: dict[str, str], n_done: int) -> None:
    if n_done < 3:
        st.info("Importances need at least 3 complete candidates.")
        return
    target = st.selectbox("objective", list(dirs), key="importance-target")
    if not st.toggle("compute parameter importances and parallel coordinates (Optuna's evaluators)",
                     key="importance-on"):
        return
    import optuna

    from nas.search.store.storage import optuna_storage

    s = optuna.load_study(study_name=study, storage=optuna_storage(url, read_only=True))
    i = list(dirs).index(target)
    try:
        sign = -1.0 if dirs[target] == "maximize" else 1.0  # Optuna's evaluator ranks for low target values
        with warnings.catch_warnings():  # its reminder that it ranks for low values: handled by `sign`
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
            imp = optuna.importance.get_param_importances(s, target=lambda t: sign * t.values[i])
        st.plotly_chart(px.bar(x=list(imp.values()), y=list(imp.keys()), orientation="h",
                               labels={"x": f"importance for {target}", "y": "parameter"}), key="imp")
    except (ValueError, RuntimeError) as exc:
        st.warning(f"importances unavailable: {exc}")
    fig = optuna.visualization.plot_parallel_coordinate(s, target=lambda t: t.values[i], target_name=target)
    st.plotly_chart(fig, key="parcoords")


def candidates_table(url: str, study: str, df: pd.DataFrame, dirs: dict[str, str],
                     conf: pd.DataFrame | None = None) -> None:
    if df.empty:
        st.info("No candidates yet.")
        return
    states = st.multiselect("state", data.STATE_ORDER, default=[s for s in data.STATE_ORDER if s in set(df["state"])])
    text = st.text_input("architecture contains", "")
    view = df[df["state"].isin(states)]
    if text:
        view = view[view["architecture"].str.contains(text, case=False, regex=False)]
    view = view.assign(pareto=data.pareto_mask(view, dirs))
    score = score_objective(dirs)
    extra = []
    if conf is not None and not conf.empty:
        said = conf.assign(**{
            "val over seeds": [format_confirmed(score, {"n": r.seeds, "mean": r.val_mean,
                                                        "sd": None if pd.isna(r.val_sd) else r.val_sd})
                               for r in conf.itertuples()],
            "test over seeds": [format_confirmed(score, {"n": r.seeds, "mean": r.test_mean,
                                                         "sd": None if pd.isna(r.test_sd) else r.test_sd})
                                for r in conf.itertuples()],
            "95 % front": [r.status if r.by is None or pd.isna(r.by) else f"{r.status} (trial {int(r.by)})"
                           for r in conf.itertuples()]})
        view = view.merge(said[["trial", "val over seeds", "test over seeds", "95 % front"]], on="trial", how="left")
        extra = ["val over seeds", "test over seeds", "95 % front"]
    cols = ["trial", "state", "pareto", "architecture", *[m for m in dirs if m in view],
            *[c for c in (f"test_{score}",) if c in view], *extra,
            *[c for c in ("latency_ms", "wall_time_s", "error") if c in view]]
    st.dataframe(view[cols], hide_index=True, key="candidates", column_config={
        "params": st.column_config.NumberColumn(format="compact"),
        "bandwidth": st.column_config.NumberColumn(format="compact"),
        "bandwidth_expected": st.column_config.NumberColumn(format="compact"),
        "bandwidth_kept": st.column_config.NumberColumn(format="compact"),
    })
    trial = st.selectbox("details of trial", view["trial"].tolist(), key="detail-trial")
    if trial is None:
        return
    d = data.detail(_engine(url), study, int(trial))
    if d is None:
        return
    left, right = st.columns(2)
    with left:
        st.markdown(f"**trial {trial}** · {d['state'].lower()} · arch_id `{d['arch_id']}`"
                    + (f" · trained in {d['wall_time_s']:.1f} s" if d["wall_time_s"] else ""))
        if d["error"]:
            st.error(d["error"])
        st.graphviz_chart(data.block_diagram(d["arch"]))
        st.json({"ArchSpec": d["arch"], "train": d["train"], "objectives": d["objectives"]}, expanded=False)
    with right:
        if d["curve"]:
            curve = pd.DataFrame(d["curve"])
            st.plotly_chart(curve_chart(curve), key="curve")
        exits = data.exit_table(d)
        if exits is not None:
            fig = px.bar(exits, x="head", y="samples", hover_data=[c for c in exits if c not in ("head", "samples")],
                         title="validation samples leaving at each head (early exit)"
                         if "test samples" in exits else "test samples leaving at each head (early exit)")
            fig.update_layout(height=280, margin=dict(l=0, r=0, t=40, b=0))
            st.plotly_chart(fig, key="exits")
            st.dataframe(exits, hide_index=True, key="exit-table")
        measures = data.interference_table(d)
        if measures is not None:
            st.markdown("**FPE interference** (the mean over the candidate's FPE pairs)")
            st.dataframe(measures, hide_index=True, key="interference-table")
            gram = data.feature_gram(d)
            if gram is not None:
                fig = px.imshow(gram, color_continuous_scale="Blues", labels=dict(x="input", y="input", color="|Gᵢⱼ|"),
                                title="|W1ᵀW1| of the first FPE pair: the inputs' Gram matrix")
                fig.update_layout(height=320, margin=dict(l=0, r=0, t=40, b=0))
                st.plotly_chart(fig, key="gram")
        export_button(url, study, int(trial), d)


def curve_chart(curve: pd.DataFrame) -> go.Figure:
    """The validation score per epoch (val_accuracy, or val_psnr in dB) and, on a right axis, the train loss."""
    score = next((c for c in ("val_accuracy", "val_psnr") if c in curve), None)
    fig = go.Figure()
    if score is not None:
        fig.add_scatter(x=curve["epoch"], y=curve[score], name=score, mode="lines+markers")
    if "train_loss" in curve:
        fig.add_scatter(x=curve["epoch"], y=curve["train_loss"], name="train_loss", mode="lines+markers", yaxis="y2")
    fig.update_layout(title="learning curve", xaxis_title="epoch",
                      yaxis_title=f"{score} (dB)" if score == "val_psnr" else score,
                      yaxis2={"title": "train_loss", "overlaying": "y", "side": "right", "showgrid": False})
    return fig


def export_button(url: str, study: str, trial: int, d: dict) -> None:
    if d["state"] != "COMPLETE":
        return
    try:
        from nas.exporter import export_candidate
    except ImportError:  # the export part is not installed in this version
        return
    if st.button("prepare export", key=f"export-{trial}"):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{study}-trial{trial}"
            try:
                export_candidate(url, study, out, trial=trial)
            except NasInputError as exc:
                st.error(str(exc))
                return
            archive = shutil.make_archive(str(out), "zip", out)
            payload = io.BytesIO(Path(archive).read_bytes())
        st.download_button("download the exported module (.zip)", payload, file_name=f"{study}-trial{trial}.zip",
                           mime="application/zip", key=f"download-{trial}")


def compare(url: str, names: list[str], study: str) -> None:
    # keyed by the study shown: choosing another study starts its comparison from that study
    others = st.multiselect("studies", names, default=[study], max_selections=4, key=f"compare-{study}")
    if len(others) < 1:
        return
    # the selected study's score; studies scored by another one are left out
    score = score_objective(_directions(url, study)) or "accuracy"
    frames = []
    for name in others:
        df = _candidates(url, name)
        dirs = _directions(url, name)
        if df.empty or not {score, "params"} <= set(dirs) or score not in df.columns:
            continue
        done = df[df["state"] == "COMPLETE"]
        front = done[data.pareto_mask(done, {score: dirs[score], "params": dirs["params"]}).loc[done.index]]
        frames.append(front.assign(study=name).sort_values("params"))
    if not frames:
        st.info(f"No complete candidates with {score} and params to compare.")
        return
    both = pd.concat(frames)
    fig = px.line(both, x="params", y=score, color="study", markers=True, line_shape="hv",
                  hover_data=["trial", "architecture"], log_x=True, title=f"{score} against params: fronts")
    _axis(fig, "params", "x", both["params"])
    st.plotly_chart(fig, key="compare-chart")
    search_quality(url, [n for n in others if _directions(url, n) == _directions(url, study)], study)


def search_quality(url: str, names: list[str], study: str) -> None:
    """Hypervolume against training spent, as `nas compare` prints it, for the studies with study's objectives."""
    quality = _search_quality(url, tuple(names), study)
    if quality is None:
        return
    curves = pd.DataFrame([{**p, "study": s["study"]} for s in quality["studies"] for p in s["curve"]])
    ref = ", ".join(f"{m} {v:.4g}" for m, v in quality["reference"].items())
    fig = px.line(curves, x="epochs", y="hypervolume", color="study", markers=True, line_shape="hv",
                  hover_data=["trial", "complete"], title=f"hypervolume against epochs trained (reference {ref})")
    st.plotly_chart(fig, key="compare-hv")
    first = quality["studies"][0]["study"]
    st.dataframe(pd.DataFrame([{
        "study": s["study"], "sampler": s["sampler"], "complete": s["complete"], "early stopped": s["early_stopped"],
        "epochs": s["epochs"], "hypervolume": round(s["hypervolume"], 4),
        f"epochs to {first}'s hypervolume": s["epochs_to_first"],
        "ratio": None if s["compute_ratio"] is None else round(s["compute_ratio"], 3),
    } for s in quality["studies"]]), hide_index=True, key="compare-table")


page()
