"""Read a database of studies back: what ``nas ls`` and ``nas show`` print."""

from __future__ import annotations

import functools
from typing import Any

import optuna
import sqlalchemy as sa

from nas.errors import NasInputError
from nas.evaluators.names import EVALUATOR_VERSION, FIRST_VALIDATION_VERSION, SCORES, evaluator_version, scores_on_test
from nas.search.read import intervals
from nas.search.store.models import Candidate, Confirmation, Run
from nas.search.store.storage import Store, redact

STATES = ("COMPLETE", "FAIL", "PRUNED", "RUNNING")


def score_objective(metrics) -> str | None:
    """The study's score among its objective names: ``accuracy`` if there, else ``psnr`` (image tasks), else None."""
    return next((m for m in SCORES if m in metrics), None)


def format_score(metric: str, value: float) -> str:
    """``0.9231`` for an accuracy, ``24.31 dB`` for a PSNR."""
    return f"{value:.2f} dB" if metric == "psnr" else f"{value:.4f}"


def _storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage of ``url``, read-only, made once per database per process (the dashboard reads it every
    few seconds): a SQLite URL is one database per file, so a relative path read from another folder, or a
    file made anew at the same path, gets its own storage."""
    from nas.search.store.storage import sqlite_path

    db = sqlite_path(url)
    if db is None:
        return _storage_of(url, None)
    try:
        return _storage_of(url, (str(db.resolve()), db.stat().st_ino))
    except FileNotFoundError:
        return _storage_of(url, (str(db.resolve()), None))  # optuna_storage says there is no database there


@functools.lru_cache(maxsize=8)
def _storage_of(url: str, file: tuple | None) -> optuna.storages.RDBStorage:
    from nas.search.store.storage import optuna_storage

    return optuna_storage(url, read_only=True)


def list_studies(url: str) -> list[dict[str, Any]]:
    """Every study in the database with its counts, objectives, best score and start time.

    ``score``: the study's score metric (``score_objective``); ``best``: its best value over complete trials.
    """
    store = Store(url, create=False)
    try:
        if not store.optuna_ready():
            return []
        storage = _storage(url)
        out = []
        for summary in optuna.study.get_all_study_summaries(storage, include_best_trial=False):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            trials = study.get_trials(deepcopy=False)
            counts = {s: 0 for s in STATES}
            for t in trials:
                if t.state.name in counts:
                    counts[t.state.name] += 1
            counts["QUEUED"] = _queued(store, summary.study_name)  # running in Optuna, waiting in Ray's queue
            counts["RUNNING"] -= counts["QUEUED"]
            metrics = study.metric_names or [f"value{i}" for i in range(len(study.directions))]
            score, best = score_objective(metrics), None
            if score is not None:
                i = metrics.index(score)
                done = [t.values[i] for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
                best = max(done) if done else None
            out.append({
                "study": summary.study_name,
                "objectives": dict(zip(metrics, (d.name.lower() for d in study.directions))),
                "counts": counts,
                "score": score,
                "best": best,
                "started": summary.datetime_start.isoformat(timespec="seconds") if summary.datetime_start else None,
                "state": _run_state(store, summary.study_name),
                "selection": _selection(store, summary.study_name),
            })
        return out
    finally:
        store.close()


def _queued(store: Store, study: str) -> int:
    """Candidates handed to the workers that no worker has taken yet."""
    if not store.has_nas_tables():
        return 0
    with store.session() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(Candidate).where(
            Candidate.study_name == study, Candidate.state == "QUEUED")) or 0)


def _selection(store: Store, study: str) -> str:
    """``validation``, or ``test`` for a study scored by an evaluator before version 3 (it selected on test)."""
    if not store.has_nas_tables():
        return "validation"
    with store.session() as s:
        keys = s.scalars(sa.select(Candidate.train_key).where(Candidate.study_name == study,
                                                              Candidate.state == "COMPLETE").distinct()).all()
    return "test" if any(evaluator_version(k) < FIRST_VALIDATION_VERSION for k in keys) else "validation"


def study_names(url: str) -> list[str]:
    """Every study in the database, oldest first (Optuna's public API on a read-only storage); none where
    Optuna has not finished creating its tables."""
    store = Store(url, create=False)
    try:
        if not store.optuna_ready():
            return []
    finally:
        store.close()
    return optuna.get_all_study_names(_storage(url))


def study_directions(url: str, study: str) -> dict[str, str]:
    """metric -> maximize | minimize, in the study's order (Optuna's public API on a read-only storage); {} for
    a study the database does not hold."""
    try:
        loaded = optuna.load_study(study_name=study, storage=_storage(url))
    except KeyError:
        return {}
    metrics = loaded.metric_names or [f"value{i}" for i in range(len(loaded.directions))]
    return dict(zip(metrics, (d.name.lower() for d in loaded.directions)))


def _run_state(store: Store, study: str) -> str:
    if not store.has_nas_tables():
        return "-"
    with store.session() as s:
        last = s.scalars(sa.select(Run).where(Run.study_name == study).order_by(Run.id.desc()).limit(1)).first()
    return last.state.lower() if last else "-"


def study_report(url: str, name: str) -> dict[str, Any]:
    """The study as ``nas show STUDY --format json`` prints it (the README's contract)."""
    store = Store(url, create=False)
    try:
        if not store.optuna_ready():
            raise NasInputError(f"no study {name!r} in {redact(url)}; studies there: none")
        storage = _storage(url)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            names = [s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)]
            raise NasInputError(
                f"no study {name!r} in {redact(url)}; studies there: {', '.join(names) or 'none'}"
            ) from None
        metrics = study.metric_names or [f"value{i}" for i in range(len(study.directions))]
        cands: dict[int, Candidate] = {}
        if store.has_nas_tables():
            with store.session() as s:
                cands = {c.trial_number: c for c in s.scalars(sa.select(Candidate).where(Candidate.study_name == name))}
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        pareto = {t.number for t in study.best_trials} if complete else set()
        confirmations = by_candidate(read_confirmations(store, name) if store.has_nas_tables() else {}, cands)
        directions = dict(zip(metrics, (d.name.lower() for d in study.directions)))
        score = score_objective(metrics)
        rows, versions = [], set()
        for t in trials:
            if t.state.name not in STATES:
                continue  # WAITING: queued, not started
            c = cands.get(t.number)
            version = evaluator_version(c.train_key) if c is not None else None
            if t.state.name == "COMPLETE" and version is not None:
                versions.add(version)
            row = {
                "number": t.number,
                "state": t.state.name,
                "params": dict(c.values) if c is not None else dict(t.params),
                "values": dict(zip(metrics, t.values)) if t.values is not None else {},
                "test": scores_on_test(c.objectives, version, metrics) if c is not None and t.state.name == "COMPLETE"
                else {},
                "pareto": t.number in pareto,
                "arch_id": c.arch_id if c is not None else t.user_attrs.get("arch_id"),
                "error": (c.error if c is not None and c.error else t.system_attrs.get("fail_reason")),
                "measured": dict(c.objectives) if c is not None and c.objectives else {},
                "wall_time_s": c.wall_time_s if c is not None else None,
                "reused": bool(c is not None and c.reused_from is not None),
                "queued": bool(c is not None and c.state == "QUEUED"),  # RUNNING in Optuna, no worker has it yet
                "evaluator": version,
            }
            seeds = confirmations.get(identity(c)) if c is not None else None
            if seeds and score is not None and t.state.name == "COMPLETE":
                row["confirmed"] = intervals.confirmed([o for _, o in seeds], [s for s, _ in seeds], score)
            rows.append(row)
        if score is not None:
            marks = intervals.significance(
                {r["number"]: {"interval": r["confirmed"]["val"], "costs": confirmed_costs(r, directions, score),
                               "id": identity(cands[r["number"]])}
                 for r in rows if "confirmed" in r}, score, directions)
            for r in rows:
                if r["number"] in marks:
                    r["significance"] = marks[r["number"]]
        old = sorted(v for v in versions if v < FIRST_VALIDATION_VERSION)
        return {
            "study": name,
            "directions": directions,
            # what the search, the front and every pick read: the validation split's score; a study scored by an
            # evaluator before version 3 selected on the test split, and is marked so
            "selection": "test" if old else "validation",
            "trials": rows,
        }
    finally:
        store.close()


