"""Where each choice of the MLP-innovation seed sits against the dense hourglass front, on mnist5k.

The dense front: flat hourglass candidates (a fixed random lift to ``LIFT`` = 256, relu, batchnorm, dense W1
and W2, the residual stream) over bottlenecks 4–128 and depths 1–4; its Pareto front of accuracy against
params. Each new choice is trained at a few sizes on the same task, and reported beside the front's accuracy
at the same params (interpolated on the front linearly in log params; a candidate smaller than the
front's smallest point is compared with that point, one larger than its largest with the front's best):
``gap`` = its accuracy − the front's there. Positive: the choice lies above the dense front. ``expected``:
the bytes a test sample actually moved (``bandwidth_expected``: with exits taken and pruned gated connections
gone; otherwise ``bandwidth``).

Every study is a space file run by ``nas run FILE --storage URL --trials N --no-progress``, its candidates
enqueued beforehand (``papers.study``), each trained with ``--seeds`` training seeds (accuracy: their mean, ± their standard deviation;
mnist5k's test split is 750 images, so one seed's accuracy has a binomial standard error of about 1 point).

    python benchmarks/innovations.py [--epochs 20] [--seeds 3] [--workdir DIR] > benchmarks/results/innovations.txt

About 30 minutes on 2 CPU cores. Last line: ``<choice>_gap=…`` for each choice (the mean gap of its
candidates, in accuracy points) and ``minutes=…``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from papers import front, study  # noqa: E402

LIFT = 256
TASK = {"dataset": "mnist5k", "kind": "classification"}
OBJECTIVES = {"accuracy": "maximize", "params": "minimize", "bandwidth": "minimize", "bandwidth_expected": "minimize"}

# every searched key of the flat study with the dense hourglass's value: an enqueued candidate overrides some
FLAT_BASE = {"hidden_width": 32, "depth": 2, "activation": "relu", "weights": "dense", "exits": 0,
             "connections": "residual"}
FLAT_SPACE = {
    "lift": "fixed_random", "lift_width": LIFT, "norm": "batchnorm",
    "hidden_width": [4, 8, 16, 32, 64, 128], "depth": [1, 2, 4],
    "activation": ["relu", "prelu", "pwl_knots", "mix"],
    "activation_scope": {"choice": ["layer", "neuron"], "when": {"activation": ["prelu", "pwl_knots", "mix"]}},
    "weights": ["dense", "lowrank", "circulant", "monarch"],
    "rank": {"choice": [4, 8, 16], "when": {"weights": ["lowrank"]}},
    "monarch_blocks": {"choice": [4, 8, 16], "when": {"weights": ["monarch"]}},
    "exits": [0, 1],
    "exit_threshold": {"choice": [0.6, 0.9, 0.99], "when": {"exits": [1]}},
    "connections": ["residual", "gated_dense"],
    "gate_penalty": {"choice": [1.0e-3, 3.0e-2, 0.1], "when": {"connections": ["gated_dense"]}},
}
DENSE = [{"hidden_width": h, "depth": d} for h in (4, 8, 16, 32, 64, 128) for d in (1, 2, 4)]
# (choice, its candidates): each overrides FLAT_BASE
CHOICES = {
    "lowrank": [{"weights": "lowrank", "hidden_width": h, "rank": r} for h, r in ((64, 4), (64, 8), (128, 8), (128, 16))],
    "circulant": [{"weights": "circulant", "hidden_width": h} for h in (32, 64, 128)],
    "monarch": [{"weights": "monarch", "hidden_width": h, "monarch_blocks": b} for h, b in ((64, 8), (128, 8), (128, 16))],
    # the activations, per layer and per neuron, at two bottlenecks
    **{f"{a}_{scope}": [{"activation": a, "activation_scope": scope, "hidden_width": h} for h in (8, 32)]
       for a in ("prelu", "pwl_knots", "mix") for scope in ("layer", "neuron")},
    # early exit after every block of 4, two thresholds: accuracy with the exits taken, against params
    # (bandwidth_expected beside it: what a test sample actually moved)
    "exits": [{"exits": 1, "exit_threshold": t, "depth": 4, "hidden_width": h} for h in (16, 64) for t in (0.6, 0.9, 0.99)],
    # gated cross-layer connections at depth 4 (6 gates), three L1 weights, pruned after training below 0.01
    "gated_dense": [{"connections": "gated_dense", "depth": 4, "hidden_width": h, "gate_penalty": lam}
                    for h in (16, 64) for lam in (1.0e-3, 3.0e-2, 0.1)],
}

# the token mixers: mnist5k's 28 rows as 28 tokens of 28 pixels, a learned embedding, compared with the same
# dense front (params of the whole model) and with attention at the same width
MIXER_BASE = {"mixer": "attention", "lift_width": 32}
MIXER_SPACE = {
    "mixer": ["attention", "linear_attention", "conv", "maxstate", "token_mlp"],
    "mixer_kernel": {"choice": [3, 7], "when": {"mixer": ["conv"]}},
    "patch": 0, "lift": "learned", "lift_width": [32, 64], "hidden_width": 32, "depth": 2,
    "activation": "gelu", "norm": "layernorm",
}
MIXERS = {
    "attention": [{"mixer": "attention", "lift_width": w} for w in (32, 64)],
    "linear_attention": [{"mixer": "linear_attention", "lift_width": w} for w in (32, 64)],
    "conv": [{"mixer": "conv", "lift_width": w, "mixer_kernel": k} for w in (32, 64) for k in (3, 7)],
}


def front_at(fr: list[tuple[float, float]], params: float) -> float:
    """The front's accuracy at ``params``: linear in log params between its neighbours; its first point's
    accuracy below it, its best beyond it (the front is ascending in both)."""
    if params <= fr[0][0]:
        return fr[0][1]
    for (p0, s0), (p1, s1) in zip(fr, fr[1:]):
        if params <= p1:
            return s0 + (s1 - s0) * (math.log(params) - math.log(p0)) / (math.log(p1) - math.log(p0))
    return fr[-1][1]


def run_study(root: Path, url: str, name: str, space: dict, base: dict, cands: list[dict], epochs: int,
              seeds: int, lr: float) -> dict[tuple, dict]:
    """Train every candidate of ``cands`` (over ``base``) with each seed; (candidate's items) -> mean figures."""
    doc = {"task": TASK, "objectives": OBJECTIVES, "space": space,
           "train": {"epochs": epochs, "batch_size": 128, "lr": lr, "seed": list(range(seeds))},
           "search": {"sampler": "random", "workers": 2, "seed": 0}, "pruning": False}
    enqueue = [{**base, **c, "seed": s} for c in cands for s in range(seeds)]
    trials = study(root, url, name, doc, enqueue)
    out: dict[tuple, list[dict]] = {}
    for c in cands:
        want = {**base, **c}
        for t in trials:  # a trial's params hold every key, the fixed ones too
            if all(t["params"].get(k) == v for k, v in want.items()):
                out.setdefault(key(base, c), []).append(t["values"])
    return {k: {m: statistics.mean(v[m] for v in vs) for m in vs[0]}
            | {"n": len(vs), "sd": statistics.stdev(v["accuracy"] for v in vs) if len(vs) > 1 else 0.0}
            for k, vs in out.items()}


def key(base: dict, cand: dict) -> tuple:
    return tuple(sorted({**base, **cand}.items()))


def label(cand: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in cand.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--mixer-epochs", type=int, default=15)
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per candidate (default 3)")
    ap.add_argument("--workdir", help="where the space files and innovations.db go (default: a temporary folder)")
    args = ap.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="nas-innovations-"))
    root.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{root / 'innovations.db'}"
    print(f"# python benchmarks/innovations.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"# {dt.date.today().isoformat()}, 2 workers, {args.seeds} training seeds each; studies in {url}")
    t0 = time.perf_counter()
    flat = run_study(root, url, "innovations-flat", FLAT_SPACE, FLAT_BASE,
                     DENSE + [c for cs in CHOICES.values() for c in cs], args.epochs, args.seeds, 2.0e-3)
    dense = [flat[key(FLAT_BASE, c)] for c in DENSE if key(FLAT_BASE, c) in flat]
    fr = front([(v["params"], v["accuracy"]) for v in dense])
    print(f"\n## The dense hourglass, mnist5k, fixed random lift to {LIFT}, {args.epochs} epochs")
    print(f"{'candidate':<28} {'params':>8} {'bandwidth':>10} {'accuracy':>8} {'± sd':>6}")
    for c in DENSE:
        v = flat.get(key(FLAT_BASE, c))
        if v:
            print(f"{label(c):<28} {v['params']:>8,.0f} {v['bandwidth']:>10,.0f} {v['accuracy']:>8.3f} {v['sd']:>6.3f}")
    print("front: " + ", ".join(f"{p:,.0f} {a:.3f}" for p, a in fr))

    mixers = run_study(root, url, "innovations-mixers", MIXER_SPACE, MIXER_BASE,
                       [c for cs in MIXERS.values() for c in cs], args.mixer_epochs, args.seeds, 3.0e-3)
    gaps: dict[str, list[float]] = {}
    print("\n## Each choice against the dense front (gap: accuracy − the front's at the same params)")
    print(f"{'choice':<16} {'candidate':<58} {'params':>8} {'bandwidth':>10} {'expected':>10} {'accuracy':>8} "
          f"{'± sd':>6} {'front':>6} {'gap':>7}")
    rows = [(name, c, flat.get(key(FLAT_BASE, c))) for name, cs in CHOICES.items() for c in cs]
    rows += [(name, c, mixers.get(key(MIXER_BASE, c))) for name, cs in MIXERS.items() for c in cs]
    for name, c, v in rows:
        if v is None:
            print(f"{name:<16} {label(c):<58} did not complete")
            continue
        at = front_at(fr, v["params"])
        gap = v["accuracy"] - at
        gaps.setdefault(name, []).append(gap)
        expected = v.get("bandwidth_expected", v["bandwidth"])
        print(f"{name:<16} {label(c):<58} {v['params']:>8,.0f} {v['bandwidth']:>10,.0f} {expected:>10,.0f} "
              f"{v['accuracy']:>8.3f} {v['sd']:>6.3f} {at:>6.3f} {gap:>+7.3f}")
    minutes = (time.perf_counter() - t0) / 60
    print(f"\n({minutes:.1f} min; mixers: {args.mixer_epochs} epochs, 28 row tokens, learned embedding, 2 layers)")
    print(" ".join(f"{n}_gap={statistics.mean(g):+.4f}" for n, g in gaps.items()) + f" minutes={minutes:.1f}")


if __name__ == "__main__":
    main()
