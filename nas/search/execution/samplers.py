"""Optuna samplers by the names a space file uses."""

from __future__ import annotations

import contextlib
import copy
import difflib
import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import optuna

from nas.errors import NasInputError
from nas.search import optuna_private
from nas.spaces.schema import SAMPLERS


class TPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE sampler, with three more options: ``max_history``, ``fast_ndtr`` and ``refit_share``; with
    ``group=True`` its group decomposition is updated with each newly finished trial rather than recomputed over
    all of them (``optuna_private.incremental_groups``: the same groups).

    Without it (None), exactly Optuna's. With it, once the study has more finished trials (complete, stopped
    early, infeasible) than ``max_history``, each proposal fits TPE's two densities to a uniform subsample of
    ``max_history`` of them (the trials still running, which the constant liar counts, all stay), drawn from
    the sampler's seed and the number of finished trials, so a seeded study stays repeatable. The densities are
    mixtures with one component per trial, evaluated at every proposal: without the bound an ask costs time in
    proportion to the study's size (86 ms at 1,000 trials, 501 ms at 10,000: issue #25's figures); with it, no
    more than at ``max_history``. A uniform subsample keeps both densities' shapes in expectation: the "good"
    part stays the same share (TPE's gamma) of what is fitted.

    With ``fast_ndtr`` (nas's default; Optuna's class: False) its Gaussian masses come from SciPy's vectorised
    ``log_ndtr`` (``optuna_private.vectorised_log_ndtr``): the same densities to ~1e-16, about 2.5× faster asks.

    With ``refit_share`` (None: Optuna's, a fit per proposal) a proposal reuses the two densities fitted for an
    earlier one (each proposal still draws its own candidates from them and picks the best by TPE's ratio) while
    the trials changed since that fit, asked or finished, number fewer than ``refit_share`` × the finished trials
    it was fitted to. Below 1/``refit_share`` finished trials every proposal refits (each ask adds a trial), so a
    short study proposes exactly what Optuna's does; at 2,000 finished trials and 0.01 a fit serves about 10
    proposals, each of which changes TPE's densities by less than a percent of their components (the proposals
    served by one fit do not see each other as the constant liar's running trials; the next fit does). A reused
    fit's log-density is ``_Prepared``'s: Optuna's numbers, its candidate-independent terms computed once.
    """

    def __init__(self, *args: Any, max_history: int | None = None, fast_ndtr: bool = False,
                 refit_share: float | None = None, **kwargs: Any) -> None:
        if max_history is not None and (not isinstance(max_history, int) or max_history < 100):
            raise ValueError(f"max_history must be a whole number of at least 100 (or none), found {max_history!r}")
        if refit_share is not None and (isinstance(refit_share, bool) or not isinstance(refit_share, (int, float))
                                        or not 0 < refit_share <= 1):
            raise ValueError(f"refit_share must be a number in (0, 1] (or none), found {refit_share!r}")
        super().__init__(*args, **kwargs)
        if self._group_decomposed_search_space is not None:  # group=True: the groups updated, not recomputed
            self._group_decomposed_search_space = optuna_private.incremental_groups(self._group_decomposed_search_space)
        self._max_history = max_history
        self._fast_ndtr = bool(fast_ndtr)
        self._history_seed = kwargs.get("seed")
        self._kept: dict[int, np.ndarray] = {}  # finished trials -> the positions kept (one draw per study size)
        self._states = _States()  # the study's trial states by number, kept across asks (``_Subsampled``)
        self._reprs: dict[tuple, _Column] = {}  # (study, param, distribution) -> finished trials' internal values
        self._refit_share = refit_share
        self._fits: dict[tuple, _Fit] = {}  # (study, search space) -> the densities last fitted for it
        self._fitting: list | None = None  # while a fit runs: the densities Optuna builds, in order (below, above)
        self._counts = (0, 0)  # the study's (finished, all) trials at this ask (refit_share)

    def _view(self, study: optuna.Study) -> optuna.Study:
        if self._max_history is None:
            return study
        return _Subsampled(study, self._max_history, self._history_seed, self._kept, self._states)

    def _maths(self):
        return optuna_private.vectorised_log_ndtr() if self._fast_ndtr else contextlib.nullcontext()

    def sample_relative(self, study, trial, search_space):
        self._count(study)
        with self._maths(), optuna_private.split_once():
            return super().sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        self._count(study)
        with self._maths():
            return super().sample_independent(self._view(study), trial, param_name, param_distribution)

    def _count(self, study: optuna.Study) -> None:
        """The study's finished and all trials now (``refit_share``), from the index of trial states."""
        if self._refit_share is None:
            return
        trials = study._get_trials(deepcopy=False, use_cache=False)
        if trials and (trials[0].number != 0 or trials[-1].number != len(trials) - 1):
            finished = sum(t.state.is_finished() for t in trials)  # not numbered 0..n-1: count them all
        else:
            codes = self._states.update(study._study_id, trials)
            finished = len(codes) - int(np.count_nonzero(codes == _RUNNING))
        self._counts = (finished, len(trials))

    def _sample(self, study, trial, search_space):
        """Optuna's proposal, from densities fitted now or, with ``refit_share``, fitted for an earlier proposal
        on the same search space while the study has changed by less than that share since (see the class)."""
        if self._refit_share is None:
            return super()._sample(study, trial, search_space)
        key = (study._study_id, tuple(search_space.items()))
        fit, (finished, asked) = self._fits.get(key), self._counts
        if fit is not None and (finished - fit.finished) + (asked - fit.asked) < self._refit_share * fit.finished:
            if fit.prepared is None:  # the densities' terms that do not depend on the candidates, once per fit
                fit.prepared = (_Prepared.of(fit.below), _Prepared.of(fit.above))
            samples = fit.below.sample(self._rng.rng, self._n_ei_candidates)
            below, above = fit.prepared
            ret = self._compare(samples, below.log_pdf(samples) - above.log_pdf(samples))
            return {name: dist.to_external_repr(ret[name]) for name, dist in search_space.items()}
        self._fitting = []
        try:
            ret = super()._sample(study, trial, search_space)
            below, above = self._fitting
        finally:
            self._fitting = None
        self._fits[key] = _Fit(finished, asked, below, above)
        return ret

    def _build_parzen_estimator(self, study, search_space, trials, handle_below):
        mpe = super()._build_parzen_estimator(study, search_space, trials, handle_below)
        if self._fitting is not None:
            self._fitting.append(mpe)
        return mpe

    def _get_internal_repr(self, trials, search_space, study):
        """Optuna's, with each finished trial's internal values computed once and kept in arrays: a finished
        trial's parameters never change, and Optuna reads every trial's back in Python at every ask (twice per
        group: about 7 ms an ask at 2,000 trials here). Running trials (their relative parameters can still
        change) are read as Optuna reads them. The same arrays as Optuna's (``tests/test_samplers.py``)."""
        if not trials:
            return {name: np.asarray([]) for name in search_space}
        cols = [self._column(study._study_id, name, dist) for name, dist in search_space.items()]
        numbers = np.fromiter((t.number for t in trials), dtype=np.int64, count=len(trials))
        finished = np.fromiter((t.state.is_finished() for t in trials), dtype=bool, count=len(trials))
        need = int(numbers.max()) + 1
        for col in cols:
            col.grow(need)
        fin_pos = np.flatnonzero(finished)
        fin_num = numbers[fin_pos]
        for col in cols:  # finished trials seen for the first time: their values, once
            for i in fin_pos[col.known[fin_num] == 0].tolist():
                col.put(trials[i])
        keep = np.zeros(len(trials), dtype=bool)
        keep[fin_pos] = np.all([col.known[fin_num] == 1 for col in cols], axis=0)
        out = [np.empty(len(trials), dtype=col.values.dtype) for col in cols]
        for arr, col in zip(out, cols):
            arr[fin_pos] = col.values[fin_num]
        names = search_space.keys()
        for i in np.flatnonzero(~finished).tolist():  # running: as Optuna reads them
            params = self._get_params(trials[i], study)
            if names <= params.keys():
                keep[i] = True
                for arr, col in zip(out, cols):
                    arr[i] = col.dist.to_internal_repr(params[col.name])
        if not keep.any():
            return {name: np.asarray([]) for name in search_space}
        return {col.name: arr[keep] for col, arr in zip(cols, out)}

    def _column(self, study_id: int, name: str, dist) -> "_Column":
        col = self._reprs.get((study_id, name, dist))
        if col is None:
            col = self._reprs[(study_id, name, dist)] = _Column(name, dist)
        return col


@dataclass
class _Fit:
    """TPE's two densities for one search space and the study's (finished, all) trials when they were fitted;
    ``prepared``: the two as ``_Prepared``, once a proposal reuses them."""

    finished: int
    asked: int
    below: Any
    above: Any
    prepared: tuple | None = None


class _Prepared:
    """A fitted TPE density (Optuna's ``_ParzenEstimator``: a mixture with one product component per trial)
    whose log-density at a batch of points computes once what does not depend on the points: the components'
    log weights, each categorical's log probability table (the categoricals together, as one table over their
    joint choices, when there are at most ``JOINT`` of those), each truncated Gaussian's normalising mass and
    log scale, the discrete parameters' unique (mean, scale) pairs and the masses of each value proposed so far
(the proposals of one fit draw the same integers again). Optuna's ``log_pdf`` recomputes them for
    every proposal; a fit reused by ~10 proposals (``refit_share``) pays them once. The same sums in another
    order: equal to Optuna's to ~1e-15 relative (``tests/test_samplers.py``). ``of`` returns Optuna's own
    estimator where a parameter's range is a single value (its density is NaN there; nothing to gain)."""

    JOINT = 512
    ROWS = 1024  # a discrete parameter's values whose masses are kept (then forgotten all at once)

    def __init__(self, mpe) -> None:
        from optuna.samplers._tpe import _truncnorm
        from optuna.samplers._tpe.probability_distributions import (_BatchedCategoricalDistributions,
                                                                    _unique_inverse_2d)

        mix = mpe._mixture_distribution
        self.names = list(mpe._search_space)
        const = np.log(mix.weights)
        cats, self.discs, conts = [], [], []
        for i, d in enumerate(mix.distributions):
            if isinstance(d, _BatchedCategoricalDistributions):
                with np.errstate(divide="ignore"):
                    cats.append((i, np.log(d.weights).T))  # (choices, components)
            elif d.step == 0.0:
                conts.append((i, d))
            else:
                mu, sigma, inv = _unique_inverse_2d(d.mu, d.sigma)
                const = const - _truncnorm._log_gauss_mass((d.adapted_low - mu) / sigma,
                                                           (d.adapted_high - mu) / sigma)[inv]
                self.discs.append((i, d.step, d.is_log, mu, sigma, inv))
        sizes = [len(t) for _, t in cats]
        if len(cats) > 1 and int(np.prod(sizes)) <= self.JOINT:  # one table over the joint choices
            n, m = len(sizes), len(const)
            joint = sum(t.reshape([1] * k + [sizes[k]] + [1] * (n - k - 1) + [m]) for k, (_, t) in enumerate(cats))
            self.cats = [([i for i, _ in cats], sizes, np.ascontiguousarray(joint.reshape(-1, joint.shape[-1])))]
        else:
            self.cats = [([i], [len(t)], np.ascontiguousarray(t)) for i, t in cats]
        self.cont_cols = [i for i, _ in conts]
        self.cont_log = np.array([d.is_log for _, d in conts], dtype=bool)
        self.cont_low = np.array([d.adapted_low for _, d in conts])
        self.cont_high = np.array([d.adapted_high for _, d in conts])
        if conts:
            self.mus = np.array([d.mu for _, d in conts]).T  # (components, dims)
            self.sigmas = np.array([d.sigma for _, d in conts]).T
            self.a, self.b = (self.cont_low - self.mus) / self.sigmas, (self.cont_high - self.mus) / self.sigmas
            const = const - (_truncnorm._log_gauss_mass(self.a, self.b) + np.log(self.sigmas)).sum(axis=1)
        self.const = const
        self.log_c = _truncnorm._norm_pdf_logC
        self.rows: list[dict[float, np.ndarray]] = [{} for _ in self.discs]  # per discrete parameter: value -> masses

    @classmethod
    def of(cls, mpe):
        mix = mpe._mixture_distribution
        if any(getattr(d, "step", None) == 0.0 and d.adapted_low == d.adapted_high for d in mix.distributions):
            return mpe
        return cls(mpe)

    def log_pdf(self, samples: dict[str, np.ndarray]) -> np.ndarray:
        from optuna.samplers._tpe.probability_distributions import _log_gauss_mass_unique

        x = np.array([samples[name] for name in self.names]).T  # (points, parameters), as Optuna's _transform
        out = np.broadcast_to(self.const, (len(x), len(self.const))).copy()
        for cols, sizes, table in self.cats:
            idx = x[:, cols].astype(np.int64)
            out += table[np.ravel_multi_index(idx.T, sizes) if len(cols) > 1 else idx[:, 0]]
        for (i, step, is_log, mu, sigma, inv), rows in zip(self.discs, self.rows):
            xu, xinv = np.unique(x[:, i], return_inverse=True)
            values = xu.tolist()
            new = [v for v in values if v not in rows]  # a value's masses under every component, once per fit
            if new:
                if len(rows) + len(new) > self.ROWS:
                    rows.clear()
                    new = values
                nu = np.array(new)
                left = np.log(nu - step / 2) if is_log else nu - step / 2
                right = np.log(nu + step / 2) if is_log else nu + step / 2
                rows.update(zip(new, _log_gauss_mass_unique((left[:, None] - mu) / sigma,
                                                            (right[:, None] - mu) / sigma)))
            out += np.stack([rows[v] for v in values])[np.ix_(xinv, inv)]
        if self.cont_cols:
            xc = x[:, self.cont_cols]
            xc = np.where(self.cont_log, np.log(np.where(self.cont_log, xc, 1.0)), xc)
            z = (xc[:, None, :] - self.mus) / self.sigmas
            out += (-(z ** 2) / 2.0 - self.log_c).sum(axis=-1)
            out[((z < self.a) | (z > self.b)).any(axis=-1)] = -np.inf  # outside the range: compared as Optuna's
        top = out.max(axis=1)
        top[np.isneginf(top)] = 0
        with np.errstate(divide="ignore"):
            return np.log(np.exp(out - top[:, None]).sum(axis=1)) + top


class _Column:
    """One parameter's internal values of a study's finished trials, by trial number (``known``: 0 not read
    yet, 1 read, 2 the trial lacks the parameter). Categoricals are indices (int64), the rest floats, as the
    arrays Optuna builds from the same values."""

    def __init__(self, name: str, dist) -> None:
        self.name, self.dist = name, dist
        self.values = np.zeros(0, dtype=np.int64 if isinstance(dist, optuna.distributions.CategoricalDistribution)
                               else np.float64)
        self.known = np.zeros(0, dtype=np.int8)

    def grow(self, n: int) -> None:
        if n > len(self.known):
            n = max(n, 2 * len(self.known), 256)
            self.values = np.concatenate([self.values, np.zeros(n - len(self.values), dtype=self.values.dtype)])
            self.known = np.concatenate([self.known, np.zeros(n - len(self.known), dtype=np.int8)])

    def put(self, trial) -> None:
        if self.name in trial.params:
            self.values[trial.number] = self.dist.to_internal_repr(trial.params[self.name])
            self.known[trial.number] = 1
        else:
            self.known[trial.number] = 2


_base = inspect.signature(optuna.samplers.TPESampler)
TPESampler.__signature__ = _base.replace(parameters=[  # Optuna's keyword arguments and nas's three, for the options
    *_base.parameters.values(), inspect.Parameter("max_history", inspect.Parameter.KEYWORD_ONLY, default=None),
    inspect.Parameter("fast_ndtr", inspect.Parameter.KEYWORD_ONLY, default=False),
    inspect.Parameter("refit_share", inspect.Parameter.KEYWORD_ONLY, default=None)])


class _Subsampled:
    """A study as TPE reads it: every attribute the study's, its trials a subsample (``TPESampler``).

    The subsample is picked from an index of the study's trial states by number (``_States``, kept across
    asks and updated with the trials new or unfinished since the last read), so a read costs time in
    proportion to what it returns, not to the study: the same trials, in the same order, as filtering and
    sampling the whole list (``_slow``, kept for a storage whose list is not numbered 0..n-1)."""

    def __init__(self, study: optuna.Study, keep: int, seed: int | None, drawn: dict[int, np.ndarray],
                 states: "_States") -> None:
        self._study, self._keep, self._seed, self._drawn = study, keep, seed, drawn
        self._states = states

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _draw(self, n: int) -> np.ndarray:
        """The positions kept among ``n`` finished trials (sorted): one draw per n, from the seed and n."""
        if n not in self._drawn:  # an ask reads the trials several times; the draw depends on n alone
            self._drawn.clear()
            rng = np.random.default_rng([self._seed if self._seed is not None else 0, n])
            self._drawn[n] = np.sort(rng.choice(n, self._keep, replace=False))
        return self._drawn[n]

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False):
        trials = self._study._get_trials(deepcopy=False, states=None, use_cache=use_cache)
        if not trials or trials[0].number != 0 or trials[-1].number != len(trials) - 1:
            return self._slow(deepcopy, states, use_cache)
        codes = self._states.update(self._study._study_id, trials)
        mask = np.isin(codes, [s.value for s in states]) if states is not None else np.ones(len(codes), bool)
        is_running = codes == _RUNNING
        finished = np.flatnonzero(mask & ~is_running)  # numbers of the filtered trials that are not running
        if len(finished) <= self._keep:
            chosen = np.flatnonzero(mask)
        else:
            chosen = np.union1d(finished[self._draw(len(finished))], np.flatnonzero(mask & is_running))
        out = [trials[i] for i in chosen.tolist()]
        return copy.deepcopy(out) if deepcopy else out

    def _slow(self, deepcopy: bool, states, use_cache: bool):
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        running = optuna.trial.TrialState.RUNNING
        finished = [i for i, t in enumerate(trials) if t.state != running]
        if len(finished) <= self._keep:
            return trials
        kept = set(self._draw(len(finished)).tolist())  # positions among the finished trials
        chosen = {i for j, i in enumerate(finished) if j in kept}
        return [t for i, t in enumerate(trials) if i in chosen or t.state == running]


_RUNNING = optuna.trial.TrialState.RUNNING.value


class _States:
    """A study's trial states by number (TrialState values), read again only for the trials new since the
    last update or not finished then (``optuna_private.NewOrUnfinished``)."""

    def __init__(self) -> None:
        self.codes = np.zeros(0, dtype=np.int8)
        self.scan = optuna_private.NewOrUnfinished()

    def update(self, study_id: int, trials: list) -> np.ndarray:
        n = len(trials)
        if n > len(self.codes):
            self.codes = np.concatenate([self.codes, np.zeros(max(n, 2 * len(self.codes)) - len(self.codes),
                                                              dtype=np.int8)])
        for i in self.scan.look(study_id, trials):
            self.codes[i] = trials[i].state.value
        return self.codes[:n]


SAMPLER_CLASSES = {name: getattr(optuna.samplers, cls) for name, cls in SAMPLERS.items()}  # the names' classes
SAMPLER_CLASSES["tpe"] = TPESampler  # Optuna's, with max_history (None: exactly Optuna's)
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


MAX_HISTORY = 2000  # nas's tpe: the finished trials its densities are fitted to, at most (TPESampler)
FAST_NDTR = True  # nas's tpe: SciPy's vectorised log_ndtr (TPESampler)
REFIT_SHARE = 0.01  # nas's tpe: a fit serves proposals until the study changed by 1 % of its finished trials


def make_sampler(name: str, seed: int | None, trials: int, workers: int,
                 options: Mapping[str, Any] | None = None) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` with defaults sized for a study of ``trials`` candidates, then ``options``.

    nsga2 and nsga3: a population of trials/3 (8 to 50), so even a short study evolves;
    tpe: multivariate, with the constant liar when several workers run at once, fitted to at most 2,000
    finished trials (``TPESampler``'s ``max_history``: a study of 10,000 asks no slower than one of 2,000),
    each fit serving proposals until the study changed by 1 % of its finished trials (``refit_share``: every
    proposal refits below 100 finished trials);
    gp and tpe: min(10, max(4, trials/4)) random candidates first; qmc: scrambled Sobol.
    ``options`` (the space file's ``search.options``) override these defaults.
    Constraints reach the samplers that use them (nsga2, nsga3, tpe, gp) through
    each trial's ``set_constraint`` values (Optuna ≥ 5), set by the runner.
    """
    startup = min(10, max(4, trials // 4))
    defaults: dict[str, dict[str, Any]] = {
        "nsga2": {"population_size": min(50, max(8, trials // 3))},
        "nsga3": {"population_size": min(50, max(8, trials // 3))},
        "tpe": {"multivariate": True, "group": True, "constant_liar": workers > 1, "n_startup_trials": startup,
                "max_history": MAX_HISTORY, "fast_ndtr": FAST_NDTR, "refit_share": REFIT_SHARE},
        "random": {},
        # gp: Optuna's GP has no conditional space, so a parameter with a `when` (lift_width) is always drawn at
        # random; its warning, once per trial, is nothing a user can act on (docs/space-file.md says so instead)
        "gp": {"n_startup_trials": startup, "warn_independent_sampling": False},
        "qmc": {"scramble": True},
    }
    if name not in SAMPLER_CLASSES:
        raise ValueError(f"unknown sampler {name!r}")  # the schema only lets known names through
    kwargs = {**defaults[name], **dict(options or {})}
    with warnings.catch_warnings():  # Optuna warns that `group` and `constant_liar` are experimental: nas's own
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # choice, nothing a user can do
        return SAMPLER_CLASSES[name](seed=seed, **kwargs)
