"""Run candidates on Ray Tune workers.

Tune with a searcher per trial spends about 2 s of framework time per
candidate on a small machine (measured; see ``benchmarks/overhead.py``), more
than many candidates take to train. So nas asks Tune for ``workers``
long-lived trials, each a worker that takes candidates from a Ray queue and
puts results on another, and keeps every Optuna ask/tell and every SQL write in
the driver: one writer, no lock contention, and workers on other machines need
no access to the database. Tune still places the workers (CPU and GPU
shares), and restarts one whose process dies.
"""

from __future__ import annotations

import logging
import os
import queue as _queue
import shutil
import tempfile
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Protocol

_LOCAL_ENV = {
    # keep a local Ray on 127.0.0.1 (Ray otherwise rewrites it to the machine's address)
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}


def check_address(address: str | None, timeout: float = 3.0) -> None:
    """Fail fast, with a clear message, when a Ray head's GCS port does not answer.

    Ray itself retries an unreachable address for minutes. ``auto`` and other
    forms Ray resolves on its own are left to it.
    """
    import socket

    from nas.errors import NasInputError

    if address is None or address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise NasInputError(f"--address {address!r}: expected HOST:PORT of a Ray head (e.g. 127.0.0.1:6380)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise NasInputError(f"--address {address}: no Ray head answers there ({exc.strerror or exc}); "
                            "start one with `ray start --head --port PORT` or leave --address out") from None