def confirmed_costs(row: dict[str, Any], directions: dict[str, str], score: str) -> dict[str, float]:
    """A confirmed trial's objectives other than the score, for comparing it with others: an exact cost as the
    search measured it (params, bandwidth); one that varies with training (``latency_ms``, a measured
    bandwidth) as its mean over the confirmation seeds."""
    measured = row["confirmed"]["objectives"]
    out = {}
    for m in directions:
        if m == score:
            continue
        if m in intervals.EXACT or m not in measured or measured[m].get("mean") is None:
            if m in row["values"]:
                out[m] = float(row["values"][m])
        else:
            out[m] = float(measured[m]["mean"])
    return out


def compare(url: str, names: list[str], reference: dict[str, float] | None = None) -> dict[str, Any]:
    """Several studies' search quality side by side: hypervolume against training spent.

    Every study is measured against one reference point (``reference``, or one
    derived from the complete candidates of all the studies together, see
    ``nas.search.quality``), so the hypervolumes are comparable. For each
    study: its hypervolume curve over the epochs trained so far (candidates in
    finishing order; reused results cost 0 epochs, early-stopped ones their
    epochs), the final value, and the epochs it took to reach the FIRST study's
    final hypervolume, also as a ratio of the first study's epochs.
    """
    if len(set(names)) != len(names) or not names:
        raise NasInputError("nas compare: name each study once (at least one)")
    reports = [study_report(url, n) for n in names]  # NasInputError for an unknown study
    kinds = {r["selection"] for r in reports}
    if len(kinds) > 1:
        old = [r["study"] for r in reports if r["selection"] == "test"]
        raise NasInputError(f"nas compare: {', '.join(map(repr, old))} scored by nas before 2026-12-07 (test scores, "
                            "the search selected on them), the others on validation: their hypervolumes measure "
                            "different splits; compare studies scored the same way")
    dirs = reports[0]["directions"]
    for r in reports[1:]:
        if r["directions"] != dirs:
            raise NasInputError(
                f"nas compare: {r['study']!r} has the objectives {r['directions']}, {names[0]!r} has {dirs}; "
                "only studies with the same objectives can be compared"
            )
    store = Store(url, create=False)
    try:
        series = {name: finished(store.engine, name) for name in names}
    finally:
        store.close()
    return compare_rows(series, dirs, reference)


