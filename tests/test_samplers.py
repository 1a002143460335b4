"""Every sampler a space file can name, driven the way nas run drives it (no Ray, no training: the
objectives are a fixed function of the candidate): its options reach it, constraints are accepted,
and a seed makes the sequence of candidates repeatable."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nas.errors import NasInputError
from nas.search import optuna_private
from nas.evaluators import static_objectives
from nas.search.execution.driver import _Suggest
from nas.search.execution.samplers import SAMPLER_CLASSES, check_options, make_sampler
from nas.spaces import load_space, parse_space

SPACE = """\
name: samplers
task: {{dataset: digits}}
space:
  lift: [fixed_random, none]
  lift_width: {{int: [16, 256], log: true, when: {{lift: fixed_random}}}}
  hidden_width: {{int: [4, 64], log: true}}
  depth: {{int: [1, 3]}}
  activation: [relu, gelu, prelu]
train: {{lr: {{float: [1.0e-4, 1.0e-2], log: true}}}}
constraints: {{params: {{max: 20000}}}}
search: {{sampler: {sampler}, trials: 12, workers: 2, seed: {seed}{options}}}
"""
OPTIONS = {  # one option each sampler takes, as a user would write it
    "nsga2": ", options: {population_size: 6, mutation_prob: 0.2}",
    "nsga3": ", options: {population_size: 6}",
    "tpe": ", options: {n_startup_trials: 4}",
    "random": "",
    "gp": ", options: {n_startup_trials: 4}",
    "qmc": ", options: {scramble: true}",
}


def _study(sampler: str, seed: int, n: int = 12) -> list[dict]:
    """The candidates a study asks for, told objectives that depend only on the candidate."""
    space = parse_space(SPACE.format(sampler=sampler, seed=seed, options=OPTIONS[sampler]), "samplers.yaml")
    check_options(space)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature notices of some samplers
        study = optuna.create_study(directions=["maximize", "minimize", "minimize"],
                                    sampler=make_sampler(sampler, seed, n, 2, space.search.options))
        asked = []
        for _ in range(n):
            trial = study.ask()
            values = space.sample(_Suggest(trial))
            arch, _ = space.freeze(values, 64, 10)
            static = static_objectives(arch)
            for metric, violation in space.violations(static).items():
                trial.set_constraint(metric, violation)
            score = (values["hidden_width"] * values["depth"]) % 17 / 17  # a made-up accuracy
            study.tell(trial, [score, static["params"], static["bandwidth"]])
            asked.append(values)
    return asked


@pytest.mark.parametrize("sampler", sorted(SAMPLER_CLASSES))
def test_a_seed_makes_every_sampler_repeatable(sampler):
    n = 8 if sampler == "gp" else 12  # gp: 4 random then 4 fitted (a fit takes about a second)
    first, again, other = _study(sampler, 3, n), _study(sampler, 3, n), _study(sampler, 4, n)
    assert first == again
    assert first != other
    assert all("lift_width" in v for v in first if v["lift"] == "fixed_random")
    assert not any("lift_width" in v for v in first if v["lift"] == "none")


@pytest.mark.parametrize("sampler", sorted(SAMPLER_CLASSES))
def test_the_space_files_options_reach_the_sampler(sampler):
    space = parse_space(SPACE.format(sampler=sampler, seed=0, options=OPTIONS[sampler]), "samplers.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        made = make_sampler(sampler, 0, 12, 2, space.search.options)
    assert isinstance(made, SAMPLER_CLASSES[sampler])
    if sampler in ("nsga2", "nsga3"):
        assert made._population_size == 6
    if sampler in ("tpe", "gp"):
        assert made._n_startup_trials == 4


def test_an_option_the_sampler_does_not_take_is_an_input_error():
    space = parse_space(SPACE.format(sampler="tpe", seed=0, options=", options: {population_size: 6}"),
                        "samplers.yaml")
    with pytest.raises(NasInputError, match="population_size.*not an option of the tpe sampler"):
        check_options(space)


def test_every_sampler_name_a_space_file_may_use_is_an_optuna_sampler():
    import optuna

    from nas.spaces.schema import SAMPLERS

    assert set(SAMPLERS) == {"nsga2", "nsga3", "tpe", "random", "gp", "qmc"}  # what a space file may name
    assert all(issubclass(c, optuna.samplers.BaseSampler) for c in SAMPLER_CLASSES.values())
    assert issubclass(SAMPLER_CLASSES["tpe"], optuna.samplers.TPESampler)  # Optuna's, with max_history
    assert SAMPLER_CLASSES["nsga2"] is optuna.samplers.NSGAIISampler


def _tpe_study(max_history, n, running_every=0):
    """A seeded 2-objective study of ``n`` asks with nas's tpe defaults; every ``running_every``-th trial is left
    running (what the constant liar sees)."""
    sampler = make_sampler("tpe", 7, n, 4, {"max_history": max_history})
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for i in range(n):
        t = study.ask()
        x, k = t.suggest_float("x", 1e-3, 1.0, log=True), t.suggest_int("k", 1, 64, log=True)
        if running_every and i % running_every == 0:
            continue
        study.tell(t, [x * (1 + (k % 5)), k * x])
    return study


def test_tpe_max_history_changes_nothing_until_the_study_outgrows_it():
    plain = _tpe_study(None, 120)
    bounded = _tpe_study(200, 120)
    assert [t.params for t in bounded.trials] == [t.params for t in plain.trials]


def test_tpe_max_history_fits_a_repeatable_subsample_and_keeps_every_running_trial():
    study = _tpe_study(100, 160, running_every=10)
    view = study.sampler._view(study)
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    seen = view._get_trials(deepcopy=False, states=states)
    assert sum(t.state != TrialState.RUNNING for t in seen) == 100
    assert sum(t.state == TrialState.RUNNING for t in seen) == 16  # all of them
    assert [t.number for t in seen] == sorted(t.number for t in seen)
    assert [t.number for t in study.sampler._view(study)._get_trials(deepcopy=False, states=states)] == \
        [t.number for t in seen]  # the same subsample for the same study
    again = _tpe_study(100, 160, running_every=10)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]  # a seeded study repeats


def _refit_study(share, n, fits):
    """``_tpe_study``'s study with ``refit_share`` and a conditional parameter; ``fits`` collects each fit's
    group (its parameters' names) and the study's (finished, asked) trials then."""
    sampler = make_sampler("tpe", 7, n, 4, {"refit_share": share})
    build = sampler._build_parzen_estimator

    def counted(study, search_space, trials, handle_below):
        if handle_below:
            fits.append((tuple(search_space), *sampler._counts))
        return build(study, search_space, trials, handle_below)

    sampler._build_parzen_estimator = counted
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for i in range(n):
        t = study.ask()
        x, k = t.suggest_float("x", 1e-3, 1.0, log=True), t.suggest_int("k", 1, 64, log=True)
        if t.suggest_categorical("lift", ["none", "fixed"]) == "fixed":  # a conditional parameter: two groups,
            k += t.suggest_int("width", 8, 512, log=True) // 64  # each with its own fit
        if i % 7 == 0:
            continue  # left running: the constant liar's
        study.tell(t, [x * (1 + (k % 5)), k * x])
    return study


def test_tpe_refit_share_proposes_exactly_as_optuna_in_a_short_study_and_reuses_fits_in_a_long_one():
    """Below 1/refit_share finished trials every proposal refits (Optuna's proposals exactly); beyond, a fit
    serves the proposals until the study changed by that share of its finished trials, and a seeded study
    repeats."""
    fits_exact, fits = [], []
    exact = _refit_study(None, 90, fits_exact)
    short = _refit_study(0.01, 90, fits)  # fewer than 1/0.01 finished trials
    assert [t.params for t in short.trials] == [t.params for t in exact.trials]
    assert len(fits) == len(fits_exact) > 70  # every proposal after the random ones fitted
    fits.clear()
    long = _refit_study(0.05, 300, fits)
    groups = {g for g, _, _ in fits}
    assert len(groups) == 2  # the two groups, each fitted on its own
    for group in groups:
        seen = [(f, a) for g, f, a in fits if g == group]
        assert len(seen) < 150  # of 290 proposals
        for (f0, a0), (f1, a1) in zip(seen, seen[1:]):  # a refit only once the study changed by the share,
            assert 0.05 * f0 <= (f1 - f0) + (a1 - a0)
            if "x" in group:  # and, for the group every proposal samples, as soon as it did
                assert (f1 - f0) + (a1 - a0) < 0.05 * f0 + 3
    assert [t.params for t in _refit_study(0.05, 300, []).trials] == [t.params for t in long.trials]
    # a reused fit draws new candidates for each proposal, not the fit's last proposal again
    assert len({tuple(sorted(t.params.items())) for t in long.trials}) > 280


def _mixed_study(n=200):
    """A seeded study reusing fits (refit_share 0.05) over every kind of parameter: log and linear floats, log
    and linear integers, two categoricals (one joint table). Returns the study and its sampler."""
    sampler = make_sampler("tpe", 3, n, 1, {"refit_share": 0.05})
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for _ in range(n):
        t = study.ask()
        x, y = t.suggest_float("x", 1e-3, 1.0, log=True), t.suggest_float("y", -2.0, 2.0)
        k, d = t.suggest_int("k", 1, 64, log=True), t.suggest_int("d", 1, 4)
        a, b = t.suggest_categorical("a", ["p", "q", "r"]), t.suggest_categorical("b", [1, 2])
        study.tell(t, [x * (1 + (k % 5)) + y * (a == "p"), k * x + d + b])
    return study, sampler


@pytest.mark.parametrize("joint", [512, 1])  # the categoricals as one joint table, and each alone
def test_a_reused_fits_prepared_density_is_optunas(monkeypatch, joint):
    """A reused fit's log-density (``_Prepared``: what does not depend on the candidates computed once) equals
    Optuna's own ``log_pdf`` on the same fit, for every kind of parameter (categoricals, linear and log integers,
    linear and log floats), at candidates drawn from it (several batches: an integer value's masses computed
    once per fit), and is -inf exactly where Optuna's is outside a float's range; a seeded study proposes the
    same candidates with it as with Optuna's log_pdf on every reused fit."""
    from optuna.samplers._tpe import probability_distributions as pdists

    from nas.search.execution.samplers import _Prepared

    monkeypatch.setattr(_Prepared, "JOINT", joint)
    study, sampler = _mixed_study()
    (fit,) = sampler._fits.values()
    rng = np.random.RandomState(0)
    with optuna_private.vectorised_log_ndtr():  # as the sampler computes them
        below, above = _Prepared.of(fit.below), _Prepared.of(fit.above)
        assert isinstance(below, _Prepared) and len(below.cats) == (1 if joint > 1 else 2)
        for _ in range(4):
            samples = fit.below.sample(rng, 24)
            for mpe, prepared in ((fit.below, below), (fit.above, above)):
                np.testing.assert_allclose(prepared.log_pdf(samples), mpe.log_pdf(samples), rtol=1e-12)
        masses = []
        monkeypatch.setattr(pdists, "_log_gauss_mass_unique", lambda a, b: masses.append(a.shape) or
                            optuna.samplers._tpe._truncnorm._log_gauss_mass(a, b))
        again = below.log_pdf(samples)  # values seen already: no mass computed again
        assert masses == [] and np.array_equal(again, below.log_pdf(samples))
        (seen,) = [rows for disc, rows in zip(below.discs, below.rows) if below.names[disc[0]] == "k"]
        samples["k"][0] = next(v for v in range(1, 65) if float(v) not in seen)
        below.log_pdf(samples)
        assert [m[0] for m in masses] == [1]  # one new value: its masses alone
        for edge in (-2.0, np.nextafter(-2.0, -3.0), 2.0, np.nextafter(2.0, 3.0), -2.5, 2.5):
            samples["y"][:] = edge
            got, want = above.log_pdf(samples), fit.above.log_pdf(samples)
            assert np.array_equal(np.isneginf(got), np.isneginf(want)), edge
            np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], rtol=1e-12)
    if joint > 1:
        prepared = [t.params for t in study.trials]
        monkeypatch.setattr(_Prepared, "of", classmethod(lambda cls, mpe: mpe))
        assert [t.params for t in _mixed_study()[0].trials] == prepared


