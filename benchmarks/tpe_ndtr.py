"""Search quality of nas's tpe with ``fast_ndtr`` (SciPy's log Φ) against Optuna's own log Φ, on spaces with
numeric parameters (the recorded tables are all-categorical, where TPE never evaluates a Gaussian mass, so
``search_quality.py`` cannot tell the two apart).

Two problems, each with nas's tpe defaults (multivariate, grouped, 10 random trials first) and ``--trials``
asks per study, over ``--seeds`` paired seeds: ZDT1 (2 objectives, 6 continuous parameters in [0, 1]) and a
mixed one shaped like a nas space (log-scaled ints for widths, an int depth, a log-scaled float learning
rate, a categorical): accuracy-like score against a cost. Per study: the hypervolume of its front on a fixed
reference point (``nas.search.quality.hypervolume``: divided by the product of the reference's non-zero
coordinates); per problem: the median over the seeds of each variant, and how many seeds each wins.

    python benchmarks/tpe_ndtr.py [--seeds 20] [--trials 150]

Last line: ``zdt1_ratio=<fast median / plain median> mixed_ratio=<…> seeds=<n> trials=<n>``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np
import optuna

from nas.search import quality
from nas.search.execution.samplers import make_sampler


def zdt1(trial: optuna.Trial) -> tuple[float, float]:
    x = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]
    g = 1 + 9 * sum(x[1:]) / 5
    return x[0], g * (1 - math.sqrt(x[0] / g))


def mixed(trial: optuna.Trial) -> tuple[float, float]:
    width = trial.suggest_int("width", 8, 1024, log=True)
    depth = trial.suggest_int("depth", 1, 6)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    act = trial.suggest_categorical("activation", ["relu", "gelu", "silu"])
    fit = 1 - math.exp(-width * depth / 300) - 0.15 * (math.log10(lr) + 2.5) ** 2 + {"relu": 0, "gelu": 0.03,
                                                                                        "silu": 0.02}[act]
    cost = width * width * depth + 64 * width
    return -fit, cost  # both minimised


PROBLEMS = {"zdt1": (zdt1, [1.1, 11.0]), "mixed": (mixed, [0.0, 2.0e6])}


def hv(study: optuna.Study, reference: list[float]) -> float:
    done = np.array([t.values for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
    return float(quality.hypervolume(done, ["minimize", "minimize"], np.array(reference)))


def run(problem: str, seed: int, trials: int, fast: bool) -> float:
    objective, reference = PROBLEMS[problem]
    sampler = make_sampler("tpe", seed, trials, 1, {"fast_ndtr": fast})
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=trials)
    return hv(study, reference)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--trials", type=int, default=150)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    ratios = {}
    for problem in PROBLEMS:
        plain, fast, secs = [], [], {True: 0.0, False: 0.0}
        for seed in range(args.seeds):
            for variant, out in ((False, plain), (True, fast)):
                t = time.perf_counter()
                out.append(run(problem, seed, args.trials, variant))
                secs[variant] += time.perf_counter() - t
        wins = sum(f > p for f, p in zip(fast, plain))
        ties = sum(f == p for f, p in zip(fast, plain))
        ratios[problem] = statistics.median(fast) / statistics.median(plain)
        print(f"{problem}: hypervolume median plain {statistics.median(plain):.4f} "
              f"[{np.percentile(plain, 25):.4f}, {np.percentile(plain, 75):.4f}], fast_ndtr "
              f"{statistics.median(fast):.4f} [{np.percentile(fast, 25):.4f}, {np.percentile(fast, 75):.4f}]; "
              f"fast_ndtr higher on {wins}, equal on {ties}, lower on {args.seeds - wins - ties} of {args.seeds} "
              f"seeds; sampler seconds plain {secs[False]:.0f}, fast_ndtr {secs[True]:.0f}", flush=True)
    print(f"{time.perf_counter() - t0:.0f} s in all")
    print(f"zdt1_ratio={ratios['zdt1']:.4f} mixed_ratio={ratios['mixed']:.4f} seeds={args.seeds} "
          f"trials={args.trials}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
