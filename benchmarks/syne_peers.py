"""Replay Syne Tune's MOASHA and multi-objective random search against a nas tabular benchmark.

The table (``nas-table/1``, see ``nas.search.replay``) is turned into a Syne Tune blackbox and run
through Syne Tune's own simulated back end (``UserBlackboxBackend`` + ``SimulatorCallback`` + ``Tuner``;
Syne Tune 0.16, the ``bench`` extra, never a runtime dependency of nas):
Syne Tune decides which candidate to start and when to stop it, its simulator advances the clock by
the recorded seconds of every epoch, and we record what each trial did.

Configuration space (``TableSpace``): nas's own prior, read from the table's space file: one categorical per
choice parameter, exactly its choices, frozen into a candidate as ``nas run`` freezes it.

The peers at their best (issue of 2026-12-07): Syne Tune 0.16's ``NonDominatedPriority`` returns the items'
indices in sorted order where its callers read one priority per item (``benchmarks/moasha_rank_bug.py``
reproduces it), so MOASHA and multi-objective regularized evolution run here with ``RankCorrectPriority`` as
well as as shipped.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import tempfile
from typing import Any

import numpy as np

from syne_tune import StoppingCriterion, Tuner
from syne_tune.backend.simulator_backend.simulator_backend import SimulatorConfig
from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
from syne_tune.blackbox_repository.blackbox import Blackbox
from syne_tune.blackbox_repository.simulated_tabular_backend import UserBlackboxBackend
from syne_tune.config_space import choice, randint
from syne_tune.constants import ST_TUNER_TIME
from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA
from syne_tune.optimizer.schedulers.multiobjective.multi_objective_regularized_evolution import (
    MultiObjectiveRegularizedEvolution)
from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import NonDominatedPriority
from syne_tune.optimizer.schedulers.multiobjective.non_dominated_priority import nondominated_sort
from syne_tune.optimizer.schedulers.searchers.random_searcher import MultiObjectiveRandomSearcher
from syne_tune.optimizer.schedulers.single_fidelity_scheduler import SingleFidelityScheduler
from syne_tune.tuner_callback import TunerCallback

EPOCH, ELAPSED = "epoch", "elapsed_time"


# MOASHA ranks a rung's trials by Syne Tune's non-dominated sort (non_dominated_priority.nondominated_sort) at
# every result: its Pareto filter loops in Python and its epsilon net recomputes every distance at each of k
# steps (O(k^3) on a front of k), so one study on a 1,440-candidate table ran for minutes. These two are the
# same functions computed faster; they return exactly what Syne Tune's return (tests/test_syne_peers.py checks
# it on random inputs with ties and duplicates), so MOASHA's decisions are its own.
def _pareto_efficient(X: np.ndarray) -> np.ndarray:
    """Syne Tune's ``pareto_efficient``: the points no other point dominates (all <=, one <); duplicates kept."""
    import moocore

    if len(X) == 0:
        return np.ones(0, dtype=bool)
    return moocore.is_nondominated(np.asarray(X, dtype=float), maximise=False, keep_weakly=True)


