"""Replaying recorded learning curves through nas's own driver: a tabular benchmark of nas's searches.

A table (``table_from_study``) holds, for every candidate a real ``nas run`` trained in full, its learning
curve (the validation score and the training seconds of every epoch) and its final objectives, keyed by
the candidate's ``arch_id`` and training settings (``TrainSpec.train_key``). Replaying a study against it
runs ``nas.search.execution.driver.run`` unchanged (samplers, dedupe and reuse, constraints, multi-objective early
stopping) with two pieces swapped:

- ``ReplayEvaluator``, the worker's evaluator: it answers a candidate from the table instead of training it,
  epoch by epoch, applying the job's stop rules as the real worker does; a candidate the table does not hold
  is an error (``NotInTable``), never a silent failure.
- ``SimulatedPool``, the worker pool: no Ray; a simulated clock, as Syne Tune's simulated back end keeps.
  Each of ``workers`` slots takes the next submitted job when it is free; a job lasts its recorded training
  seconds (of the epochs it trained), and results reach the driver one at a time in the order they finish,
  so every asynchronous decision (what to ask next, a rung's stop rule) is the one a real run would make.

The table format (JSON, gzip-compressed when the file's name ends in ``.gz``): ``{"format": "nas-table/1",
"task_key": str, "directions": {metric: direction}, "candidates": {"ARCH_ID|TRAIN_KEY": {"arch": ArchSpec
JSON, "train": TrainSpec JSON, "objectives": {...}, "curve": [{"epoch": 1, "val_accuracy": ..., "seconds":
..., "cpu_seconds": ...}, ...]}}}``; ``seconds`` is an epoch's wall time, ``cpu_seconds`` (curves recorded
since nas 0.1.0 of 2026-12-04) its worker's CPU time. A recorded table may add ``space`` (the space file's
text), ``dims`` (the task's ``d_in``, ``d_out`` and ``in_shape``, what a replay needs instead of the data)
and ``built`` (how each part of it was recorded: command, candidates, seconds, date, machine). A table's
``objectives`` are its evaluator's: since evaluator version 3 ``accuracy`` is the validation score and
``test_accuracy`` the test score; a table recorded before holds the test score as ``accuracy``, which the
replay moves to ``test_accuracy`` (``selected``), so a replayed search selects on validation as a real one does.
"""

from __future__ import annotations

import gzip
import heapq
import itertools
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from nas.errors import NasInputError
from nas.evaluators.worker import stops
from nas.search.execution.dispatch import Message

FORMAT = "nas-table/1"


class NotInTable(NasInputError):
    """The replayed space holds a candidate the table has no record of."""


def key_of(arch: dict, train: dict) -> str:
    """A table's key for a candidate's ArchSpec and TrainSpec JSON."""
    from nas.spaces import ArchSpec, TrainSpec

    return f"{ArchSpec.from_json(dict(arch)).arch_id}|{TrainSpec.from_json(dict(train)).train_key}"


def table_from_study(storage: str, study: str) -> dict[str, Any]:
    """The table of a study's candidates trained in full (complete and not reused), from its database."""
    from nas.search.store.models import Candidate
    from nas.search.read.results import study_report
    from nas.search.store.storage import Store

    directions = study_report(storage, study)["directions"]
    store = Store(storage, create=False)
    try:
        with store.session() as s:
            rows = s.scalars(sa.select(Candidate).where(
                Candidate.study_name == study, Candidate.state == "COMPLETE", Candidate.reused_from.is_(None))
            ).all()
            task_keys = {c.task_key for c in rows}
            candidates = {key_of(c.arch, c.train): {"arch": c.arch, "train": c.train, "objectives": c.objectives,
                                                    "curve": _timed(c.curve, c.wall_time_s)} for c in rows}
    finally:
        store.close()
    if len(task_keys) > 1:
        raise NasInputError(f"study {study!r} holds candidates of {len(task_keys)} tasks; a table is one task's")
    return {"format": FORMAT, "task_key": task_keys.pop() if task_keys else None, "directions": directions,
            "candidates": candidates}


def _timed(curve: list[dict], wall_time_s: float | None) -> list[dict]:
    """The curve with every epoch's ``seconds``; a curve recorded before nas timed its epochs shares the
    candidate's wall time out evenly."""
    if all("seconds" in p for p in curve):
        return curve
    each = float(wall_time_s or 0.0) / max(1, len(curve))
    return [{**p, "seconds": p.get("seconds", each)} for p in curve]


def load_table(path: str | Path) -> dict[str, Any]:
    """A table file: JSON, gzip-compressed where its name ends in ``.gz``."""
    path = Path(path)
    try:
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        table = json.loads(text)
    except (OSError, ValueError, EOFError) as exc:
        raise NasInputError(f"{path}: not a readable table ({exc})") from None
    if table.get("format") != FORMAT:
        raise NasInputError(f"{path}: not a {FORMAT} table (format {table.get('format')!r})")
    return table


