"""Read a database of studies back: what ``nas ls`` and ``nas show`` print."""

from __future__ import annotations

from typing import Any

import optuna
import sqlalchemy as sa

from nas.errors import NasInputError
from nas.search.models import Candidate, Run
from nas.search.storage import Store, redact

STATES = ("COMPLETE", "FAIL", "PRUNED", "RUNNING")


def _storage(url: str) -> optuna.storages.RDBStorage:
    from nas.search.storage import optuna_storage

    return optuna_storage(url, read_only=True)


def list_studies(url: str) -> list[dict[str, Any]]:
    """Every study in the database with its counts, objectives, best accuracy and start time."""
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
            metrics = study.metric_names or [f"value{i}" for i in range(len(study.directions))]
            best_acc = None
            if "accuracy" in metrics:
                i = metrics.index("accuracy")
                done = [t.values[i] for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
                best_acc = max(done) if done else None
            out.append({
                "study": summary.study_name,
                "objectives": dict(zip(metrics, (d.name.lower() for d in study.directions))),
                "counts": counts,
                "best_accuracy": best_acc,
                "started": summary.datetime_start.isoformat(timespec="seconds") if summary.datetime_start else None,
                "state": _run_state(store, summary.study_name),
            })
        return out
    finally:
        store.close()


def _run_state(store: Store, study: str) -> str:
    if not store.has_nas_tables():
        return "-"
    with store.session() as s:
        last = s.scalars(sa.select(Run).where(Run.study_name == study).order_by(Run.id.desc()).limit(1)).first()
    return last.state.lower() if last else "-"


def study_report(url: str, name: str) -> dict[str, Any]:
    """The study as the JSON object of DESIGN.md's contract (plus a few extra keys)."""
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
        rows = []
        for t in trials:
            if t.state.name not in STATES:
                continue  # WAITING: queued, not started
            c = cands.get(t.number)
            rows.append({
                "number": t.number,
                "state": t.state.name,
                "params": dict(c.values) if c is not None else dict(t.params),
                "values": dict(zip(metrics, t.values)) if t.values is not None else {},
                "pareto": t.number in pareto,
                "arch_id": c.arch_id if c is not None else t.user_attrs.get("arch_id"),
                "error": (c.error if c is not None and c.error else t.system_attrs.get("fail_reason")),
                "measured": dict(c.objectives) if c is not None and c.objectives else {},
                "wall_time_s": c.wall_time_s if c is not None else None,
                "reused": bool(c is not None and c.reused_from is not None),
            })
        return {
            "study": name,
            "directions": dict(zip(metrics, (d.name.lower() for d in study.directions))),
            "trials": rows,
        }
    finally:
        store.close()
