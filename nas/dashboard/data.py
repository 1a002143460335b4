"""What the dashboard reads: short read-only queries, turned into pandas frames.

Reads through ``nas.search.read.results`` (nas's tables with short read-only
queries, Optuna's through its public API on a read-only storage); never writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import moocore
import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from nas.evaluators.names import FIRST_VALIDATION_VERSION, evaluator_version
from nas.search.read import intervals
from nas.search.read.format import human_count
from nas.spaces.stages import (BlockStage, HeadStage, LiftStage, PoolStage, TokenStage, activation_words, stage,
                               stages, summary, weights_words)

STATE_ORDER = ["COMPLETE", "FAIL", "PRUNED", "RUNNING", "QUEUED"]  # QUEUED: handed to the workers, not yet taken
LISTS = ("exit_counts", "exit_bytes", "test_exit_counts")  # per-head lists among the objectives, not columns


def studies(engine: Engine, url: str) -> pd.DataFrame:
    """Every study: state of its last run, counts per candidate state, objectives, start time. The studies and
    their objectives are Optuna's (its public API, read-only), the rest nas's tables: both through
    ``nas.search.read.results``."""
    from nas.search.read.results import state_counts, study_names

    counts, runs = state_counts(engine)
    names = study_names(url) if counts or runs else []
    rows = []
    for name in names:
        state, started = runs.get(name, ("-", None))
        rows.append({"study": name, "state": state.lower(),
                     **{s: counts.get(name, {}).get(s, 0) for s in STATE_ORDER},
                     "objectives": ", ".join(f"{m} ({d[:3]})" for m, d in directions(url, name).items()),
                     "started": started})
    return pd.DataFrame(rows, columns=["study", "state", *STATE_ORDER, "objectives", "started"])


def directions(url: str, study: str) -> dict[str, str]:
    """metric -> maximize | minimize, in the study's order: Optuna's, through its public API on a read-only
    storage (``nas.search.read.results.study_directions``)."""
    from nas.search.read.results import study_directions

    return study_directions(url, study)


def candidates(engine: Engine, study: str) -> pd.DataFrame:
    """One row per candidate: number, state, every parameter, every measured objective, and more."""
    from nas.search.read.results import candidate_rows

    rows = candidate_rows(engine, study)
    if not rows:
        return pd.DataFrame(columns=["trial", "state"])
    base = pd.DataFrame({
        "trial": [r[0] for r in rows],
        "state": [r[1] for r in rows],
        "wall_time_s": [r[5] for r in rows],
        "error": [r[6] for r in rows],
        "reused": [r[7] is not None for r in rows],
        "worker": [r[8] for r in rows],
        "created_at": pd.to_datetime([r[9] for r in rows], utc=True),
        "finished_at": pd.to_datetime([r[10] for r in rows], utc=True),
        "evaluator": [evaluator_version(r[11]) for r in rows],  # < 3: its score is a test score (names.py)
    })
    params = pd.DataFrame.from_records([r[2] or {} for r in rows]).add_prefix("p:")
    objs = pd.DataFrame.from_records([{k: v for k, v in (r[3] or {}).items() if k not in LISTS}
                                      for r in rows])  # the exit histograms are the drill-down's (exit_table)
    archs = [r[4] or {} for r in rows]
    keys = [json.dumps(a, sort_keys=True) for a in archs]
    words = {k: (describe(a), families(a)) for k, a in dict(zip(keys, archs)).items()}  # each distinct one once
    said = [words[k] for k in keys]
    base["architecture"] = [w for w, _ in said]
    fams = pd.DataFrame.from_records([f for _, f in said], index=base.index)
    return pd.concat([base, fams, params, objs], axis=1)


FAMILIES = {  # the front's colour selector: label -> what each candidate's ArchSpec says
    "lift": "hourglass (bottleneck narrower than the residual stream, d_h < d_z) or conventional (d_h ≥ d_z), "
            "with its lift",
    "FPE α": "FPE children per neuron (1: dense)",
    "MoE experts": "experts in each block (1: a dense pair)",
    "mixer": "the token mixer (none: a flat MLP)",
    "weights": "the form of each block's W1 and W2 (dense, lowrank, circulant, monarch)",
    "connections": "how the blocks read the stream (residual, gated_dense: every earlier stream through a gate)",
    "activation": "the activation, with 'per neuron' where each unit has its own parameters",
    "exits": "early exit: a head after every k-th block (0: none)",
}


def families(arch: dict[str, Any]) -> dict[str, Any]:
    """The families a candidate belongs to, one text per ``FAMILIES`` key (the seed ideas it uses)."""
    parts = stages(arch)
    blocks = stage(parts, BlockStage)
    return {
        "lift": f"{'hourglass' if blocks.hourglass else 'conventional'} ({stage(parts, LiftStage).name})",
        "FPE α": blocks.fpe_alpha,
        "MoE experts": blocks.experts,
        "mixer": blocks.mixer,
        "weights": blocks.weights,
        "connections": blocks.connections,
        "activation": activation_words(blocks),
        "exits": stage(parts, HeadStage).exits,
    }


def log_ticks(lo: float, hi: float, fmt=human_count, most: int = 7) -> tuple[list[float], list[str]]:
    """Tick values and labels for a log axis over [lo, hi]: 1-2-5 steps per decade; whole decades where those
    would be more than ``most``; 1..9 per decade where they would be fewer than 2; else lo and hi themselves.
    Labels by ``fmt`` (``human_count``: "200k"; ``human_bytes``: "1.5 MB", as the tables write them), so
    neighbouring labels never run into each other as Plotly's own minor log ticks do ("400k500k600k700k800k1MB")."""
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0:
        return [], []

    def at(steps: tuple[int, ...]) -> list[float]:
        decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
        return [m * 10.0 ** e for e in decades for m in steps if lo <= m * 10.0 ** e <= hi]

    values = at((1, 2, 5))
    if len(values) > most and len(at((1,))) >= 2:
        values = at((1,))
    elif len(values) < 2:
        values = at(tuple(range(1, 10)))
        if len(values) < 2:
            values = sorted({lo, hi})
    return values, [fmt(v) for v in values]



