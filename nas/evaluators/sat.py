"""The seeded Boolean DNF task of the FPE paper (``dataset: sat``).

A formula over ``variables`` Boolean variables is the OR of ``clauses``
clauses, each the AND of ``literals`` distinct variables, each possibly
negated. A sample is an assignment x in {0, 1}^variables, its label the
formula's value. The formula and the samples are drawn from two NumPy
generators seeded by ``[seed, 0]`` and ``[seed, 1]``, so the formula depends
only on (variables, clauses, literals, seed, disjoint). Each clause draws its
own set of distinct variables, so clauses may share variables; with
``disjoint`` the clauses' variables are one random permutation's first
clauses·literals, so no two clauses share one (the FPE paper's regime).

``feature_groups``: the clause of every variable, the groups of FPE's
``groups`` split: a variable in several clauses belongs to the first of
them (the lowest clause index), one in no clause to none (-1).

Balance by rejection sampling: assignments are drawn uniformly at random in
batches, and the first ``samples // 2`` true and ``samples - samples // 2``
false ones are kept, so each class is uniform over its assignments. A
formula whose rarer class is too rare to fill (fewer than about one
assignment in 1,000) is rejected with an error that names the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nas.errors import NasInputError

MAX_DRAWS_PER_SAMPLE = 1000  # candidate assignments drawn per kept sample before giving up
BATCH_ELEMENTS = 1 << 24  # bytes of one batch of candidate literals (bounds memory)


@dataclass(frozen=True)
class Formula:
    """A DNF formula: clause j is AND over t of (x[variables[j, t]] XOR negated[j, t])."""

    variables: np.ndarray  # (clauses, literals) int64, distinct within a clause
    negated: np.ndarray  # (clauses, literals) bool

    def clauses_true(self, x: np.ndarray) -> np.ndarray:
        """(n, clauses) bool: which clauses the assignments x (n, variables), values in {0, 1}, satisfy."""
        lits = np.asarray(x)[:, self.variables] > 0.5  # (n, clauses, literals)
        return (lits != self.negated).all(axis=2)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(n,) bool: the formula's value on the assignments x (n, variables)."""
        return self.clauses_true(x).any(axis=1)


def formula(variables: int, clauses: int, literals: int, seed: int, disjoint: bool = False) -> Formula:
    """The formula ``generate`` labels with: each clause a uniformly random set of distinct variables and signs
    (with ``disjoint``, sets that no two clauses share)."""
    if not 1 <= literals <= variables:
        raise NasInputError(f"sat: literals per clause must be between 1 and variables ({variables}); found {literals}")
    if clauses < 1:
        raise NasInputError(f"sat: clauses must be at least 1; found {clauses}")
    if disjoint and clauses * literals > variables:
        raise NasInputError(f"sat: disjoint clauses need clauses × literals ≤ variables; found {clauses} × "
                            f"{literals} = {clauses * literals} > {variables}")
    rng = np.random.default_rng([seed, 0])
    if disjoint:
        chosen = rng.permutation(variables)[: clauses * literals].reshape(clauses, literals).astype(np.int64)
    else:
        chosen = np.stack([rng.choice(variables, size=literals, replace=False)
                           for _ in range(clauses)]).astype(np.int64)
    return Formula(chosen, rng.integers(0, 2, size=(clauses, literals)).astype(bool))


def feature_groups(f: Formula, variables: int) -> np.ndarray:
    """(variables,) int64: the first clause holding each variable, -1 for a variable in no clause."""
    groups = np.full(variables, -1, dtype=np.int64)
    for j in reversed(range(len(f.variables))):  # the lowest clause index written last wins
        groups[f.variables[j]] = j
    return groups


def generate(variables: int, clauses: int, literals: int, samples: int, seed: int,
             disjoint: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(x (samples, variables) float32 in {0, 1}, y (samples,) int64 in {0, 1}), half true, half false.

    Deterministic from the arguments; rows are shuffled (true and false mixed).
    """
    f = formula(variables, clauses, literals, seed, disjoint)
    rng = np.random.default_rng([seed, 1])
    need = {True: samples // 2, False: samples - samples // 2}
    kept: dict[bool, list[np.ndarray]] = {True: [], False: []}
    have = {True: 0, False: 0}
    batch = max(256, min(4 * samples, BATCH_ELEMENTS // max(1, variables + clauses * literals)))
    drawn = 0
    while have[True] < need[True] or have[False] < need[False]:
        if drawn > MAX_DRAWS_PER_SAMPLE * samples:
            rarer = have[True] < need[True]
            word = "true" if rarer else "false"
            raise NasInputError(
                f"sat: after {drawn} random assignments only {have[rarer]} of the {need[rarer]} {word} samples "
                f"were found; the formula (variables={variables}, clauses={clauses}, literals={literals}) is almost "
                "never " + word + "; choose fewer literals per clause or a different number of clauses")
        x = rng.integers(0, 2, size=(batch, variables), dtype=np.int8)
        y = f(x)
        drawn += batch
        for label in (True, False):
            take = x[y == label][: need[label] - have[label]]
            kept[label].append(take)
            have[label] += len(take)
    x = np.concatenate(kept[True] + kept[False]).astype(np.float32)
    y = np.concatenate([np.ones(need[True], np.int64), np.zeros(need[False], np.int64)])
    order = rng.permutation(samples)
    return x[order], y[order]
