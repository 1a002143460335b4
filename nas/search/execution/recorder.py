"""The recorder: how each candidate's start and end are written, to nas's table and to Optuna's together.

Each end is one transaction: nas's row, its progress row, Optuna's trial end (told first, held in memory by
the study's ``SoleWriterStorage`` and flushed on nas's connection) and the candidates workers took since
the last write; a candidate's start likewise writes its trial's parameters and its row together, and looks
for an earlier identical candidate in the same transaction. A run killed mid-way loses an end whole or keeps
it whole. (A RUNNING trial whose end nas knows, left by an older nas that wrote the two apart, is told to
Optuna by the next run: ``runner._recover_interrupted``.) The recorder also keeps the run's counts (complete, stopped early,
failed, reused, infeasible), feeds the search history (``nas.search.execution.history``) and the rung table
(``nas.search.execution.pruning.RungTable``), writes weights beside the database, and answers a candidate from an
earlier identical one (the reuse key: arch_id, training settings with the evaluator's version, task).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa

from nas.search import optuna_private
from nas.search.execution.history import History
from nas.search.store.models import Candidate, utcnow
from nas.search.execution.pruning import RungTable
from nas.search.store.storage import Store, write_weights


@dataclass
class InFlight:
    """A candidate handed to a worker (or waiting for its twin): its trial, reuse key and row."""

    trial: optuna.Trial
    key: tuple[str, str, str]  # (arch_id, train_key with the evaluator version, task_key)
    submitted: float
    candidate_id: int
    values_static: dict[str, float]  # params and bandwidth, known before training
    worker: str | None = None
    prior: Any = None  # an earlier identical complete candidate (or None), looked up with the row (``reuse``)
    looked_up: bool = False  # whether ``prior`` is that lookup's answer (a twin looks again once its original ends)


_TABLE = Candidate.__table__
_SET = sa.update(_TABLE).where(_TABLE.c.id == sa.bindparam("cid"))  # its SET: the columns the call names
_INSERT = sa.insert(_TABLE).returning(_TABLE.c.id)


def _update(s, candidate_id: int, **values) -> None:
    """An UPDATE of one candidate's row in session ``s`` (Core, built once: no ORM objects to keep in step)."""
    s.execute(_SET, {"cid": candidate_id, **values})


