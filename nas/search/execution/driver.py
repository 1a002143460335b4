"""``nas run``: drive an Optuna study whose candidates train on Ray Tune workers.

The driver is the only writer: it asks Optuna for a candidate, freezes it
into an ArchSpec, computes what is known before training (params,
bandwidth), reuses an earlier result for the same architecture and training
settings, sends the rest to the workers, and records every result in SQL.

Just over 500 lines: ``run`` (opening, resuming, closing a study) and the ``_Driver`` loop are one flow read
together; the pieces it calls are their own modules (``pruning``: the rung table, ``recorder``: the SQL
records, ``history``: front and hypervolume, ``dispatch``: the workers).
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
import sqlalchemy as sa

from nas.errors import NasInputError, NasRunFailed  # noqa: F401 (NasRunFailed: re-exported)
from nas.evaluators import load_task, static_objectives
from nas.evaluators.names import EVALUATOR_VERSION
from nas.evaluators.train import score_metric
from nas.evaluators.worker import TrainEvaluator
from nas.search.execution.dispatch import Evaluator, Message, WorkerPool, check_address
from nas.search.store.models import Candidate, Run, utcnow
from nas.search.execution.progress import RunProgress
from nas.search import optuna_private
from nas.search.execution import pruning
from nas.search.execution.samplers import check_options, make_sampler
from nas.search.execution.history import History
from nas.search.execution.recorder import InFlight, Recorder
from nas.search.keys import TaskRef, evaluation_key  # noqa: F401 (evaluation_key: re-exported)
from nas.search.store.sole_writer import SoleWriterStorage
from nas.search.store.storage import DEFAULT_STORAGE, Store, optuna_storage, redact, weights_root
from nas.version import __version__
from nas.spaces import SearchSpace

HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0
REPEATS_STOP = 100  # proposals in a row of architectures already trained after which the run ends (converged)
SPACE_ATTR = "nas:space_sha"


@dataclass
class RunOptions:
    storage: str = DEFAULT_STORAGE
    study: str | None = None
    trials: int | None = None
    workers: int | None = None
    address: str | None = None
    resume: bool = False
    progress: bool = True
    # a different evaluator (benchmarks, fault tests); it must be importable on the workers
    evaluator: Evaluator | None = None
    dims: tuple[int, int] | None = None  # (d_in, d_out) when ``evaluator`` needs no dataset
    in_shape: tuple = ()  # with ``dims``: the shape of one input (a mixer's tokens), () for a flat vector
    # another worker pool, made as pool(workers, evaluator): nas.search.replay.SimulatedPool replays a table
    pool: Callable[[int, Evaluator], Any] | None = None
    weights: bool = True  # keep each candidate's trained weights (False: nothing to export, e.g. a benchmark table)
    # a budget besides ``trials``: once it returns True no new candidate is asked for, and the run ends when
    # those in flight have finished (benchmarks: a replay's training seconds, nas.search.replay.SimulatedPool)
    stop_when: Callable[[], bool] | None = None
    timeout_s: float | None = None  # a wall-clock budget (--timeout, search.timeout): no candidate starts after it


@dataclass
class RunSummary:
    study: str
    complete: int
    failed: int
    reused: int
    pareto: int
    wall_time_s: float
    trials_target: int
    run_id: int
    errors: list[str] = field(default_factory=list)
    infeasible: int = 0  # sampled candidates over a constraint, recorded untrained
    stopped: int = 0  # candidates stopped early by the rung rule (they count in trials, as complete ones do)
    ended_by: str = "trials"  # trials (the study reached them) | timeout | converged | budget (stop_when)
    confirmed: Any = None  # with search.confirm: the front's confirmation (nas.search.execution.confirm.ConfirmSummary)


class _Suggest:
    """Adapts an Optuna trial to nas.spaces' ``Suggest`` protocol."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def categorical(self, label, choices):
        return self.trial.suggest_categorical(label, list(choices))

    def int(self, label, low, high, log, step):
        return self.trial.suggest_int(label, low, high, step=step or 1, log=log)

    def float(self, label, low, high, log, step):
        return self.trial.suggest_float(label, low, high, step=step, log=log)