class ReplayEvaluator:
    """The worker's evaluator, answered from ``table`` (a dict, or a table file's path).

    ``clock``: the curve's key that times an epoch: ``seconds`` (wall clock, as the worker measured it) or
    ``cpu_seconds`` (the worker process's CPU time: on a machine shared with other work while the table was
    recorded, the cost of the training itself).
    """

    def __init__(self, table: dict[str, Any] | str | Path, clock: str = "seconds"):
        self.source = table if isinstance(table, (str, Path)) else "the table"
        self.table = load_table(table) if isinstance(table, (str, Path)) else table
        if clock not in ("seconds", "cpu_seconds"):
            raise ValueError(f"clock must be seconds or cpu_seconds, found {clock!r}")
        self.clock = clock

    def setup(self, threads: int, device: str) -> None:
        pass

    def __call__(self, job: dict[str, Any]) -> dict[str, Any]:
        key = key_of(job["arch"], job["train"])
        entry = self.table["candidates"].get(key)
        if entry is None:
            raise NotInTable(f"{self.source} has no candidate {key} (arch_id|train_key): the replayed space asks "
                             "for a candidate the table's study did not train; replay the table's own space")
        epochs = int(job["train"]["epochs"])
        curve = entry["curve"]
        if len(curve) < epochs:
            raise NotInTable(f"{self.source}: candidate {key} was recorded for {len(curve)} epochs, not {epochs}")
        score = next(k for k in curve[0] if k.startswith("val_"))
        rules = job.get("stop_rules") or {}
        seconds = 0.0
        for point in curve[:epochs]:
            seconds += float(point[self.clock])
            epoch = int(point["epoch"])
            if epoch < epochs and stops(rules.get(str(epoch)), point[score]):
                objectives = {m: entry["objectives"][m] for m in ("params", "bandwidth") if m in entry["objectives"]}
                return {"ok": True, "stopped_early": True, "objectives": {**objectives, score: point[score]},
                        "curve": curve[:epoch], "wall_time_s": seconds, "epochs_trained": epoch}
        return {"ok": True, "stopped_early": False, "objectives": selected(entry, epochs, score),
                "curve": curve[:epochs], "wall_time_s": seconds, "epochs_trained": epochs}


def selected(entry: dict[str, Any], epochs: int, score: str) -> dict[str, Any]:
    """A complete candidate's objectives as the evaluator reports them since version 3: the metric (``accuracy``)
    is the best checkpoint's validation score, ``test_<metric>`` its test score. A table recorded before (whose
    objectives hold ``accuracy`` = the test score, and no ``test_accuracy``) is read so: the test score moves to
    ``test_<metric>``, and the metric becomes the best validation score of the epochs that pick the checkpoint
    (after an FPE expansion only: ``nas.search.execution.pruning.dense_until``), as ``evaluate`` picks it."""
    from nas.evaluators.names import TEST_PREFIX
    from nas.search.execution.pruning import dense_until

    objectives = dict(entry["objectives"])
    metric = score[len("val_"):]
    if TEST_PREFIX + metric in objectives or metric not in objectives:
        return objectives
    if objectives.get("exit_counts"):  # its bandwidth_expected weighs the test split's exits: not selectable
        raise NotInTable("a table recorded before evaluator 3 with early exits holds bandwidth_expected from the "
                         "test split's exits, which a search must not read; record the table again")
    first = max(1, dense_until(entry["arch"], epochs))
    objectives[TEST_PREFIX + metric] = objectives[metric]
    objectives[metric] = max(float(p[score]) for p in entry["curve"][:epochs] if int(p["epoch"]) >= first)
    return objectives


class SimulatedPool:
    """``nas.search.execution.dispatch.WorkerPool``'s interface on a simulated clock (the module's docstring).

    ``now``: the simulated seconds since the start. A job's duration is its result's ``wall_time_s``.
    ``spent``: the training seconds of the results delivered so far (summed over workers: the compute).
    """

    def __init__(self, workers: int, evaluator):
        self.workers, self.evaluator = workers, evaluator
        self.fit_error: BaseException | None = None
        self.now = 0.0
        self.spent = 0.0
        self._free_at = [0.0] * workers
        self._queue: list[dict[str, Any]] = []
        self._finishing: list[tuple[float, int, int, dict, dict]] = []  # (finish, seq, slot, job, payload)
        self._out: list[Message] = []
        self._seq = itertools.count()

    def start(self) -> None:
        self.evaluator.setup(1, "cpu")

    def submit(self, job: dict[str, Any]) -> None:
        self._queue.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue:
            slot = min(range(self.workers), key=lambda k: (self._free_at[k], k))
            if self._free_at[slot] > self.now:
                return  # every worker busy: the job waits, as in Ray's queue
            job = self._queue.pop(0)
            self._out.append(Message("started", job["trial_number"], f"sim:{slot}"))
            try:
                payload = self.evaluator(job)
            except NasInputError:
                raise  # a table that does not fit the space: the replay itself is wrong
            except Exception as exc:  # noqa: BLE001 - a candidate's failure, as a worker reports it
                payload = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            finish = self.now + float(payload.get("wall_time_s") or 0.0)
            self._free_at[slot] = finish
            heapq.heappush(self._finishing, (finish, next(self._seq), slot, job, payload))

    def poll(self, timeout: float) -> list[Message]:
        """The "started" messages so far and the next result to finish (one, so the driver decides between
        every two results as it would in a real run)."""
        out, self._out = self._out, []
        if self._finishing:
            finish, _, slot, job, payload = heapq.heappop(self._finishing)
            self.now = max(self.now, finish)
            self.spent += float(payload.get("wall_time_s") or 0.0)
            out.append(Message("result", job["trial_number"], f"sim:{slot}", payload))
            self._dispatch()
            out, self._out = out + self._out, []
        return out

    def close(self) -> None:
        pass