def test_gp_draws_a_conditional_parameter_at_random_without_a_warning_per_trial(caplog):
    """Optuna's GP has no conditional space: nas's gp says so in the docs, not in a warning at every trial."""
    sampler = make_sampler("gp", 0, 12, 1)
    study = optuna.create_study(sampler=sampler)
    with caplog.at_level("WARNING", logger="optuna"):
        for _ in range(8):
            t = study.ask()
            x = t.suggest_float("x", 0.0, 1.0)
            if t.suggest_categorical("lift", ["none", "fixed"]) == "fixed":
                x += t.suggest_float("w", 0.0, 1.0)
            study.tell(t, x)
    assert not [r for r in caplog.records if "sampled independently" in r.getMessage()]


def test_a_too_small_max_history_is_an_input_error(tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text("task: {dataset: digits}\nspace: {hidden_width: 8}\n"
                     "search: {sampler: tpe, options: {max_history: 10}}\n")
    with pytest.raises(NasInputError, match="max_history must be a whole number of at least 100"):
        check_options(load_space(space))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # group, passed here to Optuna's
def test_tpe_without_nas_options_is_optunas_and_fast_ndtr_proposes_as_well():
    """fast_ndtr off: exactly Optuna's TPE (its group decomposition updated, not recomputed: the same groups).
    On: SciPy's log Φ, proposals in range and repeatable."""
    def study(sampler, n=80):
        s = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        for _ in range(n):
            t = s.ask()
            x, k = t.suggest_float("x", 1e-3, 1.0, log=True), t.suggest_int("k", 1, 64, log=True)
            if t.suggest_categorical("lift", ["none", "fixed"]) == "fixed":  # a conditional parameter: groups
                k += t.suggest_int("width", 8, 512, log=True) // 64
            s.tell(t, [x * (1 + (k % 5)), k * x])
        return [t.params for t in s.trials]

    kwargs = {"seed": 5, "multivariate": True, "group": True, "n_startup_trials": 10}
    assert study(SAMPLER_CLASSES["tpe"](**kwargs)) == study(optuna.samplers.TPESampler(**kwargs))
    fast = study(SAMPLER_CLASSES["tpe"](fast_ndtr=True, **kwargs))
    assert fast == study(SAMPLER_CLASSES["tpe"](fast_ndtr=True, **kwargs))
    assert all(1e-3 <= p["x"] <= 1.0 and 1 <= p["k"] <= 64 for p in fast)
    from optuna.samplers._tpe import _truncnorm
    assert _truncnorm._log_ndtr.__module__ == "optuna.samplers._tpe._truncnorm"  # restored after each ask
    assert _truncnorm._ndtr.__module__ == "optuna.samplers._tpe._truncnorm"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # group, constant_liar: Optuna's
def test_tpes_kept_splits_and_values_propose_exactly_as_optuna():
    """nas's tpe keeps a split per ask and each finished trial's internal values (``split_once``,
    ``_get_internal_repr``): with the constant liar, trials left running, stopped early and infeasible, and a
    conditional parameter (two groups), every proposal is Optuna's own."""
    def study(sampler, n=90):
        s = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=sampler)
        for i in range(n):
            t = s.ask()
            x, k = t.suggest_float("x", 1e-3, 1.0, log=True), t.suggest_int("k", 1, 64, log=True)
            act = t.suggest_categorical("act", ["relu", "gelu", "silu"])
            if t.suggest_categorical("lift", ["none", "fixed"]) == "fixed":
                k += t.suggest_int("width", 8, 512, log=True) // 64
            t.set_constraint("params", float(k - 40))  # > 0: infeasible
            if i % 7 == 3:
                continue  # left running: the constant liar counts it
            if i % 11 == 5:
                s.tell(t, state=TrialState.PRUNED)
            else:
                s.tell(t, [x * (1 + (k % 5)), k * x, len(act) + x])
        return [t.params for t in s.trials]

    kwargs = {"seed": 3, "multivariate": True, "group": True, "constant_liar": True, "n_startup_trials": 8}
    mine = SAMPLER_CLASSES["tpe"](**kwargs)
    assert study(mine) == study(optuna.samplers.TPESampler(**kwargs))
    assert mine._reprs  # the kept values were used


