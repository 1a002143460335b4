"""One training seed is one sample: a confirmed candidate's scores over its seeds, and what the noise lets a
front say.

``nas confirm`` (``nas.search.execution.confirm``) trains chosen candidates again with K seeds; this module turns those
rows into mean, standard deviation and a 95 % interval per metric (``summarise``, ``confirmed``) and marks
which confirmed candidates are told apart by their intervals (``significance``). Pure Python and SciPy: the
read side (``nas show``, the dashboard, the exporter's pick) imports it without torch or Ray.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from nas.evaluators.names import TEST_PREFIX, is_record_only

LEVEL = 0.95  # the intervals' confidence
EXACT = ("params", "bandwidth")  # costs known from the architecture alone: the same for every seed


def summarise(values: Sequence[float]) -> dict[str, Any]:
    """``{"n", "mean", "sd", "ci95": [lo, hi]}`` of a sample: the mean, the sample standard deviation (n - 1)
    and Student's t interval for the mean, mean ± t(0.975, n - 1)·sd/√n. With fewer than 2 values ``sd`` and
    ``ci95`` are None (one seed says nothing of the spread)."""
    xs = [float(v) for v in values]
    n = len(xs)
    mean = sum(xs) / n if n else None
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "ci95": None}
    from scipy.stats import t

    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(t.ppf(0.5 + LEVEL / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}


def confirmed(seed_objectives: Sequence[Mapping[str, Any]], seeds: Sequence[int], score: str) -> dict[str, Any]:
    """The ``confirmed`` object of a trial from its complete confirmation rows' objectives (one per seed):
    ``{"seeds": K, "seed_list": [...], "metric": score, "val": summary, "test": summary, "objectives": {metric:
    summary}}``. ``val`` is the validation ``score`` (what selection reads), ``test`` its test score (the
    record); ``objectives`` summarises every other number the evaluator measured (``latency_ms``, a measured
    bandwidth), so a cost that varies with training gets its spread too; the exact costs (``EXACT``) are left
    out."""
    numeric = sorted({k for o in seed_objectives for k, v in o.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)})
    out: dict[str, Any] = {
        "seeds": len(seed_objectives), "seed_list": list(seeds), "metric": score,
        "val": summarise([o[score] for o in seed_objectives if score in o]),
        "test": summarise([o[TEST_PREFIX + score] for o in seed_objectives if TEST_PREFIX + score in o]),
        "objectives": {},
    }
    for m in numeric:
        if m != score and m not in EXACT and not is_record_only(m):
            out["objectives"][m] = summarise([o[m] for o in seed_objectives if m in o])
    return out


def _better_interval(a: Mapping, b: Mapping, maximize: bool) -> bool:
    """a's interval lies wholly on the better side of b's (no overlap)."""
    if a.get("ci95") is None or b.get("ci95") is None:
        return False
    return a["ci95"][0] > b["ci95"][1] if maximize else a["ci95"][1] < b["ci95"][0]


def significance(entries: Mapping[int, Mapping[str, Any]], score: str,
                 directions: Mapping[str, str]) -> dict[int, dict[str, Any]]:
    """What the intervals let each confirmed candidate claim against the others.

    ``entries``: trial number -> ``{"interval": the score's summary (``val``), "costs": {metric: value}, "id":
    optional, the same for two trials of one training (a reused candidate), which are not each other's rivals}``
    for the study's other objectives (exact costs as the search measured them; a measured one, such as
    ``latency_ms``, as its mean over the seeds). a **significantly dominates** b when a's costs are no worse
    than b's in every objective and a's interval lies wholly above b's (below for a minimised score).
    Returns, per trial, ``{"status", "by"}``:

    - ``dominated``: another confirmed candidate significantly dominates it (``by``: the cheapest such one);
    - ``indistinguishable``: no one dominates it, but a candidate at most as costly has an interval that
      overlaps its own, so its extra cost (if any) buys no gain the seeds can see (``by``: the cheapest such);
    - ``distinct``: its interval lies above that of every other candidate at most as costly (or none is):
      a front member the noise cannot move.

    Only confirmed candidates with an interval (2 seeds or more) take part. What this says, and what not: two
    95 % intervals that do not overlap is a conservative test of a difference (about the 0.5 % level for equal
    spreads), and overlapping intervals do not prove two candidates equal; the intervals cover the training
    seed's variance only (the validation split is fixed, so its sampling error is not in them); and no
    correction is made for the many comparisons of a front.
    """
    maximize = directions.get(score, "maximize") == "maximize"
    costs = [m for m in directions if m != score]

    def no_worse(a: Mapping, b: Mapping) -> bool:
        return all((a["costs"][m] >= b["costs"][m]) if directions[m] == "maximize" else (a["costs"][m] <= b["costs"][m])
                   for m in costs)

    def cheapness(n: int) -> tuple:
        e = entries[n]
        return tuple((-1 if directions[m] == "maximize" else 1) * e["costs"][m] for m in costs) + (n,)

    usable = {n: e for n, e in entries.items()
              if e["interval"].get("ci95") is not None and all(m in e["costs"] for m in costs)}
    out: dict[int, dict[str, Any]] = {}
    for b, eb in usable.items():
        twin = eb.get("id")  # the same training under another trial number (a reused candidate): not a rival
        rivals = sorted((a for a in usable if a != b and no_worse(usable[a], eb)
                         and (twin is None or usable[a].get("id") != twin)), key=cheapness)
        dominating = [a for a in rivals if _better_interval(usable[a]["interval"], eb["interval"], maximize)]
        if dominating:
            out[b] = {"status": "dominated", "by": dominating[0]}
            continue
        overlapping = [a for a in rivals if not _better_interval(eb["interval"], usable[a]["interval"], maximize)]
        out[b] = ({"status": "indistinguishable", "by": overlapping[0]} if overlapping
                  else {"status": "distinct", "by": None})
    return out


def format_confirmed(metric: str, summary: Mapping[str, Any] | None) -> str:
    """``0.9410 ± 0.0040 (5 seeds)``; a PSNR in dB; ``-`` without one."""
    if not summary or summary.get("mean") is None:
        return "-"
    n = summary["n"]
    if summary.get("sd") is None:
        mean = f"{summary['mean']:.2f} dB" if metric == "psnr" else f"{summary['mean']:.4f}"
        return f"{mean} (1 seed)"
    if metric == "psnr":
        return f"{summary['mean']:.2f} ± {summary['sd']:.2f} dB ({n} seeds)"
    return f"{summary['mean']:.4f} ± {summary['sd']:.4f} ({n} seeds)"