def space_sha(space: SearchSpace) -> str:
    return hashlib.sha256(space.text.encode()).hexdigest()


def run(space: SearchSpace, opts: RunOptions) -> RunSummary:
    trials = opts.trials if opts.trials is not None else space.search.trials
    workers = opts.workers if opts.workers is not None else space.search.workers
    if trials < 1:
        raise NasInputError(f"--trials: must be at least 1, found {trials}")
    if workers is not None and workers < 1:
        raise NasInputError(f"--workers: must be at least 1, found {workers}")
    study_name = opts.study or space.name
    base_dir = str(Path(space.file).resolve().parent)

    # ---- everything that can be wrong with the input is checked before any write
    ref = TaskRef.of_space(space, base_dir)  # the task: its key, the dataset's settings (sat's, an npz's layout)
    splits = (float(space.task.test), float(space.task.validation))
    if opts.evaluator is None:
        try:
            task = load_task(space.task.dataset, space.task.kind, base_dir, ref.options_dict, *splits)
        except NasInputError as exc:  # what is wrong with the data: said where the file names it
            raise NasInputError(f"{space.place('task', 'dataset')}: {exc}") from None
        d_in, d_out, in_shape = task.d_in, task.d_out, task.in_shape
        space.check_task(d_in, in_shape, task.feature_groups, d_out)
        check_splits(space, task)
        evaluator: Evaluator = TrainEvaluator(space.task.dataset, space.task.kind, base_dir, ref.options_dict, splits)
        del task
    else:
        if opts.dims is None:
            raise ValueError("RunOptions.dims is needed with a custom evaluator")
        d_in, d_out = opts.dims
        in_shape = tuple(opts.in_shape)
        evaluator = opts.evaluator
    task_key = ref.key()

    check_options(space)
    check_address(opts.address)
    sha = space_sha(space)
    n_trials = _check_study(opts, study_name, sha)  # read-only: a refused run writes nothing
    exists = n_trials is not None
    store = Store(opts.storage)  # the writer: creates the tables, or brings an older database's up to date
    storage = SoleWriterStorage(optuna_storage(opts.storage))  # this run is the study's only writer
    if exists:
        _check_no_live_run(store, study_name)

    pool = opts.pool(workers or 1, evaluator) if opts.pool is not None else WorkerPool(workers, evaluator, opts.address)
    try:
        pool.start()
        workers = pool.workers  # resolved: None is the default for the cluster Ray sees (dispatch.default_workers)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        pool.close()
        if opts.address is None:
            raise
        raise NasInputError(f"--address {opts.address}: cannot join the Ray cluster: {exc}") from None

    try:
        directions = list(space.objectives.values())
        metrics = list(space.objectives)
        seed = space.search.seed
        if seed is not None and exists:  # a resumed study must not replay the sampler's first proposals
            seed += n_trials
        sampler = make_sampler(space.search.sampler, seed, trials, workers, space.search.options)
        study = optuna.create_study(
            study_name=study_name, storage=storage, directions=directions, sampler=sampler, load_if_exists=True
        )
        if SPACE_ATTR not in study.user_attrs:  # new, or made outside nas (e.g. with enqueued trials)
            study.set_user_attr(SPACE_ATTR, sha)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(metrics)
            study.set_user_attr("nas:space_name", space.name)
        with store.session() as s:
            run_row = Run(
                study_name=study_name, space_text=space.text, space_sha=sha, sampler=space.search.sampler,
                workers=workers, target_trials=trials, host=socket.gethostname(), pid=os.getpid(),
                nas_version=__version__,
            )
            s.add(run_row)
        requeued, told = _recover_interrupted(store, study, study_name, metrics)
        if requeued and opts.progress:
            print(f"nas: {requeued} candidate(s) left running by an earlier run were marked failed and queued "
                  "again", file=sys.stderr)
        if told and opts.progress:
            print(f"nas: {len(told)} candidate(s) an earlier run had finished but not told Optuna were told now",
                  file=sys.stderr)
        plan = Plan(study_name, metrics, trials, workers, d_in, d_out, tuple(in_shape), task_key)
        driver = _Driver(space, study, store, pool, run_row.id, plan, opts)
        driver.record_recovered(told)
        summary = driver.loop()
        if space.search.confirm is not None and summary.ended_by == "timeout":
            if opts.progress:
                print(f"nas: the time budget ended the run: the front is not confirmed (nas confirm {study_name} "
                      f"--seeds {space.search.confirm.seeds} does it)", file=sys.stderr)
        elif space.search.confirm is not None and summary.complete:  # search.confirm: the front gets its seeds
            from nas.search.execution.confirm import run_confirmations

            front = sorted(t.number for t in study.best_trials)
            with store.session() as s:
                cands = list(s.scalars(sa.select(Candidate).where(Candidate.study_name == study_name,
                                                                  Candidate.trial_number.in_(front))))
            cands.sort(key=lambda c: c.trial_number)
            summary.confirmed = run_confirmations(store, pool, study_name, cands, space.search.confirm.seeds,
                                                  opts.progress)
        return summary
    finally:
        pool.close()
        store.close()