def search_quality(engine: Engine, names: list[str], dirs: dict[str, str]) -> dict[str, Any] | None:
    """``nas compare``'s figures for ``names`` (hypervolume against epochs trained, on one reference point
    derived from all of them), read with the dashboard's read-only engine; None without complete candidates."""
    from nas.search.read.results import compare_rows, finished

    series = {name: finished(engine, name) for name in names}
    if not any(r.state == "COMPLETE" for rows, _ in series.values() for r in rows):
        return None
    return compare_rows(series, dirs)


def describe(arch: dict[str, Any]) -> str:
    """A one-line architecture: 'fixed_random 1024 | 64×3 gelu batchnorm', 'conventional | 256×2 ...',
    with the mixer, experts and FPE when the candidate has them (``nas.spaces.stages.summary``)."""
    return summary(arch)


def pareto_mask(df: pd.DataFrame, dirs: dict[str, str]) -> pd.Series:
    """True for the complete candidates no other complete candidate dominates."""
    mask = pd.Series(False, index=df.index)
    done = df[df["state"] == "COMPLETE"]
    if done.empty or not dirs:
        return mask
    values = done[list(dirs)].to_numpy(dtype=float)
    nd = moocore.is_nondominated(values, maximise=[d == "maximize" for d in dirs.values()], keep_weakly=True)
    mask.loc[done.index[nd]] = True
    return mask


def selected_on_test(df: pd.DataFrame) -> bool:
    """Whether the study's complete candidates were scored by nas before 2026-12-07 (evaluator < 3), whose search
    selected on the test split (``nas.evaluators.names``)."""
    if df.empty or "evaluator" not in df:
        return False
    done = df[df["state"] == "COMPLETE"]
    return bool((done["evaluator"] < FIRST_VALIDATION_VERSION).any())


CONFIRMED_COLUMNS = ["trial", "seeds", "val_mean", "val_sd", "val_lo", "val_hi", "test_mean", "test_sd", "status",
                     "by"]