class Recorder:
    def __init__(self, store: Store, study: optuna.Study, study_name: str, run_id: int, task_key: str,
                 metrics: list[str], history: History, rung_table: RungTable, weights_dir: Path,
                 constraints: dict[str, float]):
        self.store, self.study, self.study_name, self.run_id, self.task_key = store, study, study_name, run_id, task_key
        self.metrics, self.history, self.rung_table = metrics, history, rung_table
        self.weights_dir, self.constraints = weights_dir, constraints
        self.complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        self.stopped = sum(  # stopped early: part of the budget (infeasible ones are not)
            not str(t.system_attrs.get("fail_reason", "")).startswith("infeasible")
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)))
        self.failed = self.reused = self.infeasible = 0
        self.errors: list[str] = []
        self._running: list[dict] = []  # candidates workers took, written with the next transaction

    @contextlib.contextmanager
    def _write(self):
        """One transaction of nas's: the candidates taken since the last one marked RUNNING first, then the
        caller's writes, then what the study's storage holds (parameters, attributes, trial ends told inside
        ``optuna_private.holding``), all committed together."""
        with self.store.session() as s:
            if self._running:
                running, self._running = self._running, []
                table = Candidate.__table__
                s.execute(sa.update(table).where(table.c.id == sa.bindparam("cid"), table.c.state == "QUEUED")
                          .values(state="RUNNING", worker=sa.bindparam("w")), running)
            yield s
            optuna_private.flush(self.study, s.connection())

    def write_pending(self) -> None:
        """Write what is held (candidates taken by workers) now: before the driver waits for results."""
        if self._running:
            with self._write():
                pass

    def _tell(self, trial, values: list[float] | None = None, state=None, why: str | None = None) -> None:
        """Tell Optuna a trial's end (with ``why`` as its failure reason), held by the study's storage for the
        next ``_write`` transaction."""
        with optuna_private.holding(self.study):
            if why is not None:
                optuna_private.set_fail_reason(self.study, trial, why)
            self.study.tell(trial, values, state=state)

    def values_of(self, objectives: dict[str, float]) -> list[float]:
        return [float(objectives[m]) for m in self.metrics]

    def specs_of(self, item: InFlight) -> tuple[dict, dict]:
        """The candidate's ArchSpec and TrainSpec JSON, as stored."""
        with self.store.session() as s:
            cand = s.get(Candidate, item.candidate_id)
            return dict(cand.arch), dict(cand.train)

    def _row(self, s, trial, arch, train_key: str, train, values: dict, **columns) -> int:
        """Insert the candidate's row in session ``s``; its id."""
        return s.execute(_INSERT, dict(
            run_id=self.run_id, study_name=self.study_name, trial_number=trial.number,
            trial_id=optuna_private.trial_id(trial), arch_id=arch.arch_id, train_key=train_key, task_key=self.task_key,
            arch=arch.to_json(), train=train.to_json(), values=values, **columns)).scalar_one()

    def started(self, trial, arch, train_key: str, train, values: dict, static: dict[str, float]) -> InFlight:
        """The row of a candidate about to be handed to the workers (QUEUED until one takes it; its static
        objectives known), written with its trial's parameters; an earlier identical candidate looked up in
        the same transaction (``reuse``)."""
        # Short sessions only, and no Optuna call inside one that could write through Optuna's own connection:
        # on SQLite an open write transaction here would lock it out. Optuna's pending writes go through this one.
        with self._write() as s:
            cid = self._row(s, trial, arch, train_key, train, values, state="QUEUED", objectives=dict(static))
            item = InFlight(trial, (arch.arch_id, train_key, self.task_key), time.monotonic(), cid, static)
            item.prior, item.looked_up = self._prior(s, item), True
        return item

    def running(self, item: InFlight, worker: str) -> None:
        """A worker took the candidate: QUEUED -> RUNNING, written with the next transaction."""
        self._running.append({"cid": item.candidate_id, "w": worker})

    def finish_ok(self, item: InFlight, payload: dict[str, Any], worker: str) -> None:
        path = write_weights(self.weights_dir, item.trial.number, payload["weights"]) if payload.get("weights") \
            else None
        values = self.values_of(payload["objectives"])
        self._tell(item.trial, values)
        self.complete += 1
        write = self.history.record(item.trial.number, self.complete, values, int(payload.get("epochs_trained") or 0))
        with self._write() as s:
            _update(s, item.candidate_id,
                    state="COMPLETE", objectives=payload["objectives"], curve=payload.get("curve"),
                    wall_time_s=payload.get("wall_time_s"), epochs_trained=payload.get("epochs_trained"),
                    weights_path=str(path) if path else None, worker=worker, finished_at=utcnow())
            write(s)
        if self.rung_table.cfg is not None:
            arch, train = self.specs_of(item)
            self.rung_table.add(payload.get("curve"), payload["objectives"], int(train.get("epochs", 0)), arch)

    def finish_infeasible(self, trial, arch, train_key: str, train, values, static, over: dict[str, float],
                    why: str = "") -> str:
        """A candidate over a constraint (or that cannot be built): PRUNED, untrained. Returns the reason."""
        why = why or "infeasible: " + "; ".join(
            f"{m} {static[m]:,.0f} > max {self.constraints[m]:,.0f}" for m, v in over.items() if v > 0)
        self._tell(trial, state=optuna.trial.TrialState.PRUNED, why=why)
        with self._write() as s:
            self._row(s, trial, arch, train_key, train, values, state="PRUNED", objectives=dict(static), error=why,
                      finished_at=utcnow())
        self.infeasible += 1
        return why

    def finish_stopped(self, item: InFlight, payload: dict[str, Any], worker: str, reduction_factor: int) -> None:
        """A candidate the rung rule stopped: PRUNED, with its curve, its last values and the epochs it used."""
        epochs = int(payload.get("epochs_trained") or 0)
        why = (f"stopped early at epoch {epochs}: dominated at its rung (another candidate had at least its "
               f"{self.rung_table.score_key} with no more params and bandwidth) and not in the top "
               f"1/{reduction_factor}")
        curve = payload.get("curve") or []
        self._tell(item.trial, state=optuna.trial.TrialState.PRUNED, why=why)
        self.stopped += 1
        write = self.history.record(item.trial.number, self.complete, None, epochs)
        with self._write() as s:
            _update(s, item.candidate_id,
                    state="PRUNED", objectives=payload["objectives"], curve=curve, error=why,
                    wall_time_s=payload.get("wall_time_s"), epochs_trained=epochs, worker=worker,
                    finished_at=utcnow())
            write(s)
        arch, train = self.specs_of(item)
        self.rung_table.add(curve, payload["objectives"], int(train.get("epochs", epochs)), arch)  # rungs reached

    def finish_failed(self, item: InFlight, error: str, worker: str | None) -> None:
        self._tell(item.trial, state=optuna.trial.TrialState.FAIL, why=error)
        with self._write() as s:
            _update(s, item.candidate_id, state="FAIL", error=error, worker=worker, finished_at=utcnow())
        self.failed += 1
        self.errors.append(f"trial {item.trial.number}: {error}")

    def _prior(self, s, item: InFlight):
        """An earlier complete candidate (not itself a reuse) with ``item``'s architecture, training and task: its
        id looked up, the row read only when there is one."""
        arch_id, train_key, task_key = item.key
        found = s.execute(
            sa.select(Candidate.id).where(
                Candidate.arch_id == arch_id, Candidate.train_key == train_key, Candidate.task_key == task_key,
                Candidate.state == "COMPLETE", Candidate.reused_from.is_(None),
            ).limit(1)
        ).scalar()
        return None if found is None else s.get(Candidate, found)

    def reuse(self, item: InFlight) -> str:
        """Complete ``item`` with an earlier result for the same architecture, training and task, if any:
        ``"own"`` (this study trained it), ``"other"`` (another study of the database did), or ``""``."""
        prior = item.prior
        if not item.looked_up:  # a twin, looking again once the candidate it waited for ended
            with self.store.session() as s:
                prior = self._prior(s, item)
        item.prior, item.looked_up = None, False  # used once
        if prior is None:
            return ""
        # the measured objectives are the earlier training's; params and bandwidth are this cost model's
        # (an older database may hold figures of an earlier model)
        objectives = {**prior.objectives, **item.values_static}
        pruned = prior.objectives.get("bandwidth_kept", prior.objectives.get("bandwidth")) != prior.objectives.get(
            "bandwidth")
        if not pruned and "bandwidth" in objectives:  # nothing pruned (or stored before bandwidth_kept):
            objectives["bandwidth_kept"] = objectives["bandwidth"]  # all of this cost model's bandwidth is kept
        counts = prior.objectives.get("exit_counts")
        if not counts:  # without exits a sample moves what the kept model moves (stored before: no exits)
            objectives["bandwidth_expected"] = objectives.get("bandwidth_kept", objectives.get("bandwidth"))
        elif not pruned:  # the stored exit histogram, weighted by this cost model's exit prefixes
            from nas.spaces import ArchSpec, bandwidth_bytes, exit_costs, expected_bytes

            head_bytes = [bandwidth_bytes(c) for c in exit_costs(ArchSpec.from_json(prior.arch))]
            objectives["bandwidth_expected"] = expected_bytes(counts, head_bytes)  # the validation histogram
            test_counts = prior.objectives.get("test_exit_counts")
            if test_counts:  # the record's, recounted the same way
                objectives["test_bandwidth_expected"] = expected_bytes(test_counts, head_bytes)
            objectives["exit_bytes"] = head_bytes
        # (exits with pruned gated connections: the stored figures stand; recounting them needs the stored weights)
        self._tell(item.trial, self.values_of(objectives))
        self.complete += 1
        self.reused += 1
        write = self.history.record(item.trial.number, self.complete, self.values_of(objectives), 0)
        with self._write() as s:
            _update(s, item.candidate_id,
                    state="COMPLETE", objectives=objectives, curve=prior.curve, wall_time_s=0.0,
                    epochs_trained=0, weights_path=prior.weights_path, reused_from=prior.id, finished_at=utcnow())
            write(s)
        return "own" if prior.study_name == self.study_name else "other"
