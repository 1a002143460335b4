"""An Optuna-native baseline a user could write without nas, replayed on a nas table on a simulated clock.

Optuna's pruners refuse multi-objective studies, so the user who wants early stopping scalarises: one study
maximising ``val_accuracy − 0.02·log10(params) − 0.02·log10(bandwidth)`` (the weights stated here; the costs
are known before training, so every intermediate report carries them), Optuna's ``TPESampler`` with its
defaults (seeded) and its ``HyperbandPruner`` (min_resource 1, max_resource the table's epochs, η = 3),
reporting the scalarised validation score after every epoch. The table answers each epoch (its recorded
validation score and seconds); ``workers`` trials run at once on a simulated clock, and an end (complete or
pruned) reaches the study at its own time, as ``nas.search.replay.SimulatedPool`` does for nas.

Each parameter is sampled from nas's prior (``syne_peers.TableSpace``: the table's space file), and frozen
into a candidate as ``nas run`` does.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Any

WEIGHTS = {"params": 0.02, "bandwidth": 0.02}  # per decade of each cost, subtracted from validation accuracy


class _Ask:
    """nas's ``Suggest`` protocol on an Optuna trial (choices only: a table is a grid)."""

    def __init__(self, trial):
        self.trial = trial

    def categorical(self, label, choices):
        return self.trial.suggest_categorical(label, list(choices))

    def int(self, *args):
        raise ValueError("a table's space has choices only")

    float = int


def scalar(entry: dict, epoch: int) -> float:
    """The scalarised validation score of a candidate after ``epoch`` (1-based)."""
    point = entry["curve"][epoch - 1]
    score = next(v for k, v in point.items() if k.startswith("val_"))
    return float(score) - sum(w * math.log10(max(float(entry["objectives"][m]), 1.0)) for m, w in WEIGHTS.items())


def run_optuna_hb(table: dict, seed: int, workers: int, max_seconds: float, clock: str = "cpu_seconds"
                  ) -> list[dict[str, Any]]:
    """The study's ends in the order they happened on the simulated clock, each ``{"key", "epochs_trained",
    "seconds" (recorded seconds of the epochs trained), "finished_at", "stopped_early"}``; no trial starts
    after ``max_seconds`` of simulated time (those running finish)."""
    import optuna

    from nas.search.replay import key_of
    from syne_peers import TableSpace

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = TableSpace(table)
    epochs = len(next(iter(table["candidates"].values()))["curve"])
    # the name is fixed: Hyperband assigns a trial's bracket from a hash of the study's name and its number
    study = optuna.create_study(study_name=f"optuna-tpe-hb-s{seed}", direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                                                      reduction_factor=3))
    events: list[tuple[float, int, int]] = []  # (time an epoch ends, order, running index)
    running: dict[int, dict[str, Any]] = {}
    order, ids = itertools.count(), itertools.count()
    now, ends = 0.0, []

    def start() -> None:
        trial = study.ask()
        arch, train = space.space.freeze(space.space.sample(_Ask(trial)), *space.dims)
        key = key_of(arch.to_json(), train.to_json())
        entry = table["candidates"][key]
        rid = next(ids)
        running[rid] = {"trial": trial, "key": key, "entry": entry, "epoch": 0, "seconds": 0.0}
        heapq.heappush(events, (now + float(entry["curve"][0][clock]), next(order), rid))

    while True:
        while len(running) < workers and now < max_seconds:
            start()
        if not events:
            break
        now, _, rid = heapq.heappop(events)
        run = running[rid]
        run["epoch"] += 1
        e, entry = run["epoch"], run["entry"]
        run["seconds"] += float(entry["curve"][e - 1][clock])
        value = scalar(entry, e)
        run["trial"].report(value, e)
        done = e == epochs
        pruned = not done and run["trial"].should_prune()
        if done or pruned:
            if done:
                study.tell(run["trial"], value)
            else:
                study.tell(run["trial"], state=optuna.trial.TrialState.PRUNED)
            ends.append({"key": run["key"], "epochs_trained": e, "seconds": run["seconds"], "finished_at": now,
                         "stopped_early": pruned})
            del running[rid]
        else:
            heapq.heappush(events, (now + float(entry["curve"][e][clock]), next(order), rid))
    return ends