def check_splits(space: SearchSpace, task) -> None:
    """NasInputError naming the key: a split the npz gives while the space file also sets its fraction (one
    would be ignored), or a classification validation split with fewer samples than the task has classes."""
    set_keys = space.task.model_fields_set
    for key, name in (("test", "X_test"), ("validation", "X_val")):
        if key in set_keys and key in task.given:
            raise NasInputError(f"{space.place('task', key)}: {space.task.dataset} gives its own {key} split "
                                f"({name}), so task.{key} would be ignored; remove task.{key} (or {name})")
    if task.kind == "classification" and len(task.y_val) < task.d_out:
        key = "validation" if "validation" in set_keys else "test" if "test" in set_keys else "dataset"
        raise NasInputError(f"{space.place('task', key)}: the validation split has {len(task.y_val)} samples, fewer "
                            f"than the task's {task.d_out} classes; it cannot tell the candidates apart: raise "
                            "task.validation (or give more samples)")


def _check_study(opts: RunOptions, study_name: str, sha: str) -> int | None:
    """The checks of an existing study, made read-only before anything is written (a refused run leaves the
    database as it was): ``--resume`` needs the study; a study run from another space file, or holding
    results of another evaluator version, is refused. Returns the study's trial count, or None if it is new."""
    from nas.search.store.storage import sqlite_path

    db = sqlite_path(opts.storage)
    where = redact(opts.storage)
    if db is not None and not db.exists():
        if opts.resume:
            raise NasInputError(f"--resume: no study {study_name!r} in {where} to resume (no database there)")
        return None
    reader = Store(opts.storage, create=False)
    try:
        summaries = {}
        if reader.optuna_ready():
            storage = optuna_storage(opts.storage, read_only=True)
            summaries = {s.study_name: s for s in optuna.study.get_all_study_summaries(storage,
                                                                                      include_best_trial=False)}
        if study_name not in summaries:
            if opts.resume:
                raise NasInputError(f"--resume: no study {study_name!r} in {where} to resume")
            return None
        old = optuna.load_study(study_name=study_name, storage=storage)
        if old.user_attrs.get(SPACE_ATTR) not in (None, sha):
            raise NasInputError(
                f"study {study_name!r} in {where} was run from a different space file; "
                f"pass --study NEW_NAME to start another study (or restore the original file to resume)"
            )
        if reader.has_nas_tables():
            _check_evaluator_version(reader, study_name, where)
        return summaries[study_name].n_trials
    finally:
        reader.close()