def finished(engine: sa.Engine, study: str) -> tuple[list, str | None]:
    """``study``'s finished candidates (complete or stopped early) in finishing order, with the columns
    ``compare_rows`` reads, and the sampler of its last run: what ``nas compare`` and the dashboard's Compare tab
    draw. Read with any engine (the dashboard's is read-only)."""
    with engine.connect() as c:
        rows = c.execute(
            sa.select(Candidate.state, Candidate.objectives, Candidate.epochs_trained,
                      Candidate.reused_from, Candidate.error, Candidate.trial_number)
            .where(Candidate.study_name == study, Candidate.state.in_(("COMPLETE", "PRUNED")))
            .order_by(Candidate.finished_at, Candidate.id)
        ).all()
        sampler = c.scalar(sa.select(Run.sampler).where(Run.study_name == study).order_by(Run.id.desc()).limit(1))
    return rows, sampler


def candidate_rows(engine: sa.Engine, study: str) -> list:
    """Every candidate of ``study`` in trial order, with what a table of candidates shows (not its curve nor its
    weights): trial_number, state, values, objectives, arch, wall_time_s, error, reused_from, worker,
    created_at, finished_at, train_key. The dashboard's table and fronts."""
    with engine.connect() as c:
        return c.execute(
            sa.select(Candidate.trial_number, Candidate.state, Candidate.values, Candidate.objectives,
                      Candidate.arch, Candidate.wall_time_s, Candidate.error, Candidate.reused_from,
                      Candidate.worker, Candidate.created_at, Candidate.finished_at, Candidate.train_key)
            .where(Candidate.study_name == study).order_by(Candidate.trial_number)
        ).all()


