"""The command line: the one place that wires nas's parts together for a person.

Bad input (a space file, a dataset, an option, a storage URL) prints one
message naming the place and exits with code 2; nothing is written.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from nas.search.store.storage import DEFAULT_STORAGE
from nas.errors import NasInputError

app = typer.Typer(
    name="nas",
    help="Neural-architecture search for hourglass MLPs, FPE, learnable activations, MoE and token mixers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(width=None if sys.stdout.isatty() else 160)  # piped tables: wide, not squeezed to 80
err = Console(stderr=True)

StorageOpt = typer.Option(DEFAULT_STORAGE, "--storage", help="Database URL: sqlite:///FILE or postgresql+psycopg://...")


class Format(str, enum.Enum):
    table = "table"
    json = "json"


@app.command()
def run(
    space_file: Path = typer.Argument(..., help="The space file (YAML).", show_default=False),
    storage: str = StorageOpt,
    study: Optional[str] = typer.Option(None, help="Study name (default: the space file's `name`)."),
    trials: Optional[int] = typer.Option(None, help="Completed candidates to reach (default: search.trials)."),
    workers: Optional[int] = typer.Option(None, help="Ray workers training at once (default: search.workers; without it 1, or 8 per GPU where Ray sees GPUs)."),
    address: Optional[str] = typer.Option(None, help="Join this Ray cluster (default: start a local Ray on 127.0.0.1)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an existing study (an error if there is none)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the live progress display."),
    weights: bool = typer.Option(True, "--weights/--no-weights",
                                 help="Keep each candidate's trained weights (--no-weights: nothing to export)."),
    timeout: Optional[str] = typer.Option(None, help="A wall-clock budget (default: search.timeout): seconds or "
                                          "e.g. 30m, 2h; no candidate starts after it, those running finish."),
) -> None:
    """Search the space in SPACE_FILE; results go to the database."""
    from nas.errors import NasRunFailed
    from nas.search.execution.driver import RunOptions
    from nas.search.execution.driver import run as run_study
    from nas.search.store.storage import redact
    from nas.spaces import load_space

    from nas.spaces.rules import seconds_of

    space = load_space(space_file)
    budget = timeout if timeout is not None else space.search.timeout
    try:
        timeout_s = seconds_of(budget) if budget is not None else None
    except ValueError as exc:
        raise NasInputError(f"--timeout: {exc}") from None
    opts = RunOptions(storage=storage, study=study, trials=trials, workers=workers, address=address,
                      resume=resume, progress=progress, weights=weights, timeout_s=timeout_s)
    try:
        summary = run_study(space, opts)
    except NasRunFailed as exc:
        err.print(f"nas: run failed: {exc}", highlight=False)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        err.print("nas: interrupted; completed candidates are kept. Run the same command again to resume.")
        raise typer.Exit(130)
    ended = {"timeout": "; the time budget ended the run", "converged": "; the sampler converged (it only "
             "proposed architectures already trained)"}.get(summary.ended_by, "")
    print(
        f"nas: study {summary.study}: {summary.complete + summary.stopped}/{summary.trials_target} candidates:"
        f" {summary.complete} complete ({summary.reused} reused), {summary.stopped} stopped early,"
        f" {summary.failed} failed,"
        + (f" {summary.infeasible} infeasible (untrained)," if summary.infeasible else "")
        + f" Pareto front of {summary.pareto}{ended},"
        f" {summary.wall_time_s:.0f} s, in {redact(storage)}\n"
        + (f"nas: confirmed the front's {len(summary.confirmed.trials)} candidate(s) with "
           f"{summary.confirmed.seeds} seeds each ({summary.confirmed.trained} trainings, "
           f"{summary.confirmed.failed} failed)\n" if summary.confirmed is not None else "")
        + f"nas: next: nas show {summary.study}" + ("" if storage == DEFAULT_STORAGE else f" --storage '{redact(storage)}'"),
        file=sys.stderr,
    )


@app.command("ls")
def ls(storage: str = StorageOpt, format: Format = typer.Option(Format.table, "--format")) -> None:
    """List the studies in the database with their candidate counts."""
    from nas.search.read.results import format_score, list_studies

    rows = list_studies(storage)
    if format is Format.json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        err.print("no studies yet: run `nas run SPACE.yaml`")
        return
    table = Table()
    for col in ("study", "state", "complete", "failed", "pruned", "running", "queued", "best (val)", "objectives",
                "started"):
        table.add_column(col, no_wrap=col in ("best (val)", "started"))
    for r in rows:
        c = r["counts"]
        best = format_score(r["score"], r["best"]) if r["best"] is not None else "-"
        table.add_row(
            r["study"], r["state"], str(c["COMPLETE"]), str(c["FAIL"]), str(c["PRUNED"]), str(c["RUNNING"]),
            str(c.get("QUEUED", 0)),
            best + (" (test: before 2026-12-07)" if r["selection"] == "test" and r["best"] is not None else ""),
            ", ".join(f"{m} ({'max' if d == 'maximize' else 'min'})" for m, d in r["objectives"].items()),
            r["started"] or "-",
        )
    out.print(table)


@app.command()
def compare(
    studies: list[str] = typer.Argument(..., help="Studies to compare; the first is the baseline."),
    storage: str = StorageOpt,
    reference: list[str] = typer.Option(
        [], "--reference", help="METRIC=VALUE, once per objective: the hypervolume's reference point "
        "(default: derived from all the studies' complete candidates)."),
    format: Format = typer.Option(Format.table, "--format", help="table, or json with every curve."),
) -> None:
    """Compare studies: hypervolume of the front against the training it took."""
    from nas.search.read.results import compare as compare_studies

    ref = {}
    for item in reference:
        key, sep, value = item.partition("=")
        try:
            ref[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise NasInputError(f"--reference {item!r}: expected METRIC=NUMBER, e.g. params=2000000")
    report = compare_studies(storage, studies, ref or None)
    if format is Format.json:
        print(json.dumps(report, indent=2, default=str))
        return
    ref_text = ", ".join(f"{m} {v:.4g}" for m, v in report["reference"].items())
    table = Table(title=f"hypervolume against training (reference point: {ref_text})")
    for col in ("study", "sampler", "complete", "early stopped", "epochs", "hypervolume",
                f"epochs to {studies[0]}'s", "compute ratio"):
        table.add_column(col, justify="left" if col in ("study", "sampler") else "right")
    for s in report["studies"]:
        table.add_row(s["study"], s["sampler"] or "-", str(s["complete"]), str(s["early_stopped"]), str(s["epochs"]),
                      f"{s['hypervolume']:.4f}", "-" if s["epochs_to_first"] is None else str(s["epochs_to_first"]),
                      "-" if s["compute_ratio"] is None else f"{s['compute_ratio']:.2f}")
    out.print(table)


@app.command()
def show(
    study: str = typer.Argument(..., help="The study's name (see `nas ls`)."),
    storage: str = StorageOpt,
    format: Format = typer.Option(Format.table, "--format", help="table: the Pareto front; json: every trial."),
    all_trials: bool = typer.Option(False, "--all", help="Table of every trial, not only the Pareto front."),
) -> None:
    """Show a study: its Pareto-optimal candidates (table) or every trial (JSON)."""
    from nas.search.read.format import human_bytes, human_count
    from nas.search.read.intervals import format_confirmed
    from nas.search.read.results import format_score, score_objective, study_report
    from nas.spaces.stages import summary

    report = study_report(storage, study)
    if format is Format.json:
        print(json.dumps(report, indent=2, default=str))
        return
    metrics = list(report["directions"])
    rows = [t for t in report["trials"] if all_trials or t["pareto"]]
    score = score_objective(metrics) or "accuracy"  # the score column: accuracy, or psnr for an image task
    key = score if score in metrics else (metrics[0] if metrics else None)
    if key:
        sign = -1 if report["directions"][key] == "maximize" else 1
        rows.sort(key=lambda t: sign * t["values"].get(key, float("inf") * sign))
    old = report["selection"] == "test"
    title = f"{study}: " + (f"{len(rows)} trials" if all_trials else f"Pareto front, {len(rows)} of "
                            f"{sum(t['state'] == 'COMPLETE' for t in report['trials'])} complete")
    if old:
        title += " (scored by nas before 2026-12-07: the search selected on the test split)"
    confirmed = not old and any("confirmed" in t for t in rows)  # nas confirm refuses a study scored on test
    table = Table(title=title)
    # the bytes column: the study's own bandwidth objective (the exits' expected or the kept connections' bytes)
    moved = next((m for m in ("bandwidth_expected", "bandwidth_kept") if m in metrics), "bandwidth")
    val_col, test_col = (f"{score} (test)", "-") if old else (f"{score} (val)", "test")
    columns = ["trial", "state", "architecture", val_col] + ([test_col] if not old else []) + (
        ["95 % front"] if confirmed else []) + ["params", moved.replace("_", " "), "latency", "train s"]
    for col in columns:
        table.add_column(col, justify="right" if col not in ("state", "architecture", "95 % front") else "left")
    for t in rows:
        m = t["measured"] or t["values"]
        arch = summary(t["params"])
        conf = t.get("confirmed") if confirmed else None
        value = t["values"].get(score, m.get(score))
        cells = [str(t["number"]), t["state"].lower() + (" (reused)" if t.get("reused") else ""), arch.strip()]
        if conf:
            cells.append(format_confirmed(score, conf["val"]))
            cells.append(format_confirmed(score, conf["test"]))
        else:
            cells.append(format_score(score, value) if value is not None else "-")
            if not old:
                test = t.get("test", {}).get(score)
                cells.append(format_score(score, test) if test is not None else "-")
        if confirmed:
            mark = t.get("significance")
            cells.append("-" if mark is None else {"distinct": "distinct",
                                                   "indistinguishable": f"≈ trial {mark['by']}",
                                                   "dominated": f"beaten by trial {mark['by']}"}[mark["status"]])
        cells += [human_count(m["params"]) if "params" in m else "-",
                  human_bytes(m[moved]) if moved in m else "-",
                  f"{m['latency_ms']:.3f} ms" if "latency_ms" in m else "-",
                  f"{t['wall_time_s']:.1f}" if t.get("wall_time_s") else "-"]
        table.add_row(*cells)
        if t["error"] and all_trials:
            table.add_row("", "", f"[red]{t['error']}[/]", *([""] * (len(columns) - 3)))
    out.print(table)
    if confirmed:
        out.print(f"Confirmed rows: {score} mean ± sd over the `nas confirm` seeds (validation, then test). 95 % front: "
                  "distinct = its 95 % interval lies above every candidate's at most as costly; ≈ trial N = "
                  "indistinguishable from the cheaper trial N; beaten by trial N = trial N costs no more and its "
                  "interval lies wholly above.", highlight=False)
    elif not old and rows:
        out.print(f"{score} (val): the validation score every selection reads; test: for the record. One seed each: "
                  f"`nas confirm {study}` trains the front with more seeds for intervals.", highlight=False)


@app.command()
def confirm(
    study: str = typer.Argument(..., help="The study's name (see `nas ls`).", show_default=False),
    seeds: int = typer.Option(5, "--seeds", help="Training seeds per candidate (at least 2)."),
    front: bool = typer.Option(False, "--front", help="Confirm the study's Pareto front (the default)."),
    trial: list[int] = typer.Option([], "--trial", help="Confirm this trial (repeatable) instead of the front.",
                                    show_default=False),
    workers: Optional[int] = typer.Option(None, help="Ray workers training at once (default: 1, or 8 per GPU)."),
    address: Optional[str] = typer.Option(None, help="Join this Ray cluster (default: a local Ray on 127.0.0.1)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="A line per finished training."),
    storage: str = StorageOpt,
) -> None:
    """Train chosen candidates of STUDY again with more seeds: mean ± sd and 95 % intervals of their scores."""
    from nas.search.execution.confirm import confirm as confirm_study
    from nas.errors import NasRunFailed

    if front and trial:
        raise NasInputError("pass --front or --trial N, not both")
    try:
        done = confirm_study(storage, study, seeds=seeds, trials=list(trial) or None, workers=workers,
                             address=address, progress=progress)
    except NasRunFailed as exc:
        err.print(f"nas: confirm failed: {exc}", highlight=False)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        err.print("nas: interrupted; finished trainings are kept. Run the same command again to go on.")
        raise typer.Exit(130)
    print(f"nas: confirmed {len(done.trials)} candidate(s) of study {study} with {done.seeds} seeds: "
          f"{done.trained} trained now, {done.found} earlier, {done.failed} failed, {done.wall_time_s:.0f} s\n"
          f"nas: next: nas show {study}" + ("" if storage == DEFAULT_STORAGE else " --storage URL"), file=sys.stderr)
    if done.failed:
        for e in done.errors[:5]:
            err.print(f"nas: {e}", highlight=False, markup=False)
        raise typer.Exit(1)


@app.command()
def export(
    study: str = typer.Argument(..., help="The study's name (see `nas ls`).", show_default=False),
    out_dir: Path = typer.Option(..., "--out", help="The folder to write (must not exist, or be empty).",
                                 show_default=False),
    trial: Optional[int] = typer.Option(None, "--trial", help="Export this trial (by number).", show_default=False),
    pick: Optional[str] = typer.Option(None, "--pick", help="Export the best trial by this objective of the study, "
                                       "or `knee` (the Pareto point nearest the ideal one).", show_default=False),
    store_lift: bool = typer.Option(False, "--store-lift", help="Store a fixed random lift's matrix in the weights "
                                    "instead of regenerating it from its seed."),
    storage: str = StorageOpt,
) -> None:
    """Export one candidate of STUDY as a standalone PyTorch module (needs only torch)."""
    from nas.exporter import export_candidate
    from nas.search.read.format import human_bytes, human_count
    from nas.search.read.results import format_score, score_objective

    path = export_candidate(storage, study, out_dir, trial=trial, pick=pick, store_lift=store_lift)
    card = json.loads((path / "arch.json").read_text())
    obj = card["objectives"] or {}
    score = score_objective(obj)
    old = (card.get("evaluator_version") or 1) < 3  # before 2026-12-07 the score was the test split's
    shown = [f"{'test' if old else 'val'} {score} {format_score(score, obj[score])}" if score else None,
             f"test {score} {format_score(score, obj['test_' + score])}" if score and f"test_{score}" in obj else None,
             f"{human_count(obj['params'])} params" if "params" in obj else None,
             f"{human_bytes(obj['bandwidth'])} bandwidth" if "bandwidth" in obj else None]
    about = ", ".join(x for x in shown if x)
    print(f"nas: exported trial {card['trial']} of study {study}" + (f" ({about})" if about else "")
          + f" to {out_dir}/\nnas: it needs only torch; {Path(out_dir) / 'README.md'} says how to load it",
          file=sys.stderr)


@app.command()
def dashboard(
    storage: str = StorageOpt,
    port: int = typer.Option(8501, help="Port to serve the page on."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this machine only)."),
) -> None:
    """Serve the Pareto dashboard (Streamlit) for the database; it only reads."""
    import os
    import subprocess

    from nas.search.store.storage import parse_url, redact

    parse_url(storage)
    if not 0 < port < 65536:
        raise NasInputError(f"--port: expected 1-65535, found {port}")
    app_path = Path(__file__).resolve().parent / "dashboard" / "app.py"
    env = {**os.environ, "NAS_STORAGE": storage}  # in the environment, not argv: argv is public to `ps`
    err.print(f"nas: dashboard of {redact(storage)} on http://{host}:{port}", highlight=False)
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_path), "--server.address", host,
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--global.developmentMode", "false", "--client.toolbarMode", "viewer"]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":  # become the server: a signal meant for `nas dashboard` (SIGTERM, SIGHUP) reaches it
        os.execve(sys.executable, cmd, env)
    raise typer.Exit(subprocess.call(cmd, env=env))


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=True)
    except NasInputError as exc:
        err.print(f"nas: error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
