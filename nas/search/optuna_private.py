"""The only place nas reaches into Optuna's private API, and why.

nas records a reason with every failed or stopped trial (``fail_reason``, the system attribute Optuna's own
``_optimize`` loop writes for a failed trial, so ``optuna-dashboard`` shows it) and keeps Optuna's trial id
beside its own candidate row. Optuna (5.x) has no public call for either: ``Study.tell`` takes no reason,
``Trial`` and ``FrozenTrial`` expose no ``trial_id``, and a study's storage is ``Study._storage``. Each
function here is one private call behind a plain name; if Optuna changes them, this file is the one to mend.
``vectorised_log_ndtr`` swaps one private function of Optuna's TPE for SciPy's, and ``incremental_groups``
subclasses its private group decomposition (see each).
"""

from __future__ import annotations

import contextlib

import optuna
from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """Optuna's storage id of ``trial`` (unique in the database, unlike its number)."""
    return trial._trial_id


def set_fail_reason(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial, reason: str) -> None:
    """Record why ``trial`` failed or was stopped, where Optuna keeps its own failure reasons."""
    study._storage.set_trial_system_attr(trial._trial_id, "fail_reason", reason)



def flush(study: optuna.Study, conn=None) -> None:
    """Write what the study's storage holds back (``SoleWriterStorage.flush``; other storages hold nothing), on
    ``conn`` (a SQLAlchemy connection to the study's database, in its open transaction) when given."""
    flush = getattr(study._storage, "flush", None)
    if flush is not None:
        flush(conn)


def holding(study: optuna.Study):
    """While inside, the study's storage keeps finished trials' state changes for the next ``flush``
    (``SoleWriterStorage.holding``; other storages write them at once)."""
    holding = getattr(study._storage, "holding", None)
    return holding() if holding is not None else contextlib.nullcontext()


@contextlib.contextmanager
def vectorised_log_ndtr():
    """While inside, Optuna's TPE computes log Φ(x) (its truncated Gaussians' masses, ``_truncnorm._log_ndtr``)
    with ``scipy.special.log_ndtr``, one vectorised call, instead of a Python function applied to each element,
    and Φ(x) itself (``_truncnorm._ndtr``, its central masses) with ``scipy.special.ndtr`` instead of its own
    erf (a polynomial evaluated through Python lists: about a tenth of an ask that reuses a fit).

    Optuna 5 evaluates that function once per element of every (candidate × trial) array in each proposal:
    about 10,000 Python calls per ask at 300 trials, most of TPE's time (``benchmarks/driver_scale.py``).
    SciPy's is the reference Optuna's mirrors (Optuna wrote its own to drop the SciPy dependency); the two agree
    to 3e-16 relative (median) and 6e-8 at most (at x = 6, where Optuna's switches formula), the two Φ to 2.2e-16
    absolute (Optuna's 0.5 + 0.5·erf loses relative accuracy far in the left tail; SciPy's does not), so
    proposals are as good but not bit-identical to Optuna's. Not thread-safe: the driver asks from one thread.
    """
    import numpy as np
    import scipy.special

    from optuna.samplers._tpe import _truncnorm

    plain = _truncnorm._log_ndtr, _truncnorm._ndtr
    _truncnorm._log_ndtr = lambda a: scipy.special.log_ndtr(np.asarray(a, dtype=float))
    _truncnorm._ndtr = lambda a: scipy.special.ndtr(np.asarray(a, dtype=float))
    try:
        yield
    finally:
        _truncnorm._log_ndtr, _truncnorm._ndtr = plain


@contextlib.contextmanager
def split_once():
    """While inside (one ask), Optuna's TPE splits the trials into its "good" and "bad" parts once per set of
    trials, not once per group of the search space.

    With ``group=True`` TPE samples each group of parameters in turn (``sample_relative``) and each group
    calls ``_split_trials`` on the same trials: a non-dominated sort of every complete trial (and a
    hypervolume tie-break), about 10 ms at 2,000 trials here, paid once per group. The split reads the
    trials' states, values and constraints only, never the group, so within one ask the answer for the same
    trials is the same: it is kept, keyed by the trial objects themselves (a finished or changed trial is a
    new ``FrozenTrial``; the kept answer holds the old ones, so their ids are not reused while it lives) and
    the size of the good part. Not thread-safe: the driver asks from one thread.
    """
    from optuna.samplers._tpe import sampler as tpe

    plain = tpe._split_trials
    memo: dict = {}

    def split(study, trials, n_below):
        key = (tuple(map(id, trials)), n_below)
        if key not in memo:
            memo.clear()
            memo[key] = plain(study, trials, n_below)
        below, above = memo[key]
        return list(below), list(above)

    tpe._split_trials = split
    try:
        yield
    finally:
        tpe._split_trials = plain


def incremental_groups(space):
    """TPE's group decomposition of the search space (``group=True``), updated with the trials finished since its
    last call instead of every finished trial at every ask.

    Optuna's ``_GroupDecomposedSearchSpace.calculate`` adds the distributions of every complete trial to the
    groups it keeps, at each ask: time in proportion to the study (15 ms an ask at 1,400 trials here). Adding a
    trial's distributions again changes nothing (its set is already a union of the groups), and a finished
    trial's distributions never change, so adding each once gives the same groups. Where the study's trials
    are numbered 0..n-1 (Optuna's storages and nas's), a call reads only the trials new since the last one
    and those unfinished then.
    """
    if type(space) is not _GroupDecomposedSearchSpace:  # another Optuna: leave it as it is
        return space
    return _IncrementalGroups(space._include_pruned)


class NewOrUnfinished:
    """Which of a study's trials to read again: those new since the last look or unfinished at it (a finished
    trial never changes). Trials are read by number, so this needs them listed as numbers 0..n-1, as Optuna's
    storages and nas's list a study's trials; for any other list, or another study, every trial."""

    def __init__(self) -> None:
        self.study_id: int | None = None
        self.seen = 0  # trials 0..seen-1 looked at
        self.open: set[int] = set()  # of those, the ones not finished when looked at

    def look(self, study_id: int, trials: list) -> list[int]:
        n = len(trials)
        numbered = not trials or (trials[0].number == 0 and trials[-1].number == n - 1)
        if study_id != self.study_id or n < self.seen or not numbered:
            self.study_id, self.seen, self.open = study_id, 0, set()
        look = [*self.open, *range(self.seen, n)]
        self.open = {i for i in look if not trials[i].state.is_finished()}
        self.seen = n if numbered else 0
        return look


class _IncrementalGroups(_GroupDecomposedSearchSpace):
    """``incremental_groups``' search space (module level: a sampler holding it pickles)."""

    def __init__(self, include_pruned: bool) -> None:
        super().__init__(include_pruned)
        self._added: set[int] = set()
        self._scan = NewOrUnfinished()

    def calculate(self, study, use_cache: bool = False):
        import copy

        if self._study_id is None:
            self._study_id = study._study_id
        elif self._study_id != study._study_id:
            raise ValueError("`_GroupDecomposedSearchSpace` cannot handle multiple studies.")
        states = ((optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) if self._include_pruned
                  else (optuna.trial.TrialState.COMPLETE,))
        trials = study._get_trials(deepcopy=False, use_cache=use_cache)
        for i in self._scan.look(study._study_id, trials):
            trial = trials[i]
            if trial.state in states and trial.number not in self._added:
                self._added.add(trial.number)
                self._search_space.add_distributions(trial.distributions)
        return copy.deepcopy(self._search_space)