def state_counts(engine: sa.Engine) -> tuple[dict[str, dict[str, int]], dict[str, tuple[str, Any]]]:
    """Per study: candidates per state; and the state of its last run with the start of its first (the
    dashboard's list of studies). Empty where nas's tables do not exist yet."""
    if not sa.inspect(engine).has_table("nas_candidates"):
        return {}, {}
    counts: dict[str, dict[str, int]] = {}
    runs: dict[str, tuple[str, Any]] = {}
    with engine.connect() as c:
        for name, state, n in c.execute(sa.select(Candidate.study_name, Candidate.state, sa.func.count())
                                        .group_by(Candidate.study_name, Candidate.state)):
            counts.setdefault(name, {})[state] = n
        for name, state, started in c.execute(sa.select(Run.study_name, Run.state, Run.started_at)
                                              .order_by(Run.id)):
            runs[name] = (state, runs[name][1] if name in runs else started)
    return counts, runs


def identities(engine: sa.Engine, study: str) -> dict[int, Any]:
    """trial number -> its training's identity fields (``arch_id``, ``train_key``, ``task_key``; ``identity``),
    so a reused candidate finds its original's confirmations."""
    from types import SimpleNamespace

    with engine.connect() as c:
        return {r[0]: SimpleNamespace(arch_id=r[1], train_key=r[2], task_key=r[3]) for r in c.execute(
            sa.select(Candidate.trial_number, Candidate.arch_id, Candidate.train_key, Candidate.task_key)
            .where(Candidate.study_name == study))}


def progress_rows(engine: sa.Engine, study: str) -> list:
    """The history ``nas run`` stored after each finished candidate (``nas_progress``): trial_number,
    n_complete, epochs_total, hypervolume, created_at; none in a database written before the table."""
    from nas.search.store.models import Progress

    with engine.connect() as c:
        if not sa.inspect(c).has_table("nas_progress"):
            return []
        return c.execute(sa.select(Progress.trial_number, Progress.n_complete, Progress.epochs_total,
                                   Progress.hypervolume, Progress.created_at)
                         .where(Progress.study_name == study).order_by(Progress.id)).all()


def candidate_detail(engine: sa.Engine, study: str, trial: int) -> dict[str, Any] | None:
    """Everything stored about one candidate (not its weights, only where they are): arch, train, curve,
    objectives, wall_time_s, error, state, weights_path, arch_id and its parameter values (``params``)."""
    with engine.connect() as c:
        r = c.execute(sa.select(Candidate.arch, Candidate.train, Candidate.curve, Candidate.objectives,
                                Candidate.wall_time_s, Candidate.error, Candidate.state, Candidate.weights_path,
                                Candidate.arch_id, Candidate.values)
                      .where(Candidate.study_name == study, Candidate.trial_number == trial)).first()
    if r is None:
        return None
    return {"arch": r[0], "train": r[1], "curve": r[2] or [], "objectives": r[3] or {}, "wall_time_s": r[4],
            "error": r[5], "state": r[6], "weights_path": r[7], "arch_id": r[8], "params": r[9]}


