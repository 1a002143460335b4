"""Optuna samplers by the names a space file uses."""

from __future__ import annotations

import difflib
import inspect
import warnings
from typing import Any, Mapping

import optuna

from nas.errors import NasInputError
from nas.spaces.schema import SAMPLERS

SAMPLER_CLASSES = {name: getattr(optuna.samplers, cls) for name, cls in SAMPLERS.items()}  # the names' classes
# options nas sets itself (the seed comes from search.seed) or that take Python objects, not YAML scalars
_NOT_OPTIONS = {"seed", "constraints_func", "crossover", "mutation", "gamma", "weights", "independent_sampler",
                "reference_points", "elite_population_selection_strategy", "child_generation_strategy",
                "after_trial_strategy", "categorical_distance_func", "qmc_type_options"}


def option_names(name: str) -> list[str]:
    """The keyword arguments of sampler ``name`` a space file may set in ``search.options``."""
    params = inspect.signature(SAMPLER_CLASSES[name]).parameters
    return [p for p in params if p not in _NOT_OPTIONS and p != "self"]


def check_options(space) -> None:
    """NasInputError naming the place if the space's ``search.options`` do not suit its sampler."""
    name, options = space.search.sampler, space.search.options
    allowed = option_names(name)
    for key in options:
        if key not in allowed:
            hint = difflib.get_close_matches(key, allowed, n=1)
            raise NasInputError(
                f"{space.place('search', 'options', key)}: not an option of the {name} sampler"
                + (f" (did you mean {hint[0]!r}?)" if hint else "") + f"; expected one of {', '.join(allowed)}"
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_sampler(name, None, 10, 1, options)
    except (TypeError, ValueError) as exc:
        raise NasInputError(f"{space.place('search', 'options')}: the {name} sampler refuses them: {exc}") from None


def make_sampler(name: str, seed: int | None, trials: int, workers: int,
                 options: Mapping[str, Any] | None = None) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` with defaults sized for a study of ``trials`` candidates, then ``options``.

    nsga2 and nsga3: a population of trials/3 (8 to 50), so even a short study evolves;
    tpe: multivariate, with the constant liar when several workers run at once;
    gp and tpe: min(10, max(4, trials/4)) random candidates first; qmc: scrambled Sobol.
    ``options`` (the space file's ``search.options``) override these defaults.
    Constraints reach the samplers that use them (nsga2, nsga3, tpe, gp) through
    each trial's ``set_constraint`` values (Optuna ≥ 5), set by the runner.
    """
    startup = min(10, max(4, trials // 4))
    defaults: dict[str, dict[str, Any]] = {
        "nsga2": {"population_size": min(50, max(8, trials // 3))},
        "nsga3": {"population_size": min(50, max(8, trials // 3))},
        "tpe": {"multivariate": True, "group": True, "constant_liar": workers > 1, "n_startup_trials": startup},
        "random": {},
        "gp": {"n_startup_trials": startup},
        "qmc": {"scramble": True},
    }
    if name not in SAMPLER_CLASSES:
        raise ValueError(f"unknown sampler {name!r}")  # the schema only lets known names through
    kwargs = {**defaults[name], **dict(options or {})}
    with warnings.catch_warnings():  # Optuna warns that `group` and `constant_liar` are experimental: nas's own
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # choice, nothing a user can do
        return SAMPLER_CLASSES[name](seed=seed, **kwargs)
