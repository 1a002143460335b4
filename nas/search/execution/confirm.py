"""``nas confirm``: the candidates that matter trained again with more seeds, so their scores get intervals.

A search trains each candidate once, with one seed: its score is one noisy sample, and the best of hundreds
of such samples is biased upward (the winner's curse). ``confirm`` trains each chosen candidate (by default
the study's front) K more times, on the same splits, with K **fresh** training seeds (initialisation and
batch order): ``train.seed + 1`` to ``train.seed + K``. The search's own seed is left out on purpose: it is
the draw the candidate was selected on, so including it would carry the selection's optimism into the mean.

Each training is a row of ``nas_confirmations`` (``nas.search.store.models.Confirmation``), written when it ends;
a call that is stopped loses only what was training, and the same command again trains only the seeds that
have no complete row (a failed one is tried again). The trainings run on the same Ray Tune workers as a
search (``nas.search.execution.dispatch.WorkerPool``); the driver alone writes to the database.

``nas.search.read.intervals`` turns the rows into mean ± sd and a 95 % interval; the read side (``nas show``, the
dashboard, ``nas export --pick``) reads them from there.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from nas.errors import NasInputError, NasRunFailed
from nas.search.execution.dispatch import Message
from nas.search.store.models import Candidate, Confirmation, utcnow
from nas.search.store.storage import Store, redact

DEFAULT_SEEDS = 5


@dataclass
class ConfirmSummary:
    study: str
    trials: list[int]  # the confirmed candidates
    seeds: int  # K: seeds per candidate
    trained: int = 0  # trainings this call ran to completion
    found: int = 0  # trainings an earlier call had completed
    failed: int = 0
    wall_time_s: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Job:
    trial_number: int
    seed: int
    arch: dict
    train: dict  # the trial's TrainSpec JSON with this seed
    train_key: str


def seeds_for(train_seed: int, k: int) -> list[int]:
    """The K confirmation seeds of a candidate trained with ``train_seed``: the K seeds after it."""
    return [int(train_seed) + 1 + i for i in range(k)]


def choose(report: dict[str, Any], trials: list[int] | None, seeds: int) -> list[int]:
    """The trial numbers to confirm (``trials``, or the study's front); NasInputError for bad input."""
    study = report["study"]
    if type(seeds) is not int or seeds < 2:
        raise NasInputError(f"--seeds: must be at least 2 (one seed gives no interval), found {seeds}")
    rows = {t["number"]: t for t in report["trials"]}
    if not trials:
        front = sorted(t["number"] for t in report["trials"] if t["pareto"])
        if not front:
            raise NasInputError(f"study {study!r} has no complete candidate yet: nothing to confirm")
        return front
    out = []
    for n in trials:
        if n not in rows:
            numbers = sorted(rows)
            have = f"its trials are {numbers[0]} to {numbers[-1]}" if numbers else "it has no trials"
            raise NasInputError(f"--trial {n}: study {study!r} has no trial {n}; {have}")
        if rows[n]["state"] != "COMPLETE":
            state = {"FAIL": "failed", "PRUNED": "was pruned", "RUNNING": "is still running"}.get(
                rows[n]["state"], rows[n]["state"].lower())
            why = f" ({rows[n]['error']})" if rows[n].get("error") else ""
            raise NasInputError(f"--trial {n}: trial {n} of study {study!r} {state}{why}; only a complete "
                                "candidate can be confirmed")
        if n not in out:
            out.append(n)
    return out


def confirm(storage: str, study: str, *, seeds: int = DEFAULT_SEEDS, trials: list[int] | None = None,
            workers: int | None = None, address: str | None = None, progress: bool = True) -> ConfirmSummary:
    """Train the chosen candidates of ``study`` (``trials``, or its front) with ``seeds`` fresh seeds each on
    Ray workers, and store every training; returns what was done. Bad input raises NasInputError before
    anything is written."""
    from nas.search.execution.dispatch import WorkerPool, check_address
    from nas.search.read.results import study_report

    if workers is not None and workers < 1:
        raise NasInputError(f"--workers: must be at least 1, found {workers}")
    report = study_report(storage, study)  # an unknown study: an error listing the studies
    if report["selection"] == "test":
        raise NasInputError(f"study {study!r} was scored by nas before 2026-12-07: its scores are the test split's, "
                            "and its search selected on them, so seeds would be compared with test scores; run its "
                            "space file again under a new --study name, then confirm that study")
    numbers = choose(report, trials, seeds)
    check_address(address)
    cands = _candidates(storage, study, numbers)
    reader = Store(storage, create=False)
    try:
        todo = plan(reader, study, cands, seeds)[1]
    finally:
        reader.close()
    if not todo:  # every seed trained already: nothing to start, nothing to write
        n = len(jobs_for(distinct(cands), seeds))
        if progress:
            print(f"nas: every seed of the {len(distinct(cands))} candidate(s) was trained earlier", file=sys.stderr)
        return ConfirmSummary(study, [c.trial_number for c in distinct(cands)], seeds, found=n)
    evaluator = _evaluator(study, cands)
    store = Store(storage)  # a writer: brings an older database's tables up to date
    pool = WorkerPool(workers, evaluator, address)
    try:
        try:
            pool.start()
        except (ConnectionError, RuntimeError, ValueError) as exc:
            if address is None:
                raise
            raise NasInputError(f"--address {address}: cannot join the Ray cluster: {exc}") from None
        return run_confirmations(store, pool, study, cands, seeds, progress)
    finally:
        pool.close()
        store.close()


def _candidates(storage: str, study: str, numbers: list[int]) -> list[Candidate]:
    store = Store(storage, create=False)
    try:
        if not store.has_nas_tables():
            raise NasInputError(f"study {study!r} has no nas records in {redact(storage)}")
        with store.session() as s:
            found = {c.trial_number: c for c in s.scalars(sa.select(Candidate).where(
                Candidate.study_name == study, Candidate.trial_number.in_(numbers)))}
    finally:
        store.close()
    missing = [n for n in numbers if n not in found]
    if missing:
        raise NasInputError(f"trial {missing[0]} of study {study!r} has no nas record (made outside nas?)")
    return [found[n] for n in numbers]


def _evaluator(study: str, cands: list[Candidate]):
    """The worker's evaluator for the candidates' task, checked here (a dataset that moved: an input error)."""
    from nas.evaluators.datasets import load_task
    from nas.search.keys import TaskRef

    keys = {c.task_key for c in cands}
    if len(keys) != 1:
        raise NasInputError(f"study {study!r}: the chosen candidates were trained on {len(keys)} tasks; "
                            "confirm one task's candidates at a time")
    try:
        ref = TaskRef.from_key(keys.pop())
    except ValueError as exc:
        raise NasInputError(f"study {study!r}: cannot tell its task: {exc}") from None
    load_task(ref.dataset, ref.kind, None, ref.options_dict, *ref.splits)  # NasInputError if it cannot be read
    return ref.evaluator()


def distinct(cands: list[Candidate]) -> list[Candidate]:
    """One candidate per architecture, training and task (the lowest trial number): a reused candidate on the
    front beside its original is confirmed once, and both read the same seeds (``nas.search.read``)."""
    seen, out = set(), []
    for c in sorted(cands, key=lambda c: c.trial_number):
        key = (c.arch_id, c.train_key, c.task_key)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def plan(store: Store, study: str, cands: list[Candidate], k: int) -> tuple[list["_Job"], list["_Job"]]:
    """(every training that confirms ``cands`` with ``k`` seeds, those not done yet): a seed with a complete
    row of the same training settings and evaluator version is done."""
    jobs = jobs_for(distinct(cands), k)
    wanted = {(j.trial_number, j.seed): j.train_key for j in jobs}
    rows = []
    if sa.inspect(store.engine).has_table("nas_confirmations"):
        with store.session() as s:
            rows = s.execute(sa.select(Confirmation.trial_number, Confirmation.seed, Confirmation.train_key).where(
                Confirmation.study_name == study, Confirmation.state == "COMPLETE",
                Confirmation.trial_number.in_([c.trial_number for c in cands]))).all()
    done = {(n, seed) for n, seed, key in rows if wanted.get((n, seed)) == key}
    return jobs, [j for j in jobs if (j.trial_number, j.seed) not in done]


def jobs_for(cands: list[Candidate], k: int) -> list[_Job]:
    """Every (candidate, seed) training to confirm ``cands`` with ``k`` seeds."""
    from nas.search.keys import evaluation_key
    from nas.spaces import TrainSpec

    out = []
    for c in cands:
        train = TrainSpec.from_json(dict(c.train))
        for seed in seeds_for(train.seed, k):
            spec = TrainSpec(**{**train.to_json(), "seed": seed})
            out.append(_Job(c.trial_number, seed, dict(c.arch), spec.to_json(), evaluation_key(spec)))
    return out


def run_confirmations(store: Store, pool, study: str, cands: list[Candidate], k: int,
                      progress: bool = True) -> ConfirmSummary:
    """Train what ``cands`` lack of their ``k`` confirmation seeds on ``pool`` (started) and write each end to
    ``nas_confirmations``. A seed with a complete row of the same training settings and evaluator version is
    not trained again."""
    t0 = time.monotonic()
    jobs, todo = plan(store, study, cands, k)
    summary = ConfirmSummary(study, [c.trial_number for c in distinct(cands)], k)
    summary.found = len(jobs) - len(todo)
    if progress:
        print(f"nas: confirming {len(summary.trials)} candidate(s) of study {study} with {k} seeds each: {len(todo)} "
              f"training(s) to run" + (f", {summary.found} done earlier" if summary.found else ""),
              file=sys.stderr, flush=True)
    pending: dict[int, _Job] = dict(enumerate(todo))
    for number, job in pending.items():
        pool.submit({"trial_number": number, "arch": job.arch, "train": job.train, "weights": False})
    by_worker: dict[str, int] = {}
    finished = 0
    while pending:
        for msg in pool.poll(timeout=0.25):
            if msg.kind == "started":
                by_worker[msg.worker] = msg.trial_number
            elif msg.kind == "result":
                by_worker.pop(msg.worker, None)
                job = pending.pop(msg.trial_number, None)
                if job is None:
                    continue
                finished += 1
                ok = bool(msg.payload.get("ok"))
                _record(store, study, job, msg, ok)
                if ok:
                    summary.trained += 1
                else:
                    summary.failed += 1
                    summary.errors.append(f"trial {job.trial_number} seed {job.seed}: {msg.payload.get('error')}")
                if progress:
                    _say(job, msg.payload, ok, finished, len(todo))
            elif msg.kind == "worker_died":
                for worker, number in list(by_worker.items()):
                    if worker.endswith(":" + msg.worker):
                        del by_worker[worker]
                        job = pending.pop(number, None)
                        if job is not None:
                            error = "the worker process running it died (killed, out of memory, or crashed)"
                            _record(store, study, job, Message("result", number, worker, {"error": error}), False)
                            summary.failed += 1
                            summary.errors.append(f"trial {job.trial_number} seed {job.seed}: {error}")
            elif msg.kind == "workers_gone" and pending:
                raise NasRunFailed("all Ray workers stopped before the confirmation finished; what completed is "
                                   "kept, and the same command trains the rest")
    summary.wall_time_s = time.monotonic() - t0
    return summary


def _record(store: Store, study: str, job: _Job, msg: Message, ok: bool) -> None:
    """Write one training's end (replacing an earlier failed or outdated row of the same seed)."""
    payload = msg.payload
    values = dict(state="COMPLETE" if ok else "FAIL", train_key=job.train_key,
                  objectives=payload.get("objectives") if ok else None, curve=payload.get("curve") if ok else None,
                  wall_time_s=payload.get("wall_time_s"), error=None if ok else str(payload.get("error")),
                  worker=msg.worker, finished_at=utcnow())
    with store.session() as s:
        row = s.scalars(sa.select(Confirmation).where(
            Confirmation.study_name == study, Confirmation.trial_number == job.trial_number,
            Confirmation.seed == job.seed)).first()
        if row is None:
            s.add(Confirmation(study_name=study, trial_number=job.trial_number, seed=job.seed, **values))
        else:
            for k, v in values.items():
                setattr(row, k, v)


def _say(job: _Job, payload: dict, ok: bool, finished: int, total: int) -> None:
    if not ok:
        print(f"nas: trial {job.trial_number} seed {job.seed} failed: {payload.get('error')} [{finished}/{total}]",
              file=sys.stderr, flush=True)
        return
    obj = payload.get("objectives") or {}
    score = next((m for m in ("accuracy", "psnr") if m in obj), None)
    said = f"val {obj[score]:.4g}, test {obj.get('test_' + score, float('nan')):.4g}" if score else ""
    print(f"nas: trial {job.trial_number} seed {job.seed} done in {payload.get('wall_time_s') or 0:.1f} s: {said} "
          f"[{finished}/{total}]", file=sys.stderr, flush=True)