def compare_rows(series: dict[str, tuple[list, str | None]], dirs: dict[str, str],
                 reference: dict[str, float] | None = None) -> dict[str, Any]:
    """``compare``'s figures from each study's finished candidates: ``series`` maps a study to (rows in
    finishing order, sampler), each row with ``state``, ``objectives`` (dict), ``epochs_trained``,
    ``reused_from``, ``error`` and ``trial_number`` (the dashboard reads them with its read-only engine)."""
    import numpy as np

    from nas.search import quality

    names = list(series)
    metrics, directions = list(dirs), list(dirs.values())

    def values_of(rows):
        return [[float(r.objectives[m]) for m in metrics] for r in rows
                if r.state == "COMPLETE" and r.objectives and all(m in r.objectives for m in metrics)]

    everything = [v for rows, _ in series.values() for v in values_of(rows)]
    if reference:
        missing = [m for m in metrics if m not in reference]
        if missing:
            raise NasInputError(f"nas compare: --reference lacks {', '.join(missing)}; give one value per objective")
        ref = [float(reference[m]) for m in metrics]
    elif everything:
        ref = [float(x) for x in quality.derive_reference(np.array(everything), directions)]
    else:
        raise NasInputError(f"nas compare: no complete candidates in {', '.join(names)}")

    out = []
    for name in names:
        rows, sampler = series[name]
        done = [[float(r.objectives[m]) for m in metrics] for r in rows
                if r.state == "COMPLETE" and r.objectives and all(m in r.objectives for m in metrics)]
        after = quality.history(np.array(done), directions, ref) if done else []  # one front update per point
        epochs, curve, n_done = 0, [], 0
        for r in rows:
            epochs += 0 if r.reused_from is not None else int(r.epochs_trained or 0)
            if r.state == "COMPLETE" and r.objectives and all(m in r.objectives for m in metrics):
                n_done += 1
            hv = after[n_done - 1] if n_done else 0.0
            curve.append({"trial": r.trial_number, "epochs": epochs, "complete": n_done, "hypervolume": hv})
        out.append({
            "study": name,
            "sampler": sampler,
            "complete": len(done),
            "early_stopped": sum(r.state == "PRUNED" and not (r.error or "").startswith("infeasible") for r in rows),
            "epochs": epochs,
            "hypervolume": curve[-1]["hypervolume"] if curve else 0.0,
            "curve": curve,
        })
    target, base_epochs = out[0]["hypervolume"], out[0]["epochs"]
    for s in out:
        reached = next((p["epochs"] for p in s["curve"] if p["hypervolume"] >= target), None) if target > 0 else None
        s["epochs_to_first"] = reached
        s["compute_ratio"] = (reached / base_epochs) if reached is not None and base_epochs else None
    return {"directions": dirs, "reference": dict(zip(metrics, ref)), "studies": out}


def read_confirmations(store_or_engine, study: str) -> dict[int, list[tuple[int, dict]]]:
    """The complete confirmations of ``study`` scored by this nas's evaluator: trial number -> [(seed,
    objectives)], seeds in order (a row of another evaluator version is outdated: ``nas confirm`` trains it
    again). An engine or a Store; a database without the table (written before ``nas confirm``) has none."""
    engine = getattr(store_or_engine, "engine", store_or_engine)
    if not sa.inspect(engine).has_table("nas_confirmations"):
        return {}
    with engine.connect() as c:
        rows = c.execute(sa.select(Confirmation.trial_number, Confirmation.seed, Confirmation.objectives,
                                   Confirmation.train_key)
                         .where(Confirmation.study_name == study, Confirmation.state == "COMPLETE")
                         .order_by(Confirmation.trial_number, Confirmation.seed)).all()
    out: dict[int, list[tuple[int, dict]]] = {}
    for number, seed, objectives, key in rows:  # the JSON column type decodes the objectives
        if evaluator_version(key) == EVALUATOR_VERSION:
            out.setdefault(number, []).append((seed, objectives or {}))
    return out


def identity(cand) -> tuple:
    """What makes two candidates the same training: their architecture, training settings and task."""
    return (cand.arch_id, cand.train_key, cand.task_key)


def by_candidate(confirmations: dict[int, list], cands: dict[int, Any]) -> dict[tuple, list]:
    """The confirmations by ``identity``: a reused candidate reads the seeds ``nas confirm`` trained for its
    original (``nas.search.execution.confirm.distinct`` confirms one of them)."""
    return {identity(cands[n]): rows for n, rows in confirmations.items() if n in cands}