def _check_no_live_run(store: Store, study_name: str) -> None:
    with store.session() as s:
        live = s.scalars(sa.select(Run).where(Run.study_name == study_name, Run.state == "RUNNING")).all()
        now = utcnow()
        for r in live:
            beat = r.heartbeat_at if r.heartbeat_at.tzinfo else r.heartbeat_at.replace(tzinfo=now.tzinfo)
            age = (now - beat).total_seconds()
            dead_here = r.host == socket.gethostname() and not _pid_alive(r.pid)
            if age < STALE_AFTER_S and not dead_here:
                raise NasInputError(
                    f"study {study_name!r} is being run right now by nas pid {r.pid} on {r.host} "
                    f"(heartbeat {age:.0f} s ago); wait for it to finish or stop it first"
                )
            r.state, r.finished_at = "INTERRUPTED", utcnow()
            r.message = "stopped without finishing (no heartbeat)"


def _check_evaluator_version(store: Store, study_name: str, where: str) -> None:
    """NasInputError if the study holds results scored by another evaluator version: resuming it would mix two
    definitions of the objectives in one front, one hypervolume and one rung table."""
    suffix = f".e{EVALUATOR_VERSION}"
    with store.session() as s:
        other = s.scalar(sa.select(sa.func.count()).select_from(Candidate).where(
            Candidate.study_name == study_name, Candidate.state.in_(("COMPLETE", "PRUNED")),
            ~Candidate.train_key.endswith(suffix)))
    if other:
        raise NasInputError(
            f"study {study_name!r} in {where} holds {other} candidate(s) scored by another version of nas's "
            f"evaluator (this nas scores with version {EVALUATOR_VERSION}; nas.evaluators.train says what "
            "changed); resuming it would mix two definitions of the objectives. Pass --study NEW_NAME to "
            "start a new study from the same space file (the old results are not reused either)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover_interrupted(store: Store, study: optuna.Study, study_name: str,
                         metrics: list[str]) -> tuple[int, list[int]]:
    """Trials left RUNNING by a run that died: failed and queued to run again, unless nas had already
    recorded their end (a run killed between its own record and Optuna's tell): then Optuna is told it.
    Returns (how many were queued again, the numbers of those told)."""
    n, told = 0, []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        with store.session() as s:
            done = s.execute(
                sa.select(Candidate.state, Candidate.objectives, Candidate.error)
                .where(Candidate.study_name == study_name, Candidate.trial_number == t.number,
                       Candidate.state.in_(("COMPLETE", "PRUNED", "FAIL")))
            ).first()
        if done is not None:
            state, objectives, error = done
            if state == "COMPLETE" and objectives and all(m in objectives for m in metrics):
                study.tell(t.number, [float(objectives[m]) for m in metrics])
                told.append(t.number)
                continue
            if state in ("PRUNED", "FAIL") and error and not error.startswith("interrupted"):
                optuna_private.set_fail_reason(study, t, error)
                study.tell(t.number, state=getattr(optuna.trial.TrialState, state))
                told.append(t.number)
                continue
        reason = "interrupted: the nas run driving it stopped before it finished; re-queued"
        optuna_private.set_fail_reason(study, t, reason)
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"nas:retry_of": t.number})
        with store.session() as s:
            s.execute(
                sa.update(Candidate)
                .where(Candidate.study_name == study_name, Candidate.trial_number == t.number)
                .values(state="FAIL", error=reason, finished_at=utcnow())
            )
        n += 1
    return n, told


@dataclass(frozen=True)
class Plan:
    """What one run searches, resolved from the space file, the options and the task."""

    study_name: str
    metrics: list[str]  # the objectives, in the space file's order
    trials: int  # candidates the study should reach (complete + stopped early)
    workers: int
    d_in: int  # the task's input features, outputs and input shape: what a sampled point is frozen with
    d_out: int
    in_shape: tuple
    task_key: str  # what a result depends on besides the architecture and its training (reuse)


