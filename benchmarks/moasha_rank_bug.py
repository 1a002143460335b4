"""A standalone reproduction of a ranking bug in Syne Tune 0.16's MOASHA (``pip install -e .[bench]``).

MOASHA stops a trial at a rung unless its priority ranks in the top 1/η of the trials recorded there
(``syne_tune/optimizer/schedulers/asha.py``, ``Bracket.on_result``)::

    priorities = self.priority(metric_recorded)                 # one priority per recorded trial, the new one last
    ranks = np.searchsorted(sorted(priorities), priorities) / len(priorities)
    if ranks[-1] > 1 / self.rf: STOP

Its default priority, ``NonDominatedPriority`` (``multiobjective_priority.py``), returns
``nondominated_sort(X)``: the **indices of the items in sorted order** (``non_dominated_priority.py``), not a
priority per item. So ``priorities[-1]`` is the index of whichever item sorts last, not the new trial's place:
a new trial that dominates every earlier one at its rung can be stopped. The correction is the inverse
permutation, ``r[order] = arange(n)`` (``RankCorrectPriority`` below; ``benchmarks/syne_peers.py`` uses it).

Here, on Syne Tune's own ``Bracket`` with its own priority: three trials reach the rung at epoch 1, then a
fourth whose two objectives (to minimise) are both better than every one of theirs.

    python benchmarks/moasha_rank_bug.py

Last line: ``shipped=<decision for the dominating trial> corrected=<decision>``.
"""

from __future__ import annotations

import numpy as np
from syne_tune.optimizer.schedulers.asha import Bracket
from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import NonDominatedPriority
from syne_tune.optimizer.schedulers.multiobjective.non_dominated_priority import nondominated_sort


class RankCorrectPriority(NonDominatedPriority):
    """``NonDominatedPriority`` that returns what its caller reads: each item's place in the non-dominated sort
    (0: first), the inverse of the order ``nondominated_sort`` returns."""

    def priority_unsafe(self, objectives: np.ndarray) -> np.ndarray:
        order = np.asarray(nondominated_sort(X=objectives, dim=self.dim, max_items=self.max_num_samples))
        ranks = np.empty(len(objectives), dtype=int)
        ranks[order] = np.arange(len(order))
        return ranks


EARLIER = [{"loss": 0.6, "size": 0.4}, {"loss": 0.2, "size": 0.2}, {"loss": 0.8, "size": 0.8}]
DOMINATING = {"loss": 0.1, "size": 0.1}  # better than each earlier trial in both objectives


def decision(priority) -> str:
    bracket = Bracket(min_t=1, max_t=9, reduction_factor=3, s=0, priority=priority)
    for trial_id, metrics in enumerate(EARLIER):
        bracket.on_result(trial_id=trial_id, cur_iter=1, metrics=metrics)
    return bracket.on_result(trial_id=len(EARLIER), cur_iter=1, metrics=DOMINATING)


def main() -> None:
    X = np.array([list(m.values()) for m in EARLIER + [DOMINATING]])
    order = nondominated_sort(X=X, dim=0)
    print("rung at epoch 1, objectives to minimise (loss, size):")
    for i, row in enumerate(X):
        print(f"  trial {i}: ({row[0]:g}, {row[1]:g})" + ("   <- dominates every other" if i == len(EARLIER) else ""))
    print(f"nondominated_sort -> {order}: the trials in sorted order (trial {len(EARLIER)} first)")
    print(f"NonDominatedPriority (shipped) -> {NonDominatedPriority(dim=0)(X).tolist()}: read as one priority per "
          f"trial, trial {len(EARLIER)} gets {order[-1]}")
    print(f"RankCorrectPriority           -> {RankCorrectPriority(dim=0)(X).tolist()}: trial {len(EARLIER)} gets 0, "
          "the first place")
    shipped, corrected = decision(NonDominatedPriority(dim=0)), decision(RankCorrectPriority(dim=0))
    print(f"Syne Tune 0.16 Bracket (η = 3, top 1/3 continue) on the dominating trial: {shipped} with the shipped priority, "
          f"{corrected} with the corrected one")
    print(f"shipped={shipped} corrected={corrected}")


if __name__ == "__main__":
    main()