def _compute_epsilon_net(X: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Syne Tune's ``compute_epsilon_net``: greedy farthest-point order (ties: the lowest index), as ranks; each
    point's distance to the chosen set is kept up to date instead of recomputed."""
    n = X.shape[0]
    initial = np.random.choice(n) if dim is None else np.argmin(X, axis=0)[dim]
    order = [int(initial)]
    nearest = np.linalg.norm(X - X[initial], axis=-1)
    left = np.ones(n, dtype=bool)
    left[initial] = False
    while len(order) < n:
        candidates = np.flatnonzero(left)
        choice = int(candidates[nearest[candidates].argmax()])
        order.append(choice)
        left[choice] = False
        nearest = np.minimum(nearest, np.linalg.norm(X - X[choice], axis=-1))
    ranks = np.empty(n, dtype=int)
    ranks[order] = np.arange(n)
    return ranks


class RankCorrectPriority(NonDominatedPriority):
    """``NonDominatedPriority`` returning what its callers read: each item's place in the non-dominated sort (0:
    first), the inverse of the order ``nondominated_sort`` returns (``benchmarks/moasha_rank_bug.py``)."""

    def priority_unsafe(self, objectives: np.ndarray) -> np.ndarray:
        order = np.asarray(nondominated_sort(X=objectives, dim=self.dim, max_items=self.max_num_samples), dtype=int)
        ranks = np.empty(len(objectives), dtype=int)
        ranks[order] = np.arange(len(order))
        return ranks


class NewestRankPriority(NonDominatedPriority):
    """MOASHA's priority (as shipped, or rank-correct with ``correct=True``), computed for what MOASHA reads.

    ASHA's ``on_result`` (``asha.py``) calls the priority on a rung's recorded results with the new one last,
    turns the answer into ranks with ``searchsorted(sorted(p), p) / n`` and reads only ``ranks[-1]``: the new
    trial's. Sorting the whole rung (every front's epsilon net, at each result) made one MOASHA study on a
    table take about five minutes here, nearly all of it in ``compute_epsilon_net``. This priority finds the
    fronts in one call (``moocore.pareto_rank``: the same layers as Syne Tune's repeated ``pareto_efficient``)
    and runs the epsilon net on one front only: the new item's (``correct``: its place in the sort, the
    inverse permutation) or the last front (as shipped: ``nondominated_sort``'s order, whose last entry is
    the index of the item the sort lists last). It returns a permutation of 0..n-1 whose last entry is that
    value, so ``ranks[-1]`` and every decision are exactly the full priority's (``tests/test_syne_peers.py``
    checks it against ``NonDominatedPriority`` and ``RankCorrectPriority`` on random rungs); the other
    entries are filler that MOASHA never reads."""

    def __init__(self, correct: bool):
        super().__init__()
        self.correct = correct

    def priority_unsafe(self, objectives: np.ndarray) -> np.ndarray:
        import moocore

        x = np.asarray(objectives, dtype=float)
        n = len(x)
        layer = moocore.pareto_rank(x, maximise=False)
        # nondominated_sort lists a front F as F[net], net being compute_epsilon_net's ranks read as an order
        # (the same mix-up, inside the sort): item F[j] stands at the place k where net[k] == j
        if self.correct:  # the new item's place: the fronts before its own, then its place in its front's list
            front = np.flatnonzero(layer == layer[-1])  # ends with n - 1, the new item
            net = _compute_epsilon_net(x[front], dim=self.dim)
            value = int((layer < layer[-1]).sum()) + int(np.argmax(net))  # net[k] == len(front) - 1
        else:  # as shipped: the index of the item the sort lists last (the last front's last)
            front = np.flatnonzero(layer == layer.max())
            value = int(front[_compute_epsilon_net(x[front], dim=self.dim)[-1]])
        return np.append(np.delete(np.arange(n), value), value)


def _faster_nondominated_sort() -> None:
    from syne_tune.optimizer.schedulers.multiobjective import non_dominated_priority as ndp

    ndp.pareto_efficient, ndp.compute_epsilon_net = _pareto_efficient, _compute_epsilon_net
class _Given:
    """nas's ``Suggest`` protocol answered from a configuration Syne Tune sampled."""

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def categorical(self, label, choices):
        return self.config[label]

    def int(self, label, low, high, log, step):
        raise ValueError(f"{label}: a range; a table's space has choices and fixed values only")

    float = int


class TableSpace:
    """The Syne Tune configuration space of a table: nas's own prior, read from the space file the table was
    recorded from (``table["space"]``). Each choice parameter is a categorical of exactly its choices, sampled
    uniformly as nas's random sampler samples it; a fixed one is not a parameter; a parameter whose ``when`` is
    not met is sampled too but never read (nas leaves it out of the candidate), so it does not change the
    distribution of the candidates. ``lookup`` freezes a configuration as ``nas run`` does and returns its
    table key (KeyError for a point the table does not hold)."""

    def __init__(self, table: dict):
        from nas.spaces import parse_space

        self.space = parse_space(table["space"], "<the table's space>")
        dims = table["dims"]
        self.dims = (int(dims["d_in"]), int(dims["d_out"]), tuple(dims.get("in_shape") or ()))
        bad = [p.label for p in self.space.params if p.kind in ("int", "float")]
        if bad:
            raise ValueError(f"the table's space has ranges ({', '.join(bad)}): a table is a finite grid")
        self.config_space = {p.label: choice(list(p.choices)) for p in self.space.params if p.kind == "choice"}
        self.keys = list(table["candidates"])

    def lookup(self, config: dict[str, Any]) -> str:
        from nas.search.replay import key_of

        arch, train = self.space.freeze(self.space.sample(_Given(config)), *self.dims)
        key = key_of(arch.to_json(), train.to_json())
        return key


class TableBlackbox(Blackbox):
    """The table as a Syne Tune blackbox: one fidelity (``epoch``), objectives to minimise per epoch
    (the recorded validation score of the table's score metric, signed for minimisation, and the static
    objectives) and ``elapsed_time`` (cumulative recorded seconds)."""

    def __init__(self, table: dict, space: TableSpace, clock: str = "seconds"):
        first = next(iter(table["candidates"].values()))
        self.epochs = len(first["curve"])
        self.space = space
        self.metrics = [f"signed_{m}" for m in table["directions"]]
        rows = []
        for key in space.keys:
            entry = table["candidates"][key]
            curve = entry["curve"]
            assert len(curve) == self.epochs, f"{key}: {len(curve)} epochs, not {self.epochs}"
            per_epoch = []
            for m, direction in table["directions"].items():
                sign = -1.0 if direction == "maximize" else 1.0
                if f"val_{m}" in curve[0]:
                    per_epoch.append([sign * float(p[f"val_{m}"]) for p in curve])
                else:
                    per_epoch.append([sign * float(entry["objectives"][m])] * self.epochs)
            per_epoch.append(np.cumsum([float(p[clock]) for p in curve]).tolist())
            rows.append(np.array(per_epoch).T)  # (epochs, objectives + 1)
        self.values = np.stack(rows)
        self.index = {k: i for i, k in enumerate(space.keys)}  # a key the table lacks: KeyError
        super().__init__(
            configuration_space=space.config_space,
            fidelity_space={EPOCH: randint(1, self.epochs)},
            objectives_names=self.metrics + [ELAPSED],
        )

    def _objective_function(self, configuration, fidelity=None, seed=None):
        values = self.values[self.index[self.space.lookup(configuration)]]
        if fidelity is None:
            return values
        return dict(zip(self.objectives_names, values[int(fidelity[EPOCH]) - 1]))

    @property
    def fidelity_values(self) -> np.ndarray:
        return np.arange(1, self.epochs + 1)


class _Backend(UserBlackboxBackend):
    """Syne Tune's simulator back end, except that the real time spent in the tuner loop (scheduler
    decisions) is not added to the simulated clock: the replay is repeatable and its clock is only the
    recorded training seconds (plus, with a fixed tick, the tuner's sleep steps)."""

    def _advance_by_outside_time(self):
        pass

    def next_event_time(self) -> float | None:
        heap = self._simulator_state.event_heap
        return heap[0][0] if heap else None


class _Clock(SimulatorCallback):
    """``SimulatorCallback``; with ``tick=None`` the tuner's sleep (every worker busy) advances the clock
    to the simulator's next event instead of by a fixed step: every result is seen at its own time."""

    def __init__(self, tick: float | None):
        super().__init__()
        self.tick = tick

    def on_tuning_start(self, tuner):
        super().on_tuning_start(tuner)
        self.backend = tuner.trial_backend

    def on_tuning_sleep(self, sleep_time: float):
        at = self.backend.next_event_time() if self.tick is None else None
        if at is None:
            super().on_tuning_sleep(sleep_time)  # advance by the backend's tuner_sleep_time
        else:
            self._time_keeper.advance_to(at)


class _Recorder(TunerCallback):
    """Every result the scheduler saw, per trial: (epoch, simulated time, decision)."""

    def __init__(self):
        self.seen: dict[int, list[tuple[int, float, str]]] = {}
        self.config: dict[int, dict] = {}

    def on_start_trial(self, trial):
        self.config[trial.trial_id] = dict(trial.config)

    def on_trial_result(self, trial, status, result, decision):
        self.seen.setdefault(trial.trial_id, []).append((int(result[EPOCH]), float(result[ST_TUNER_TIME]), decision))


def _cap(scheduler, max_trials: int | None):
    """Make ``scheduler.suggest`` return None after ``max_trials`` suggestions: the Tuner then treats the
    space as exhausted, starts nothing more and waits for the running trials to finish."""
    if max_trials is None:
        return scheduler
    suggest, count = scheduler.suggest, itertools.count()
    scheduler.suggest = lambda: suggest() if next(count) < max_trials else None
    return scheduler


METHODS = ("morandom", "moasha", "moasha_rc", "morea", "morea_rc", "ehvi")  # Syne Tune's (as shipped, rank-corrected)


def make_scheduler(method: str, space: TableSpace, metrics: list[str], epochs: int, seed: int,
                   rung_min: int, reduction_factor: int):
    """``method``: morandom (multi-objective random search), moasha / moasha_rc (MOASHA with the shipped /
    rank-correct priority), morea / morea_rc (multi-objective regularized evolution, every trial trained in
    full, likewise; population 20, samples of 5), ehvi (Syne Tune's multi-objective Bayesian optimisation,
    ``baselines.EHVI``, on BoTorch; every trial trained in full)."""
    if method in ("moasha", "moasha_rc"):
        priority = NewestRankPriority(correct=method == "moasha_rc")  # exactly the full priority's decisions
        return MOASHA(config_space=space.config_space, metrics=metrics, do_minimize=True, time_attr=EPOCH,
                      max_t=epochs, grace_period=rung_min, reduction_factor=reduction_factor, random_seed=seed,
                      multiobjective_priority=priority)
    if method in ("morea", "morea_rc"):
        priority = RankCorrectPriority() if method == "morea_rc" else NonDominatedPriority()
        # Syne Tune's default population (100, sample 10) is the whole budget of these studies (about 100
        # candidates): it would never evolve. A population of 20 and samples of 5 let it (the same for both)
        searcher = MultiObjectiveRegularizedEvolution(config_space=space.config_space, random_seed=seed,
                                                      population_size=20, sample_size=5,
                                                      multiobjective_priority=priority)
        return SingleFidelityScheduler(config_space=space.config_space, metrics=metrics, do_minimize=True,
                                       searcher=searcher, random_seed=seed)
    if method == "ehvi":  # multi-objective Bayesian optimisation (BoTorch's expected hypervolume improvement)
        from syne_tune.optimizer.baselines import EHVI

        return EHVI(config_space=space.config_space, metrics=metrics, do_minimize=True, random_seed=seed)
    if method == "morandom":
        searcher = MultiObjectiveRandomSearcher(config_space=space.config_space, random_seed=seed)
        return SingleFidelityScheduler(config_space=space.config_space, metrics=metrics, do_minimize=True,
                                       searcher=searcher, random_seed=seed)
    raise ValueError(f"method {method!r}: one of {', '.join(METHODS)}")


def run_syne(table: dict, method: str, seed: int, workers: int, max_trials: int | None,
             max_seconds: float | None, rung_min: int = 1, reduction_factor: int = 3,
             tick: float | None = None, clock: str = "seconds") -> list[dict]:
    """Replay ``method`` (one of ``METHODS``) on ``table`` with Syne Tune's simulator.

    Returns the trials whose results became final (completed, or stopped by the scheduler) within the
    budget, in the order they did on the simulated clock, each ``{"key", "epochs_trained", "seconds"
    (recorded seconds of the epochs trained), "finished_at" (simulated seconds), "stopped_early"}``.
    ``max_trials``: at most this many trials are started, and all run to their end; ``max_seconds``:
    the study stops at this simulated time (trials still running then are cut and left out).
    ``tick``: None (default): while every worker is busy the clock jumps to the simulator's next event,
    so each result is seen at its own time; a number: Syne Tune's stock behaviour, the tuner's sleep
    advances the clock by ``tick`` simulated seconds and a decision can lag its result by up to one tick.
    ``clock``: the curve's key that times an epoch (``seconds`` or ``cpu_seconds``, as ``ReplayEvaluator``).
    """
    if max_trials is None and max_seconds is None:
        raise ValueError("give max_trials or max_seconds")
    _faster_nondominated_sort()
    space = TableSpace(table)
    blackbox = TableBlackbox(table, space, clock)
    scheduler = _cap(make_scheduler(method, space, blackbox.metrics, blackbox.epochs, seed, rung_min,
                                    reduction_factor), max_trials)
    backend = _Backend(
        blackbox=blackbox, elapsed_time_attr=ELAPSED, seed=0, tuner_sleep_time=tick or 1e-3,
        simulator_config=SimulatorConfig(0.0, 0.0, 0.0, 0.0, 0.0))  # no start/report/stop latencies
    recorder = _Recorder()
    stop = StoppingCriterion(max_wallclock_time=max_seconds)  # None: never (the trial cap ends the study)
    rng_state = np.random.get_state()
    np.random.seed(seed)  # Syne Tune's random samplers and MOASHA's brackets draw from numpy's global RNG
    dtype = None
    if method == "ehvi":  # Syne Tune 0.16 hands BoTorch float32 tensors; BoTorch 0.18's fused qLogEHVI needs float64
        import torch

        dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        torch.manual_seed(seed)
    old_folder = os.environ.get("SYNETUNE_FOLDER")
    try:
        with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):
            os.environ["SYNETUNE_FOLDER"] = folder
            tuner = Tuner(trial_backend=backend, scheduler=scheduler, stop_criterion=stop, n_workers=workers,
                          sleep_time=0, callbacks=[_Clock(tick), recorder], save_tuner=False,
                          results_update_interval=1e9, print_update_interval=1e9, tuner_name="nas-replay")
            tuner.run()
    finally:
        np.random.set_state(rng_state)
        if dtype is not None:
            import torch

            torch.set_default_dtype(dtype)
        if old_folder is None:
            os.environ.pop("SYNETUNE_FOLDER", None)
        else:
            os.environ["SYNETUNE_FOLDER"] = old_folder

    out = []
    for trial_id, seen in recorder.seen.items():
        epoch, at, decision = seen[-1]
        final = epoch == blackbox.epochs or decision == "STOP"
        if not final or (max_seconds is not None and at > max_seconds):
            continue
        key = space.lookup(recorder.config[trial_id])
        out.append({"key": key, "epochs_trained": epoch,
                    "seconds": float(blackbox.values[blackbox.index[key], epoch - 1, -1]),
                    "finished_at": at, "stopped_early": epoch < blackbox.epochs, "_id": trial_id})
    out.sort(key=lambda t: (t["finished_at"], t["_id"]))
    return [{k: v for k, v in t.items() if k != "_id"} for t in out]