class _Driver:
    """The ask / dispatch / record loop of one run (the recorder, the history and the rung table do the rest)."""

    def __init__(self, space, study, store, pool, run_id: int, plan: Plan, opts: RunOptions):
        self.space, self.study, self.store, self.pool = space, study, store, pool
        self.run_id, self.opts = run_id, opts
        study_name, metrics, trials = plan.study_name, plan.metrics, plan.trials
        self.study_name, self.metrics, self.trials = study_name, metrics, trials
        self.workers, self.d_in, self.d_out, self.in_shape = plan.workers, plan.d_in, plan.d_out, plan.in_shape
        self.inflight: dict[int, InFlight] = {}
        self.waiting: dict[tuple, list[InFlight]] = {}
        self.by_worker: dict[str, int] = {}
        self.max_infeasible = 50 * trials  # candidates over a constraint: recorded, never trained, not budget
        self.max_failures = max(10, trials)
        self.last_beat = time.monotonic()
        self.history = History(store, study, study_name, metrics, [space.objectives[m] for m in metrics],
                               space.search.reference)
        self.rung_table = pruning.RungTable(space.pruning, "val_" + score_metric(space.task.kind))
        self.rec = Recorder(store, study, study_name, run_id, plan.task_key, metrics, self.history, self.rung_table,
                            weights_root(opts.storage) / study_name, space.constraints)
        self.complete_at_start = self.rec.complete
        self.repeats = 0  # candidates proposed in a row that were trained or training already (no training)
        self.ended_by = "trials"  # why no more candidates are asked for: see RunSummary.ended_by
        self.rung_table.load(store, study_name)  # a resumed study: its trained candidates' rung scores

    def record_recovered(self, numbers: list[int]) -> None:
        """Progress rows for the trials an earlier run finished but Optuna heard of only now."""
        self.history.record_recovered(numbers, self.rec.complete)

    # ------------------------------------------------------------ main loop
    def loop(self) -> RunSummary:
        t0 = self.t0 = time.monotonic()
        deadline = t0 + self.opts.timeout_s if self.opts.timeout_s else None
        progress = RunProgress(self.study_name, self.trials, enabled=self.opts.progress, metrics=self.metrics)
        state, message = "FINISHED", None
        try:
            with progress:
                progress.update(self._snapshot(t0))
                while self.rec.complete + self.rec.stopped < self.trials:
                    if self.ended_by == "trials":  # no reason yet to stop asking
                        if deadline is not None and time.monotonic() >= deadline:
                            self._end("timeout", f"the run's time budget ({self.opts.timeout_s:g} s) is spent: no "
                                      "new candidate starts; those running finish")
                        elif self.opts.stop_when is not None and self.opts.stop_when():
                            self.ended_by = "budget"
                    spent = self.ended_by != "trials"
                    if not spent:
                        self._fill()
                    if not self.inflight and not self.waiting and (
                            spent or self.rec.complete + self.rec.stopped >= self.trials):
                        break
                    self.rec.write_pending()  # workers' takes not written with an ask: before waiting
                    for msg in self.pool.poll(timeout=0.25):
                        self._handle(msg, progress)
                    if self.rec.failed >= self.max_failures:
                        raise _Abort(f"stopped after {self.rec.failed} failed candidates; last error: "
                                     f"{self.rec.errors[-1]}")
                    self._heartbeat()
                    progress.update(self._snapshot(t0))
                progress.update(self._snapshot(t0))
        except _Abort as exc:
            state, message = "FAILED", str(exc)
            self._fail_inflight("the run stopped: " + str(exc))
            raise NasRunFailed(str(exc)) from None
        except BaseException as exc:
            state, message = "INTERRUPTED", f"{type(exc).__name__}"
            self._fail_inflight("interrupted: the nas run was stopped while this candidate was running; re-queued",
                                requeue=True)
            raise
        finally:
            with self.store.session() as s:
                r = s.get(Run, self.run_id)
                r.state, r.finished_at, r.message = state, utcnow(), message
        rec = self.rec
        pareto = len(self.study.best_trials) if rec.complete else 0
        return RunSummary(self.study_name, rec.complete, rec.failed, rec.reused, pareto,
                          time.monotonic() - t0, self.trials, self.run_id, rec.errors, rec.infeasible,
                          stopped=rec.stopped, ended_by=self.ended_by)

    def _end(self, reason: str, words: str) -> None:
        """Stop asking for candidates (those in flight finish): the run ends by ``reason``."""
        self.ended_by = reason
        if self.opts.progress:
            print(f"nas: {words}", file=sys.stderr, flush=True)

    def _snapshot(self, t0: float) -> dict[str, Any]:
        return {
            "complete": self.rec.complete,
            "failed": self.rec.failed,
            "running": len(self.by_worker),
            "queued": len(self.inflight) - len(self.by_worker) + sum(map(len, self.waiting.values())),
            "elapsed": time.monotonic() - t0,
            "done_this_run": self.rec.complete - self.complete_at_start,
            "study": self.study,
        }

    def _heartbeat(self) -> None:
        if time.monotonic() - self.last_beat < HEARTBEAT_S:
            return
        self.last_beat = time.monotonic()
        with self.store.session() as s:
            s.execute(sa.update(Run).where(Run.id == self.run_id).values(heartbeat_at=utcnow()))

    # ------------------------------------------------------------- asking
    def _fill(self) -> None:
        n_waiting = sum(map(len, self.waiting.values()))
        # Several workers: up to two candidates each in flight, so none waits for the driver. One worker: the next
        # candidate is asked only once every earlier one is recorded, so what each ask sees does not depend on
        # timing and a seeded study is repeatable.
        ahead = 1 if self.workers == 1 else 2 * self.workers
        while (self.rec.complete + self.rec.stopped + len(self.inflight) + n_waiting < self.trials
               and len(self.inflight) < ahead):
            trial = self.study.ask()
            try:
                values = self.space.sample(_Suggest(trial))
                arch, train = self.space.freeze(values, self.d_in, self.d_out, self.in_shape)
            except BaseException:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            train_key = evaluation_key(train)
            trial.set_user_attr("arch_id", arch.arch_id)
            try:
                static = static_objectives(arch)
            except ValueError as exc:  # a shape that cannot be built (a patch from a range that does not tile)
                self._infeasible(trial, arch, train_key, train, values, {}, {}, why=f"infeasible: {exc}")
                continue
            over = self.space.violations(static)
            for metric, violation in over.items():  # what constrained samplers read (> 0: infeasible)
                trial.set_constraint(metric, violation)
            if any(v > 0 for v in over.values()):
                self._infeasible(trial, arch, train_key, train, values, static, over)
                continue
            item = self.rec.started(trial, arch, train_key, train, values, static)
            reused = self.rec.reuse(item)
            twin = not reused and any(f.key == item.key for f in self.inflight.values())
            # a repeat: the sampler proposed what this study trained (or is training); another study's reuse is new
            self.repeats = self.repeats + 1 if reused == "own" or twin else 0
            if reused:
                if self.repeats >= REPEATS_STOP:
                    self._converged()
                    return
                continue
            if twin:  # the same candidate is training: this one takes its result
                self.waiting.setdefault(item.key, []).append(item)
                n_waiting += 1
                if self.repeats >= REPEATS_STOP:
                    self._converged()
                    return
                continue
            self.inflight[trial.number] = item
            self.pool.submit(self._job(trial.number, arch.to_json(), train.to_json(), static))

    def _converged(self) -> None:
        """The sampler proposed only architectures this study had trained (or was training) for REPEATS_STOP
        candidates in a row (a converged TPE on a small finite space): each would be reused at no training
        cost but count in trials and cost the driver time, so the run ends, saying why."""
        self._end("converged", f"the sampler's last {REPEATS_STOP} proposals were all architectures this study had "
                  f"trained or was training: it has converged or exhausted the space ({self.rec.complete} complete); "
                  "the run ends here (widen the space, or change the sampler or its seed, to search further)")

    # ------------------------------------------------------------ results
    def _handle(self, msg: Message, progress: "RunProgress") -> None:
        if msg.kind == "started":
            self.by_worker[msg.worker] = msg.trial_number
            if msg.trial_number in self.inflight:
                self.inflight[msg.trial_number].worker = msg.worker
                self.rec.running(self.inflight[msg.trial_number], msg.worker)
        elif msg.kind == "result":
            self.by_worker.pop(msg.worker, None)
            item = self.inflight.pop(msg.trial_number, None)
            if item is None:
                return  # already failed (its worker was reported dead); a late result is dropped
            if msg.payload.get("ok") and msg.payload.get("stopped_early"):
                self.rec.finish_stopped(item, msg.payload, msg.worker, self.space.pruning.reduction_factor)
                progress.candidate_stopped(item.trial.number, msg.payload.get("epochs_trained"))
            elif msg.payload.get("ok"):
                self.rec.finish_ok(item, msg.payload, msg.worker)
                progress.candidate_done(item.trial.number, self.rec.values_of(msg.payload["objectives"]),
                                        msg.payload.get("wall_time_s"), self._snapshot(self.t0))
            else:
                self.rec.finish_failed(item, msg.payload.get("error") or "unknown error", msg.worker)
                progress.candidate_failed(item.trial.number, msg.payload.get("error"))
            for twin in self.waiting.pop(item.key, []):
                self._resolve_twin(twin)
        elif msg.kind == "worker_died":
            for worker, number in list(self.by_worker.items()):
                if worker.endswith(":" + msg.worker):
                    del self.by_worker[worker]
                    item = self.inflight.pop(number, None)
                    if item is not None:
                        self.rec.finish_failed(item, "the worker process running it died (killed, out of memory, "
                                            "or crashed); its worker was restarted", worker)
                        for twin in self.waiting.pop(item.key, []):
                            self._resolve_twin(twin)
        elif msg.kind == "workers_gone":
            if self.rec.complete + self.rec.stopped < self.trials:
                why = f" ({type(self.pool.fit_error).__name__}: {self.pool.fit_error})" if self.pool.fit_error else ""
                raise _Abort("all Ray workers stopped before the study finished" + why)

    def _job_of(self, item: InFlight) -> dict[str, Any]:
        arch, train = self.rec.specs_of(item)
        return self._job(item.trial.number, arch, train, item.values_static)

    def _job(self, number: int, arch: dict, train: dict, static: dict[str, float]) -> dict[str, Any]:
        job = {"trial_number": number, "arch": arch, "train": train}
        if not self.opts.weights:
            job["weights"] = False
        rules = self.rung_table.rules(static, int(train["epochs"]), arch)  # thresholds the worker applies
        if rules is not None:
            job["stop_rules"] = rules
        return job

    def _infeasible(self, trial, arch, train_key, train, values, static, over: dict[str, float],
                    why: str = "") -> None:
        why = self.rec.finish_infeasible(trial, arch, train_key, train, values, static, over, why)
        if self.rec.infeasible >= self.max_infeasible:
            raise _Abort(f"{self.rec.infeasible} sampled candidates were infeasible, none trained for them "
                         f"(last: {why}); loosen the constraints or narrow the space")

    def _resolve_twin(self, twin: InFlight) -> None:
        if not self.rec.reuse(twin):  # the original failed: this one gets its own try
            self.inflight[twin.trial.number] = twin
            self.pool.submit(self._job_of(twin))

    def _fail_inflight(self, reason: str, requeue: bool = False) -> None:
        """Fail what is running or waiting; with ``requeue`` the next run tries the same candidates again."""
        for item in list(self.inflight.values()) + [t for ts in self.waiting.values() for t in ts]:
            try:
                self.rec.finish_failed(item, reason, item.worker)
                if requeue:
                    self.study.enqueue_trial(item.trial.params, user_attrs={"nas:retry_of": item.trial.number})
            except Exception:  # the database may be what failed; the next run recovers these
                pass
        self.inflight.clear()
        self.waiting.clear()

class _Abort(Exception):
    pass
