"""Multi-objective early stopping: successive-halving rungs that know params and bandwidth.

Optuna's pruners refuse multi-objective studies and Ray's ASHA follows one
metric; nas knows two of its objectives (params, bandwidth) before training,
so a candidate can be judged against the others at the same point of training.

Rungs are the epochs ``min_epochs · η^k`` below the candidate's last epoch
(η = ``reduction_factor``). At a rung a candidate stops when both hold:

- it is dominated: another candidate at the same rung has at least its
  validation score with no more params and no more bandwidth;
- it is not in the top ``max(1, ⌊n / η⌋)`` validation scores of the n
  candidates at that rung (itself included).

An FPE candidate trains dense until its expansion epoch
(``nas.spaces.fpe.expansion_epoch``): before it, it is the dense network
under the expanded network's cost, which a dense twin always dominates, so it
is never stopped at a rung up to its expansion epoch (its first expanded
epoch, from a fresh optimizer, included), and its scores there do not enter
the rung table (``dense_until``).

A candidate with early exit or gated cross-layer connections is compared on
its ``bandwidth_floor`` (``nas.spaces.cost``): the least it can be found to
move once trained (its first exit's prefix, every gated connection pruned),
not its static worst case, which its plain twin would always beat: it is
stopped only where it is dominated at its best (``rung_bandwidth``).

The decision is made asynchronously, as in ASHA: against the candidates that
had reached the rung when the candidate was handed to a worker. The driver
turns the rung table into two thresholds per rung (``stop_rules``), which the
worker applies to its own validation score: no search logic runs on workers.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Iterable, Sequence

from nas.evaluators.worker import stops  # the worker's side of a rule

__all__ = ["Entry", "dense_until", "entries_of", "keep_count", "rung_bandwidth", "rung_epochs", "should_stop",
           "stop_rule", "stop_rules", "stops"]


@dataclass(frozen=True)
class Entry:
    """One candidate at one rung: its validation score and its static cost."""

    score: float
    params: float
    bandwidth: float


def rung_epochs(min_epochs: int, reduction_factor: int, epochs: int, after: int = 0) -> list[int]:
    """The rungs of a candidate trained for ``epochs``: min_epochs · η^k, below ``epochs``, above ``after``."""
    out, r = [], min_epochs
    while r < epochs:
        if r > after:
            out.append(r)
        r *= reduction_factor
    return out


def dense_until(arch: dict, epochs: int) -> int:
    """The last epoch whose validation score does not yet judge what a candidate (its ArchSpec JSON) will be
    scored as: for FPE, its expansion epoch (the dense epochs and the first expanded one, trained from a fresh
    optimizer); 0 for every other candidate."""
    from nas.spaces.fpe import expansion_epoch

    if int(arch.get("fpe_alpha", 1)) <= 1:
        return 0
    return expansion_epoch(float(arch.get("fpe_at", 0.5)), epochs)


def rung_bandwidth(bandwidth: float, arch: dict) -> float:
    """The bandwidth a candidate (its ArchSpec JSON) is compared on at a rung: ``bandwidth`` itself, or for
    early exit and gated connections (which its static worst case overstates) its ``bandwidth_floor``."""
    if not arch.get("exits") and arch.get("connections", "residual") == "residual":
        return bandwidth
    return _floor(json.dumps(arch, sort_keys=True))


@functools.lru_cache(maxsize=4096)
def _floor(arch_json: str) -> float:
    from nas.spaces import ArchSpec, bandwidth_floor

    return float(bandwidth_floor(ArchSpec.from_json(json.loads(arch_json))))


def keep_count(n: int, reduction_factor: int) -> int:
    """How many of ``n`` candidates at a rung the reduction factor keeps by score alone."""
    return max(1, n // reduction_factor)


def should_stop(me: Entry, others: Sequence[Entry], reduction_factor: int) -> bool:
    """The rule itself: dominated at the rung and not in its top fraction (scores are maximised)."""
    dominated = any(o.score >= me.score and o.params <= me.params and o.bandwidth <= me.bandwidth for o in others)
    if not dominated:
        return False
    pool = sorted([o.score for o in others] + [me.score], reverse=True)
    kth = pool[keep_count(len(pool), reduction_factor) - 1]
    return me.score < kth


def stop_rule(params: float, bandwidth: float, others: Sequence[Entry], reduction_factor: int) -> dict | None:
    """``should_stop`` for a candidate of known cost, as thresholds on its score: stop iff
    ``score <= dominated_at_or_below and score < top_below``; None when nothing can stop it.

    ``dominated_at_or_below``: the best score among the others with no more params
    and no more bandwidth. ``top_below``: the k-th best score of the others, where
    k = keep_count(n + 1) (the candidate itself makes n + 1): a score below it
    cannot be among the top k of the pool.
    """
    cheaper = [o.score for o in others if o.params <= params and o.bandwidth <= bandwidth]
    if not cheaper:
        return None
    k = keep_count(len(others) + 1, reduction_factor)
    scores = sorted((o.score for o in others), reverse=True)
    if len(scores) < k:
        return None
    return {"dominated_at_or_below": max(cheaper), "top_below": scores[k - 1]}


def stop_rules(params: float, bandwidth: float, epochs: int, table: dict[int, list[Entry]],
               min_epochs: int, reduction_factor: int, after: int = 0) -> dict[str, dict]:
    """The rules of every rung of a candidate above epoch ``after`` (``dense_until``), keyed by the rung's
    epoch (as a string: JSON keys)."""
    out = {}
    for r in rung_epochs(min_epochs, reduction_factor, epochs, after):
        rule = stop_rule(params, bandwidth, table.get(r, []), reduction_factor)
        if rule is not None:
            out[str(r)] = rule
    return out


def entries_of(curve: Iterable[dict], score_key: str, params: float, bandwidth: float,
               rungs: Iterable[int]) -> dict[int, Entry]:
    """The rung entries a finished (or stopped) candidate's learning curve gives."""
    by_epoch = {int(p["epoch"]): p for p in curve if score_key in p}
    return {r: Entry(float(by_epoch[r][score_key]), params, bandwidth) for r in rungs if r in by_epoch}


