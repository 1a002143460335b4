"""The framework's cost per candidate: nas's own path vs plain Optuna vs Ray Tune + OptunaSearch.

All three run a zero-cost objective in one run on this machine, on SQLite files in a
temporary folder:

- nas: ``nas.search.run`` with an evaluator that returns at once (Ray Tune workers, the
  driver's Optuna ask/tell, nas's SQL records, dedupe and progress bookkeeping). Its figure
  is steady state: the time from the first to the last finished candidate over the candidates
  in between, so Ray's start-up (a few seconds, once per run) is left out and reported apart.
- optuna: an in-process ask/tell loop on an Optuna RDB study in a SQLite file, the same suggest calls.
- tune: Ray Tune + OptunaSearch with default settings, a trivial trainable; wall time of
  ``Tuner.fit`` over the number of trials.

    python benchmarks/overhead.py [--trials 200] [--tune-trials 20] [--workers 2]

Last line: ``overhead_ms=… optuna_ms=… tune_ms=… ratio_tune=… startup_s=… trials=… workers=…``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

SPACE = """\
name: overhead
task: {dataset: digits}
space:
  hidden_width: {int: [8, 512], log: true}
  depth: {int: [1, 5]}
  activation: [relu, gelu, silu]
search: {sampler: random, seed: 0}
pruning: false
"""


class ZeroCost:
    """An evaluator that trains nothing: objectives derived from a hash of the architecture."""

    def setup(self, threads: int, device: str) -> None:
        pass

    def __call__(self, job: dict) -> dict:
        h = int(hashlib.sha256(json.dumps(job["arch"], sort_keys=True).encode()).hexdigest()[:8], 16)
        width = job["arch"]["hidden_width"] * job["arch"]["depth"]
        return {"ok": True, "objectives": {"accuracy": (h % 1000) / 1000, "params": float(width * 100),
                                           "bandwidth": float(width * 400), "latency_ms": 0.0}}


def bench_nas(folder: Path, trials: int, workers: int) -> tuple[float, float]:
    import sqlalchemy as sa

    from nas.search import RunOptions, run
    from nas.search.store.models import Candidate
    from nas.search.store.storage import Store
    from nas.spaces import parse_space

    url = f"sqlite:///{folder / 'nas.db'}"
    t0 = time.perf_counter()
    summary = run(parse_space(SPACE, "overhead.yaml"),
                  RunOptions(storage=url, trials=trials, workers=workers, progress=False,
                             evaluator=ZeroCost(), dims=(64, 10)))
    total = time.perf_counter() - t0
    assert summary.complete == trials, summary
    store = Store(url, create=False)
    with store.session() as s:
        done = sorted(t for (t,) in s.execute(sa.select(Candidate.finished_at)))
    store.close()
    steady = (done[-1] - done[0]).total_seconds() / (len(done) - 1)
    startup = total - (done[-1] - done[0]).total_seconds()
    return steady * 1e3, startup


def bench_optuna(folder: Path, trials: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{folder / 'optuna.db'}", sampler=optuna.samplers.RandomSampler(0),
                                directions=["maximize", "minimize", "minimize"])
    zero = ZeroCost()
    t0 = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        arch = {"hidden_width": trial.suggest_int("hidden_width", 8, 512, log=True),
                "depth": trial.suggest_int("depth", 1, 5),
                "activation": trial.suggest_categorical("activation", ["relu", "gelu", "silu"])}
        o = zero({"arch": arch})["objectives"]
        study.tell(trial, [o["accuracy"], o["params"], o["bandwidth"]])
    return (time.perf_counter() - t0) / trials * 1e3


def bench_tune(folder: Path, trials: int, workers: int) -> float:
    import logging

    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    ray.init(include_dashboard=False, num_cpus=max(os.cpu_count() or 1, workers), logging_level=logging.ERROR,
             log_to_driver=False)
    zero = ZeroCost()

    def trainable(config):
        o = zero({"arch": config})["objectives"]
        tune.report({"accuracy": o["accuracy"], "params": o["params"], "bandwidth": o["bandwidth"]})

    space = {"hidden_width": tune.lograndint(8, 513), "depth": tune.randint(1, 6),
             "activation": tune.choice(["relu", "gelu", "silu"])}
    search = OptunaSearch(metric=["accuracy", "params", "bandwidth"], mode=["max", "min", "min"], seed=0)
    tuner = tune.Tuner(trainable, param_space=space,
                       tune_config=tune.TuneConfig(search_alg=search, num_samples=trials, max_concurrent_trials=workers),
                       run_config=tune.RunConfig(storage_path=str(folder / "tune"), verbose=0))
    t0 = time.perf_counter()
    tuner.fit()
    per = (time.perf_counter() - t0) / trials * 1e3
    ray.shutdown()
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--tune-trials", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nas-overhead-") as tmp:
        folder = Path(tmp)
        nas_ms, startup = bench_nas(folder, args.trials, args.workers)
        optuna_ms = bench_optuna(folder, args.trials)
        tune_ms = bench_tune(folder, args.tune_trials, args.workers)
    print(f"{'path':<34}{'ms per candidate':>18}")
    print(f"{'nas (Ray Tune workers, SQL)':<34}{nas_ms:>18.1f}   (+ {startup:.1f} s start-up per run)")
    print(f"{'plain Optuna ask/tell, SQLite':<34}{optuna_ms:>18.1f}")
    print(f"{'Ray Tune + OptunaSearch, defaults':<34}{tune_ms:>18.1f}")
    print(f"overhead_ms={nas_ms:.1f} optuna_ms={optuna_ms:.1f} tune_ms={tune_ms:.0f} "
          f"ratio_tune={tune_ms / nas_ms:.0f} startup_s={startup:.1f} trials={args.trials} workers={args.workers}")


if __name__ == "__main__":
    main()
