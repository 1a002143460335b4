"""Fixed Parameter Expansion on the FPE paper's Boolean DNF task (arXiv 2510.04500, SEEDS.md section 3).

The task: a DNF formula of ``--clauses`` clauses of ``--literals`` literals
over ``--variables`` Boolean variables, and a balanced sample of ``--train``
+ ``--test`` assignments per seed; the formula and the samples change with
the seed. Clause variables are either drawn as ``nas.evaluators.sat`` draws
them (each clause its own random set; clauses may share variables; the
samples are ``nas.evaluators.sat.generate``'s), or with ``--disjoint``
from one random permutation of the variables, so no two clauses share a
variable (the samples are then drawn here by the same balanced rejection
sampling). Variables in no clause are distractors.

The model: one hidden layer of ``--hidden`` ReLU neurons and one output,
nas's own ``FPEPair(d_z, hidden, "relu", α, d_out=1)`` (no biases) plus a
scalar output bias. The inputs are the assignments as ±1 with a constant 1
appended (d_z = variables + 1), the hidden layer's bias as a weight column
that FPE splits like any input. Dense: hidden·(d_z + 1) non-zeros (+ the
output bias). Every FPE variant keeps that count: ``FPEPair.expand`` prunes
back to it.

Training: full-batch Adam (lr 0.01), binary cross-entropy, ``--steps``
steps in all. FPE variants train dense for the first half, expand, and
train the second half with a new optimizer; dense trains all the steps.
Splits at α = 2 and 4:

- random: each input of each neuron to a uniformly random child;
- clause (the oracle): clauses j go to child ``j·α // clauses`` (α disjoint
  sets of clauses); each variable to the child holding most of the clauses
  it appears in (ties: the lowest), variables in no clause and the constant
  input to child 0 — the same for every neuron;
- feature: nas's own clustering (k-means on the normalised columns of the
  trained W1), the same for every neuron.

Reported: mean ± std over ``--seeds`` of the final test accuracy.

    python benchmarks/fpe_sat.py [--seeds 5] [--steps 1000]          # the first setting (the defaults)
    python benchmarks/fpe_sat.py --seeds 10 --variables 24 --clauses 8 --literals 3 --disjoint --train 2000
                                                                      # the second (dense ≈ 0.8, as in the paper)
    python benchmarks/fpe_sat.py --sweep ...   # dense only, one line per setting of the sweep grid

Last line: ``dense=… random_a2=… clause_a2=… feature_a2=… random_a4=… … seeds=… steps=…``
(mean test accuracies) followed by the setting.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nas.evaluators.sat import Formula, formula, generate
from nas.spaces.fpe import FPEPair


@dataclass(frozen=True)
class Setting:
    variables: int = 16
    clauses: int = 8
    literals: int = 3
    hidden: int = 8
    train: int = 4000
    test: int = 2000
    disjoint: bool = False

    def describe(self) -> str:
        return (f"variables={self.variables} clauses={self.clauses} literals={self.literals} hidden={self.hidden} "
                f"train={self.train} test={self.test} disjoint={int(self.disjoint)}")


def make_formula(s: Setting, seed: int) -> Formula:
    if not s.disjoint:
        return formula(s.variables, s.clauses, s.literals, seed)
    if s.clauses * s.literals > s.variables:
        raise SystemExit(f"--disjoint needs clauses·literals ≤ variables, "
                         f"found {s.clauses}·{s.literals} > {s.variables}")
    rng = np.random.default_rng([seed, 0])
    chosen = rng.permutation(s.variables)[: s.clauses * s.literals].reshape(s.clauses, s.literals).astype(np.int64)
    return Formula(chosen, rng.integers(0, 2, size=(s.clauses, s.literals)).astype(bool))


def make_data(s: Setting, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): train + test balanced samples (half true), shuffled."""
    n = s.train + s.test
    if not s.disjoint:
        return generate(s.variables, s.clauses, s.literals, n, seed)
    f = make_formula(s, seed)
    rng = np.random.default_rng([seed, 1])
    need, kept = {True: n // 2, False: n - n // 2}, {True: [], False: []}
    while any(sum(map(len, kept[b])) < need[b] for b in (True, False)):
        x = rng.integers(0, 2, size=(4 * n, s.variables), dtype=np.int8)
        y = f(x)
        for b in (True, False):
            kept[b].append(x[y == b][: need[b] - sum(map(len, kept[b]))])
    x = np.concatenate(kept[True] + kept[False]).astype(np.float32)
    y = np.concatenate([np.ones(need[True], np.int64), np.zeros(need[False], np.int64)])
    order = rng.permutation(n)
    return x[order], y[order]


def clause_groups(s: Setting, seed: int, alpha: int) -> torch.Tensor:
    """(variables + 1,) the oracle's child of each input (the constant input last)."""
    f = make_formula(s, seed)
    votes = np.zeros((s.variables + 1, alpha), dtype=np.int64)
    for j, used in enumerate(f.variables):
        votes[used, j * alpha // s.clauses] += 1
    return torch.as_tensor(votes.argmax(axis=1))  # argmax: the lowest child on ties, child 0 for no votes


def run(s: Setting, seed: int, split: str, alpha: int, steps: int) -> float:
    x, y = make_data(s, seed)
    x = torch.cat([torch.from_numpy(2 * x - 1), torch.ones(len(x), 1)], dim=1)  # ±1 and the bias input
    y = torch.from_numpy(y).float()
    xtr, ytr, xte, yte = x[:s.train], y[:s.train], x[s.train:], y[s.train:]
    torch.manual_seed(seed)
    pair = FPEPair(s.variables + 1, s.hidden, "relu", max(alpha, 1), "feature" if split == "feature" else "random",
                   d_out=1)
    bias = nn.Parameter(torch.zeros(1))
    loss_fn = nn.BCEWithLogitsLoss()

    def train(n: int) -> None:
        opt = torch.optim.Adam([*pair.parameters(), bias], lr=0.01)
        for _ in range(n):
            loss = loss_fn(pair(xtr).squeeze(1) + bias, ytr)
            opt.zero_grad()
            loss.backward()
            opt.step()

    if split == "dense":
        train(steps)
    else:
        train(steps // 2)
        pair.expand(clause_groups(s, seed, alpha) if split == "clause" else split)
        assert int(pair.mask1.sum() + pair.mask2.sum()) == pair.nnz
        train(steps - steps // 2)
    with torch.no_grad():
        return ((pair(xte).squeeze(1) + bias > 0).float() == yte).float().mean().item()


SWEEP = {  # (variables, clauses, literals, disjoint) x train samples, dense only
    "formula": [(16, 8, 3, False), (24, 8, 3, True), (32, 8, 4, True), (48, 16, 3, True), (64, 16, 4, True),
                (64, 32, 2, True), (96, 32, 3, True)],
    "train": [1000, 4000],
}


def sweep(args) -> None:
    print(f"dense {args.hidden}-neuron test accuracy, mean ± std over {args.seeds} seeds, {args.steps} steps")
    for (v, c, k, d), train in itertools.product(SWEEP["formula"], SWEEP["train"]):
        s = Setting(v, c, k, args.hidden, train, args.test, d)
        t0 = time.perf_counter()
        accs = [run(s, seed, "dense", 1, args.steps) for seed in range(args.seeds)]
        print(f"{s.describe():<80} {statistics.mean(accs):.3f} ± {statistics.stdev(accs):.3f}  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--variables", type=int, default=16)
    ap.add_argument("--clauses", type=int, default=8)
    ap.add_argument("--literals", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--train", type=int, default=4000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--disjoint", action="store_true", help="no two clauses share a variable")
    ap.add_argument("--sweep", action="store_true", help="dense only, over the built-in grid of settings")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.sweep:
        return sweep(args)
    s = Setting(args.variables, args.clauses, args.literals, args.hidden, args.train, args.test, args.disjoint)
    variants = [("dense", "dense", 1)] + [
        (f"{split}_a{alpha}", split, alpha) for alpha in (2, 4) for split in ("random", "clause", "feature")
    ]
    t0 = time.perf_counter()
    means = {}
    print(s.describe())
    print(f"{'variant':<12} {'alpha':>5} {'non-zeros':>9}  test accuracy (mean ± std over {args.seeds} seeds)")
    for key, split, alpha in variants:
        accs = [run(s, seed, split, alpha, args.steps) for seed in range(args.seeds)]
        means[key] = statistics.mean(accs)
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        nnz = s.hidden * (s.variables + 1 + 1)
        print(f"{key:<12} {alpha:>5} {nnz:>9}  {means[key]:.3f} ± {std:.3f}   "
              f"({' '.join(f'{a:.3f}' for a in accs)})", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")
    print(" ".join(f"{k}={v:.3f}" for k, v in means.items()) + f" seeds={args.seeds} steps={args.steps} "
          + s.describe())


if __name__ == "__main__":
    main()