class RungTable:
    """A study's rung table: every trained candidate's validation score at each rung it reached, and the
    stop rules it gives a new candidate. ``cfg``: the space file's ``pruning`` (None: no early stopping, the
    table stays empty and gives no rules); ``score_key``: the curve's validation score (``val_accuracy``)."""

    def __init__(self, cfg, score_key: str):
        self.cfg, self.score_key = cfg, score_key
        self.rungs: dict[int, list[Entry]] = {}

    def add(self, curve: list | None, objectives: dict, epochs: int, arch: dict) -> None:
        """Add a trained candidate's rung scores, less an FPE candidate's dense ones (``epochs``: the epochs
        it was set to train; a stopped candidate's curve holds the rungs it reached)."""
        if self.cfg is None or not curve or "params" not in objectives or "bandwidth" not in objectives:
            return
        rungs = rung_epochs(self.cfg.min_epochs, self.cfg.reduction_factor, epochs, dense_until(arch, epochs))
        for r, entry in entries_of(curve, self.score_key, float(objectives["params"]),
                                   rung_bandwidth(float(objectives["bandwidth"]), arch), rungs).items():
            self.rungs.setdefault(r, []).append(entry)

    def load(self, store, study_name: str) -> None:
        """Add every candidate of ``study_name`` trained so far (a resumed study); nothing without early stopping."""
        if self.cfg is None:
            return
        import sqlalchemy as sa

        from nas.search.store.models import Candidate

        with store.session() as s:
            trained = s.execute(
                sa.select(Candidate.curve, Candidate.objectives, Candidate.train, Candidate.arch)
                .where(Candidate.study_name == study_name, Candidate.state.in_(("COMPLETE", "PRUNED")),
                       Candidate.curve.is_not(None))
            ).all()
        for curve, objectives, train, arch in trained:
            self.add(curve, objectives or {}, int(train.get("epochs", 0)), dict(arch or {}))

    def rules(self, static: dict[str, float], epochs: int, arch: dict) -> dict[str, dict] | None:
        """The stop rules of a candidate of known cost (``static``: params, bandwidth) as the table is now;
        None without early stopping."""
        if self.cfg is None:
            return None
        return stop_rules(static["params"], rung_bandwidth(static["bandwidth"], arch), epochs, self.rungs,
                          self.cfg.min_epochs, self.cfg.reduction_factor, after=dense_until(arch, epochs))