def test_tpes_independent_sampling_reads_the_bounded_history_with_scipys_masses(monkeypatch):
    """A parameter TPE samples on its own (outside the groups, or with multivariate off) is fitted to the same
    subsample as the relative ones, with the same log Φ: nas's options hold for every proposal."""
    from optuna.samplers._tpe import _truncnorm

    from nas.search.execution.samplers import _Subsampled

    seen = []

    def spy(self, study, trial, name, dist):
        seen.append((type(study), _truncnorm._log_ndtr.__module__ != "optuna.samplers._tpe._truncnorm"))
        return dist.low

    study = _tpe_study(100, 160)
    monkeypatch.setattr(optuna.samplers.TPESampler, "sample_independent", spy)
    t = study.ask()
    study.sampler.sample_independent(study, t, "x", optuna.distributions.FloatDistribution(1e-3, 1.0, log=True))
    assert seen == [(_Subsampled, True)]  # the subsample view; SciPy's log Φ in place of Optuna's


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_tpes_indexed_reads_return_what_filtering_the_whole_study_returns():
    """The subsample view and the group decomposition read only the trials new or unfinished since their last
    read: as the study grows, with trials enqueued (waiting), finishing out of order, failing and stopped,
    every read is the same trials, in the same order, as filtering and sampling the whole list, and the
    groups are Optuna's."""
    import random

    from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace

    from nas.search.execution.samplers import _States, _Subsampled
    from nas.search.optuna_private import incremental_groups

    rng = random.Random(0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    view = _Subsampled(study, 100, 7, {}, _States())
    fresh = incremental_groups(_GroupDecomposedSearchSpace(include_pruned=True))
    filters = [None, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING),
               (TrialState.COMPLETE, TrialState.PRUNED), (TrialState.COMPLETE,)]
    running = []
    for step in range(400):
        if step % 37 == 0:
            study.enqueue_trial({"x": 0.5})
        t = study.ask()
        t.suggest_float("x", 0.0, 1.0)
        if rng.random() < 0.5:
            t.suggest_int(f"k{step % 3}", 1, 8)  # three conditional parameters: several groups
        running.append(t)
        while len(running) > 12 or (running and rng.random() < 0.4):
            done = running.pop(rng.randrange(len(running)))  # ends out of order
            r = rng.random()
            if r < 0.1:
                study.tell(done, state=TrialState.FAIL)
            elif r < 0.2:
                study.tell(done, state=TrialState.PRUNED)
            else:
                study.tell(done, [rng.random(), rng.random()])
        if step % 9 == 0 or step > 380:
            for states in filters:
                fast = [x.number for x in view._get_trials(deepcopy=False, states=states)]
                assert fast == [x.number for x in view._slow(False, states, False)], (step, states)
            want = _GroupDecomposedSearchSpace(include_pruned=True).calculate(study)
            assert fresh.calculate(study).search_spaces == want.search_spaces, step
    assert sum(x.state != TrialState.RUNNING for x in view._get_trials(deepcopy=False, states=filters[1])) == 100


def test_nas_tpe_pickles_mid_study_and_goes_on_proposing_the_same():
    """Ray Tune's OptunaSearch (and any checkpointing searcher) pickles the sampler it holds: nas's tpe, with
    its kept groups, values and state index, pickles and goes on as the original."""
    import pickle

    study = _tpe_study(100, 140, running_every=9)
    copy = pickle.loads(pickle.dumps(study.sampler))
    twin = optuna.create_study(directions=["maximize", "minimize"], sampler=copy)
    twin.add_trials(study.trials)
    a, b = study.ask(), twin.ask()
    assert (a.suggest_float("x", 1e-3, 1.0, log=True), a.suggest_int("k", 1, 64, log=True)) == \
        (b.suggest_float("x", 1e-3, 1.0, log=True), b.suggest_int("k", 1, 64, log=True))
