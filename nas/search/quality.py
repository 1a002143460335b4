"""How good a study's front is: the reference point and the hypervolume (moocore does the geometry).

The hypervolume of a set of candidates is the volume of objective space they
dominate, bounded by a reference point ``r``: the larger, the better the front.
nas computes it in the objectives' own units, in minimisation form (a
maximised metric is negated), and divides by ``Π |r_i|`` (1 where r_i = 0) so
that the number is dimensionless; for minimised metrics whose ideal is 0 (params,
bandwidth) it is then the fraction of the box [0, r_i] dominated.

The reference point comes from the space file (``search.reference``) or is
derived once, from the first ``REFERENCE_AFTER`` complete candidates, and
then kept with the study (the user attribute ``nas:hv_reference``) so that
every later value is comparable with the earlier ones. Derived: 1.1 × the worst
value seen of a minimised metric; the worst value seen minus 10 % of the range
seen (at least 0.01 × |worst|) of a maximised one.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import moocore
import numpy as np

REFERENCE_AFTER = 5  # complete candidates the derived reference point is taken from
REFERENCE_ATTR = "nas:hv_reference"


def _min_form(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    return values * np.array([-1.0 if d == "maximize" else 1.0 for d in directions])


def derive_reference(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """A reference point just beyond the worst of ``values`` (n, m) in every objective."""
    values = np.asarray(values, dtype=float)
    ref = np.empty(values.shape[1])
    for j, d in enumerate(directions):
        col = values[:, j]
        if d == "minimize":
            worst = col.max()
            ref[j] = 1.1 * worst if worst > 0 else worst + 0.1 * max(col.max() - col.min(), abs(worst), 1.0)
        else:
            worst = col.min()
            ref[j] = worst - max(0.1 * (col.max() - worst), 0.01 * abs(worst), 1e-9)
    return ref


def hypervolume(values: np.ndarray, directions: Sequence[str], reference: Sequence[float]) -> float:
    """The normalised hypervolume of the points ``values`` (n, m) with respect to ``reference`` (m,).

    Points that are not better than the reference in every objective add nothing.
    """
    values = np.asarray(values, dtype=float).reshape(-1, len(directions))
    ref = _min_form(np.asarray(reference, dtype=float)[None, :], directions)[0]
    pts = _min_form(values, directions)
    pts = pts[np.all(pts < ref, axis=1)]
    if not len(pts):
        return 0.0
    scale = np.prod([abs(r) if r != 0 else 1.0 for r in reference])
    return float(moocore.hypervolume(pts, ref=ref)) / scale


def history(values: np.ndarray, directions: Sequence[str], reference: Sequence[float]) -> list[float]:
    """The hypervolume after each of the points ``values`` (n, m), in the given (finishing) order."""
    values = np.asarray(values, dtype=float).reshape(-1, len(directions))
    ref = _min_form(np.asarray(reference, dtype=float)[None, :], directions)[0]
    pts = _min_form(values, directions)
    scale = np.prod([abs(r) if r != 0 else 1.0 for r in reference])
    out, front, hv = [], np.empty((0, len(directions))), 0.0
    for p in pts:
        if np.all(p < ref) and not (len(front) and np.any(np.all(front <= p, axis=1))):  # the front grows
            front = np.vstack([front, p])
            front = front[moocore.is_nondominated(front)]
            hv = float(moocore.hypervolume(front, ref=ref)) / scale
        out.append(hv)
    return out


def reference_of(given: Mapping[str, float] | None, metrics: Sequence[str], values: np.ndarray,
                 directions: Sequence[str]) -> np.ndarray | None:
    """The space file's reference point (every metric given), else one derived from ``values``, else None."""
    if given:
        return np.array([float(given[m]) for m in metrics])
    if len(values) >= REFERENCE_AFTER:
        return derive_reference(values[:REFERENCE_AFTER], directions)
    return None