def confirmed(engine: Engine, study: str, df: pd.DataFrame, dirs: dict[str, str]) -> pd.DataFrame:
    """The candidates ``nas confirm`` trained with several seeds: per trial the seeds, the validation score's
    mean, sd and 95 % interval, the test score's mean and sd, and what the intervals say against the other
    confirmed candidates (``nas.search.read.intervals.significance``: distinct, indistinguishable, dominated, with
    the trial it is compared with), as ``nas show`` marks them."""
    from nas.search.read.results import (by_candidate, confirmed_costs, identities, identity, read_confirmations,
                                         score_objective)

    score = score_objective(dirs)
    seeds = read_confirmations(engine, study) if score else {}
    done = df[df["state"] == "COMPLETE"].set_index("trial") if not df.empty else df
    if not seeds or done.empty:
        return pd.DataFrame(columns=CONFIRMED_COLUMNS)
    ids = identities(engine, study)  # each trial's training, so a reused candidate reads its original's seeds
    by_id = by_candidate(seeds, ids)
    rows, entries = [], {}
    for number in done.index:
        got = by_id.get(identity(ids[number])) if number in ids else None
        if not got:
            continue
        conf = intervals.confirmed([o for _, o in got], [s for s, _ in got], score)
        values = {m: float(done.at[number, m]) for m in dirs if m in done.columns and pd.notna(done.at[number, m])}
        entries[number] = {"interval": conf["val"], "id": identity(ids[number]),
                           "costs": confirmed_costs({"confirmed": conf, "values": values}, dirs, score)}
        ci = conf["val"]["ci95"] or [None, None]
        rows.append({"trial": number, "seeds": conf["seeds"], "val_mean": conf["val"]["mean"],
                     "val_sd": conf["val"]["sd"], "val_lo": ci[0], "val_hi": ci[1],
                     "test_mean": conf["test"]["mean"], "test_sd": conf["test"]["sd"]})
    marks = intervals.significance(entries, score, dirs) if entries else {}
    for r in rows:
        mark = marks.get(r["trial"], {"status": "one seed", "by": None})
        r["status"], r["by"] = mark["status"], mark["by"]
    return pd.DataFrame(rows, columns=CONFIRMED_COLUMNS)


def progress(engine: Engine, study: str) -> pd.DataFrame:
    """The history ``nas run`` stored (``nas_progress``): after each finished candidate, the hypervolume of
    the front on the study's own reference point (``nas.search.quality``; None until it was fixed) and the
    epochs trained so far. Columns: trial, complete, epochs, hypervolume, at."""
    from nas.search.read.results import progress_rows

    rows = progress_rows(engine, study)
    if not rows:
        return pd.DataFrame(columns=["trial", "complete", "epochs", "hypervolume", "at"])
    return pd.DataFrame({"trial": [r[0] for r in rows], "complete": [r[1] for r in rows],
                         "epochs": [r[2] for r in rows], "hypervolume": [r[3] for r in rows],
                         "at": pd.to_datetime([r[4] for r in rows], utc=True)})


def best_so_far(df: pd.DataFrame, dirs: dict[str, str]) -> pd.DataFrame:
    """For each objective, the best value among the candidates finished so far."""
    done = df[df["state"] == "COMPLETE"].sort_values("finished_at")
    out = pd.DataFrame({"finished_at": done["finished_at"].to_numpy(), "trial": done["trial"].to_numpy()})
    for m, d in dirs.items():
        col = done[m].astype(float)
        out[m] = (col.cummax() if d == "maximize" else col.cummin()).to_numpy()
    return out


def detail(engine: Engine, study: str, trial: int) -> dict[str, Any] | None:
    """Everything about one candidate: ArchSpec, training settings, curve, objectives, error, weights."""
    from nas.search.read.results import candidate_detail

    return candidate_detail(engine, study, trial)


def exit_table(d: dict[str, Any]) -> pd.DataFrame | None:
    """A candidate's exit histogram (``detail``): one row per head, exit heads first, the final head last, with
    the block it reads after, the validation samples that left there (``exit_counts``; the test split's before
    evaluator 3), their share, the test samples that left there (``test samples``, since evaluator 3) and the
    bytes each of them moved (``nas.spaces.cost.exit_costs``); None for a candidate without exits or not yet
    measured."""
    counts = (d.get("objectives") or {}).get("exit_counts")
    if not counts:
        return None
    head = stage(stages(d["arch"]), HeadStage)
    after = [(j + 1) * head.exits for j in range(len(counts) - 1)] + [int(d["arch"].get("depth", 0))]
    total = sum(counts) or 1
    out = pd.DataFrame({"head": [f"exit {j + 1}" for j in range(len(counts) - 1)] + ["final"],
                        "after block": after, "samples": counts, "share": [c / total for c in counts]})
    test = d["objectives"].get("test_exit_counts")
    if test and len(test) == len(counts):
        out["test samples"] = test
    stored = d["objectives"].get("exit_bytes")  # measured on the trained model (its pruned connections gone)
    if stored and len(stored) == len(counts):
        out["bytes per sample"] = stored
        return out
    try:  # stored before exit_bytes: this cost model's prefixes of the model as built
        from nas.spaces import ArchSpec, bandwidth_bytes, exit_costs

        out["bytes per sample"] = [bandwidth_bytes(c) for c in exit_costs(ArchSpec.from_json(d["arch"]))]
    except (ValueError, TypeError):  # an arch this nas cannot build: the counts alone
        pass
    return out