class Evaluator(Protocol):
    """What a worker runs. ``setup`` once per worker process, then one call per candidate."""

    def setup(self, threads: int, device: str) -> None: ...
    def __call__(self, job: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class Message:
    kind: str  # "started" | "result" | "worker_died" | "workers_gone"
    trial_number: int | None = None
    worker: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


def _worker_loop(config: dict, tasks=None, results=None, evaluator: Evaluator | None = None, threads: int = 1):
    """Body of one Tune trial: a worker that evaluates candidates until told to stop."""
    import socket

    import ray
    from ray import tune

    ctx = tune.get_context()
    node = ray.get_runtime_context().get_node_id()[:8]
    worker = f"{socket.gethostname()}:{node}:{os.getpid()}:{ctx.get_trial_id()}"  # host:node:pid:tune-trial
    gpu_ids = ray.get_gpu_ids()
    device = "cuda" if gpu_ids else "cpu"
    evaluator.setup(threads, device)
    done = 0
    while True:
        job = tasks.get()
        if job is None:
            tune.report({"candidates": done})  # one result, so Tune's bookkeeping has something to read
            return
        done += 1
        results.put(Message("started", job["trial_number"], worker))
        try:
            payload = evaluator(job)
        except BaseException as exc:  # the candidate failed, not the worker: report and go on
            payload = {"ok": False, "error": _describe(exc)}
        results.put(Message("result", job["trial_number"], worker, payload))


def _describe(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


# Tune pickles its callbacks with the experiment state: they find the driver's
# event queue by key instead of holding it.
_EVENT_QUEUES: dict[int, "_queue.Queue[Message]"] = {}


def _on_trial_lost(self, iteration, trials, trial, **info) -> None:
    q = _EVENT_QUEUES.get(self.key)
    if q is not None:
        q.put(Message("worker_died", worker=trial.trial_id))


# Workers sharing one GPU by default: on an H200, one worker training the quickstart's candidates kept the GPU
# busy 16 % of the time (Python and launches dominate a small MLP's step); 8 trained 3.4x as many candidates per
# minute at 94 % busy, 4 only 2.8x (benchmarks/gpu_train.py, results/gpu_train.txt, 2026-12-04).
WORKERS_PER_GPU = 8


def default_workers(cpus: float, gpus: float) -> int:
    """Candidates training at once when neither ``--workers`` nor ``search.workers`` says: 1 on a cluster
    without GPUs; ``WORKERS_PER_GPU`` per GPU where it has some, at most one per CPU (each worker takes one)."""
    if gpus <= 0:
        return 1
    return max(1, min(int(cpus), round(WORKERS_PER_GPU * gpus)))


class WorkerPool:
    """``workers`` Tune trials fed through two Ray queues (None: ``default_workers`` of the cluster Ray sees)."""

    def __init__(self, workers: int | None, evaluator: Evaluator, address: str | None = None):
        self.workers = workers
        self.evaluator = evaluator
        self.address = address
        self._started_ray = False
        self._thread: threading.Thread | None = None
        self._events: _queue.Queue[Message] = _queue.Queue()
        self._tmp = tempfile.mkdtemp(prefix="nas-tune-")
        self.fit_error: BaseException | None = None

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        for k, v in _LOCAL_ENV.items():
            os.environ.setdefault(k, v)
        import ray
        from ray import tune
        from ray.util.queue import Queue

        logging.getLogger("ray").setLevel(logging.ERROR)
        # a dead worker is reported as its candidate's failure reason; Tune's own traceback is noise
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(
                include_dashboard=False,
                logging_level=logging.ERROR,
                log_to_driver=False,
                configure_logging=True,
            )
            if self.address is None:
                # "local": always a new private instance, never a cluster someone started on this machine
                kwargs.update(address="local", num_cpus=max(os.cpu_count() or 1, self.workers or 1),
                              _node_ip_address="127.0.0.1")
            else:
                kwargs.update(address=self.address)
            ray.init(**kwargs)
            self._started_ray = True
        total_cpus = ray.cluster_resources().get("CPU", 1)
        total_gpus = ray.cluster_resources().get("GPU", 0)
        if self.workers is None:
            self.workers = default_workers(total_cpus, total_gpus)
        resources = {"cpu": 1}
        if total_gpus:
            resources["gpu"] = min(1.0, total_gpus / self.workers)
        threads = max(1, int(total_cpus // self.workers))
        self.tasks = Queue()
        self.results = Queue()
        trainable = tune.with_resources(
            tune.with_parameters(
                _worker_loop, tasks=self.tasks, results=self.results, evaluator=self.evaluator, threads=threads
            ),
            resources,
        )
        events = self._events
        _EVENT_QUEUES[id(self)] = events
        watch = type("_Watch", (tune.Callback,), {
            "on_trial_error": _on_trial_lost,  # the worker died and will not be restarted
            "on_trial_recover": _on_trial_lost,  # the worker died and Tune restarts it
            "key": id(self),
        })()

        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(num_samples=self.workers, max_concurrent_trials=self.workers),
            run_config=tune.RunConfig(
                name="nas-workers",
                storage_path=self._tmp,
                verbose=0,
                callbacks=[watch],
                failure_config=tune.FailureConfig(max_failures=3),
            ),
        )

        def fit() -> None:
            try:
                tuner.fit()
            except BaseException as exc:  # surfaced to the driver through fit_error
                self.fit_error = exc
            finally:
                events.put(Message("workers_gone"))

        self._thread = threading.Thread(target=fit, name="nas-tune", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- use
    def submit(self, job: dict[str, Any]) -> None:
        self.tasks.put(job)

    def poll(self, timeout: float) -> list[Message]:
        """Messages from the workers (and Tune), waiting at most ``timeout`` seconds for the first.

        Tune's events come after the workers' messages taken in the same call: a worker puts
        "started" (a blocking put) before it can die, so once its death is seen here its "started" is
        already in the results queue, and the driver must read that first to know which candidate
        the dead worker held.
        """
        events: list[Message] = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except _queue.Empty:
                break
        out: list[Message] = []
        try:
            first = self.results.get(timeout=timeout) if timeout > 0 and not events else None
        except Exception:  # ray.util.queue.Empty
            first = None
        if first is not None:
            out.append(first)
        n = self.results.qsize()
        if n:
            out.extend(self.results.get_nowait_batch(n))
        return out + events

    def close(self) -> None:
        import gc

        import ray

        try:
            if self._thread is not None and self._thread.is_alive():
                for _ in range(self.workers):
                    self.tasks.put(None)
                self._thread.join(timeout=30)
        finally:
            # Release every Ray handle while Ray still runs: a queue's actor handle collected after
            # ray.shutdown() (by a later garbage collection, from any thread) makes Ray end the process.
            for name in ("tasks", "results"):
                q = self.__dict__.pop(name, None)
                if q is not None and ray.is_initialized():
                    ray.kill(q.actor, no_restart=True)
                del q
            self._thread = None
            gc.collect()
            if self._started_ray:
                ray.shutdown()
            shutil.rmtree(self._tmp, ignore_errors=True)
            _EVENT_QUEUES.pop(id(self), None)


