"""Which candidate of a study to export (``--trial N``, ``--pick METRIC``, ``--pick knee``) and exporting it
from the store (``export_candidate``)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

from nas.errors import NasInputError
from nas.evaluators.names import evaluator_version
from nas.exporter.card import KNEE
from nas.exporter.write import ExportMeta, _check_out, export_model



# ------------------------------------------------------------ choosing a candidate
def best_by(rows: list[dict[str, Any]], metric: str, directions: Mapping[str, str]) -> dict[str, Any]:
    """The best row by ``metric``; ties broken by the other objectives in order, then the lower trial number."""
    order = [metric] + [m for m in directions if m != metric]

    def key(row):
        return tuple((-1 if directions[m] == "maximize" else 1) * row["values"][m] for m in order) + (row["number"],)

    return min(rows, key=key)


def knee(rows: list[dict[str, Any]], directions: Mapping[str, str]) -> dict[str, Any]:
    """The Pareto-front row closest to the ideal point.

    Each objective is min-max normalised over ``rows`` (the front) so that 0 is
    the front's best value and 1 its worst (an objective equal on the whole
    front counts 0); the knee is the row at the smallest Euclidean distance
    from the all-zero ideal point (ties: the lower trial number).
    """
    metrics = list(directions)
    lo = {m: min(r["values"][m] for r in rows) for m in metrics}
    hi = {m: max(r["values"][m] for r in rows) for m in metrics}

    def norm(row, m):
        if hi[m] == lo[m]:
            return 0.0
        v = row["values"][m]
        return (hi[m] - v) / (hi[m] - lo[m]) if directions[m] == "maximize" else (v - lo[m]) / (hi[m] - lo[m])

    return min(rows, key=lambda r: (math.sqrt(sum(norm(r, m) ** 2 for m in metrics)), r["number"]))


def confirmed_pool(complete: list[dict[str, Any]], directions: Mapping[str, str]) -> list[dict[str, Any]]:
    """Once every member of the study's front has been trained with several seeds (``nas confirm``, 2 or more
    complete), the confirmed rows, their ``values`` replaced by what the seeds say: the score by its
    validation mean, a measured cost (``latency_ms``, a measured bandwidth) by its mean, the exact costs as
    they are. Empty otherwise (no confirmation, or only some candidates confirmed, which the search's
    single-seed scores of the others could not be weighed against): picks then read those scores."""
    from nas.search.read.results import confirmed_costs

    def usable(t):
        conf = t.get("confirmed")
        return bool(conf) and conf["val"].get("sd") is not None and conf["metric"] in directions

    front = [t for t in complete if t.get("pareto")]
    if not front or not all(usable(t) for t in front):
        return []
    out = []
    for t in complete:
        conf = t.get("confirmed")
        if not usable(t):
            continue
        values = {**t["values"], **confirmed_costs(t, dict(directions), conf["metric"]),
                  conf["metric"]: conf["val"]["mean"]}
        out.append({**t, "values": values})
    return out


def front_of(rows: list[dict[str, Any]], directions: Mapping[str, str]) -> list[dict[str, Any]]:
    """The rows no other row dominates, by their ``values``."""
    import moocore
    import numpy as np

    metrics = list(directions)
    values = np.array([[float(r["values"][m]) for m in metrics] for r in rows])
    keep = moocore.is_nondominated(values, maximise=[directions[m] == "maximize" for m in metrics],
                                   keep_weakly=True)
    return [r for r, k in zip(rows, keep) if k]


def export_candidate(storage_url: str, study: str, out_dir: str | os.PathLike, trial: int | None = None,
                     pick: str | None = None, store_lift: bool = False) -> Path:
    """Export one candidate of ``study``: ``trial`` by number, or ``pick`` (an objective or ``knee``).

    Returns the folder written. Bad input raises NasInputError with one message.
    """
    import sqlalchemy as sa

    from nas.search.store.models import Candidate, Run
    from nas.search.read.results import study_report
    from nas.search.store.storage import Store, redact
    from nas.spaces import ArchSpec, TrainSpec

    if (trial is None) == (pick is None):
        raise NasInputError("pass exactly one of --trial N or --pick METRIC (an objective of the study, or knee)")
    if trial is not None and (type(trial) is not int):
        raise NasInputError(f"--trial: expected a trial number, found {trial!r}")
    _check_out(out_dir)
    report = study_report(storage_url, study)  # an unknown study: an error listing the studies
    directions = report["directions"]
    complete = [t for t in report["trials"] if t["state"] == "COMPLETE" and set(t["values"]) >= set(directions)]
    if pick is not None:
        if pick not in directions and pick != KNEE:
            raise NasInputError(f"--pick {pick!r}: not an objective of study {study!r}; expected one of "
                                f"{', '.join(list(directions) + [KNEE])}")
        if not complete:
            raise NasInputError(f"study {study!r} has no complete candidate to pick from yet")
        confirmed = confirmed_pool(complete, directions)
        pool = confirmed or complete
        if pick in directions:
            chosen = best_by(pool, pick, directions)
        else:
            chosen = knee(front_of(pool, directions) if confirmed else [t for t in complete if t["pareto"]] or complete,
                          directions)
        row = next(t for t in complete if t["number"] == chosen["number"])
    else:
        rows = {t["number"]: t for t in report["trials"]}
        if trial not in rows:
            numbers = sorted(rows)
            have = f"its trials are {numbers[0]} to {numbers[-1]}" if numbers else "it has no trials"
            raise NasInputError(f"--trial {trial}: study {study!r} has no trial {trial}; {have}")
        row = rows[trial]
        if row["state"] != "COMPLETE":
            state = {"FAIL": "failed", "PRUNED": "pruned", "RUNNING": "still running"}.get(row["state"],
                                                                                      row["state"].lower())
            why = f": {row['error']}" if row.get("error") else ""
            raise NasInputError(f"--trial {trial}: trial {trial} of study {study!r} {state}, it has no trained "
                                f"model to export{why}")
    number = row["number"]

    store = Store(storage_url, create=False)
    try:
        if not store.has_nas_tables():
            raise NasInputError(f"study {study!r} has no nas records in {redact(storage_url)}")
        with store.session() as s:
            cand = s.scalars(sa.select(Candidate).where(Candidate.study_name == study,
                                                        Candidate.trial_number == number)).first()
            if cand is None:
                raise NasInputError(f"trial {number} of study {study!r} has no nas record (made outside nas?)")
            run = s.get(Run, cand.run_id)
            original = s.get(Candidate, cand.reused_from) if cand.reused_from is not None else None
            sampler = run.sampler if run is not None else None
            reused_from = original.trial_number if original is not None and original.study_name == study else None
    finally:
        store.close()
    if not cand.weights_path:
        raise NasInputError(f"trial {number} of study {study!r} has no stored weights (run with --no-weights?)")
    weights = Path(cand.weights_path)
    if not weights.is_file():
        raise NasInputError(f"trial {number} of study {study!r}: its weights file {weights} is missing "
                            "(moved or deleted?)")
    try:
        spec = ArchSpec.from_json(dict(cand.arch))
    except (TypeError, ValueError) as exc:
        raise NasInputError(f"trial {number} of study {study!r}: cannot read its architecture: {exc}") from None
    try:
        train = TrainSpec.from_json(dict(cand.train)).to_json()
    except (TypeError, ValueError):
        train = dict(cand.train)
    kind, _, dataset = (cand.task_key or "").partition("|")
    meta = ExportMeta(
        study=study, trial=number, sampler=sampler, picked_by=pick if pick is not None else "trial",
        dataset=dataset or None, kind=kind or None, train=train, objectives=dict(cand.objectives or {}),
        directions=dict(directions), pareto=bool(row["pareto"]), complete_trials=len(complete),
        reused_from_trial=reused_from, evaluator_version=evaluator_version(cand.train_key),
        confirmed=row.get("confirmed"),
    )
    return export_model(spec, weights, out_dir, meta, store_lift=store_lift)