def interference_table(d: dict[str, Any]) -> pd.DataFrame | None:
    """An FPE candidate's interference measures (``nas.spaces.fpe.interference``, the mean over its FPE pairs):
    feature capacity and the mean |cos| between the hidden neurons' input weights, of the dense W1 when it
    expanded and of the expanded W1; None for a candidate without them."""
    o = d.get("objectives") or {}
    rows = [("feature capacity", "fpe_capacity"), ("mean |cos| of neurons' input weights", "fpe_abs_cos")]
    if not all(k in o and k + "_dense" in o for _, k in rows):
        return None
    return pd.DataFrame({"measure": [name for name, _ in rows],
                         "dense (at the expansion)": [o[k + "_dense"] for _, k in rows],
                         "expanded (scored model)": [o[k] for _, k in rows]})


def feature_gram(d: dict[str, Any]) -> np.ndarray | None:
    """|W1ᵀ W1| of the candidate's first FPE pair as trained (W1 ⊙ mask1, read from its stored weights): the
    inputs' Gram matrix, the FPE paper's picture (block-diagonal when the children read disjoint groups of
    inputs); None without stored weights or an expanded FPE pair."""
    path = d.get("weights_path")
    if not path or not Path(path).is_file():
        return None
    from safetensors.numpy import load_file

    state = load_file(path)
    key = next((k for k in sorted(state) if k.endswith("ffn.mask1")), None)
    if key is None:
        return None
    w = state[key[:-len("mask1")] + "w1"].astype(np.float64) * state[key]
    return np.abs(w.T @ w)


def block_diagram(arch: dict[str, Any]) -> str:
    """The candidate's structure as Graphviz DOT, a node per stage (``nas.spaces.stages``; labels are numbers
    and registry names only)."""
    parts = stages(arch)
    lines = ["digraph G {", "rankdir=LR; node [shape=box, style=rounded, fontsize=10];",
             f'x [label="input\\n{parts[0].d_in}", shape=ellipse];']
    prev, mixed, head = "x", stage(parts, TokenStage) is not None, stage(parts, HeadStage)

    def node(name: str, label: str) -> None:
        nonlocal prev
        lines.extend([f'{name} [label="{label}"];', f"{prev} -> {name};"])
        prev = name

    for s in parts:
        if isinstance(s, TokenStage):
            node("tok", f"cut into tokens\\npatch {s.patch}")
        elif isinstance(s, LiftStage) and s.name != "none":
            node("lift", f"{s.name} lift\\n{'each token' if mixed else f'{s.d_in} → {s.d_out}'}")
        elif isinstance(s, BlockStage):
            inner = f"W1 {s.d_z}→{s.d_h * s.fpe_alpha} → {s.activation} → W2"
            if s.fpe_alpha > 1:
                inner = f"FPE α{s.fpe_alpha} ({s.fpe_split}): " + inner
            if s.weights != "dense":
                inner = f"{weights_words(s, short=True)}: " + inner
            if s.experts > 1:
                inner = f"{s.experts} experts, top-{s.top_k}: " + inner
            mix = f"{s.mixer}{f' k{s.kernel}' if s.kernel else ''} mixer + skip\\n" if s.mixer != "none" else ""
            shown = min(s.depth, 3)
            for i in range(shown):
                name = f"block {i + 1}" if shown == s.depth or i < shown - 1 else f"blocks {i + 1}…{s.depth}"
                end = f" → {head.d_out} + b2" if i == shown - 1 and head.w2 else "\\n+ skip"  # w2: no skip
                node(f"b{i}", f"{name}\\n{mix}{s.norm} → {inner}{end}")
        elif isinstance(s, PoolStage):
            node("pool", "mean over tokens")
        elif isinstance(s, HeadStage):
            exits = f"\\n+ {s.n_exits} exit heads (every {s.exits} blocks, p ≥ {s.threshold:g})" if s.exits else ""
            label = ("output: the last block's W2" if s.w2 else "output: the stream itself") if not s.linear else "head"
            node("head", f"{label}\\n{s.d_in} → {s.d_out}{exits}")
    lines.append("}")
    return "\n".join(lines)
