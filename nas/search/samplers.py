"""Optuna samplers by the names a space file uses."""

from __future__ import annotations

import optuna


def make_sampler(name: str, seed: int | None, trials: int, workers: int) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` with defaults sized for a study of ``trials`` candidates.

    nsga2: a population of trials/3 (8 to 50), so even a short study evolves;
    tpe: multivariate, with the constant liar when several workers run at once.
    """
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=min(50, max(8, trials // 3)), seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(
            multivariate=True, group=True, constant_liar=workers > 1, n_startup_trials=min(10, max(4, trials // 4)),
            seed=seed,
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(10, max(4, trials // 4)))
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    raise ValueError(f"unknown sampler {name!r}")  # the schema only lets known names through
