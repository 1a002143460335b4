"""The hypervolume and the reference point, on cases small enough to compute by hand."""

import numpy as np
import pytest

from nas.search import quality

DIRS = ["maximize", "minimize"]  # accuracy, params


def test_hypervolume_of_a_hand_computed_front():
    # reference: accuracy 0, params 10 (min form: (0, 10)); points (0.5, 2) and (0.8, 6)
    # dominated area: [2,10]×[0,0.5] ∪ [6,10]×[0.5,0.8] = 8·0.5 + 4·0.3 = 5.2; scaled by |0|→1 and |10| = 10
    pts = np.array([[0.5, 2.0], [0.8, 6.0]])
    assert quality.hypervolume(pts, DIRS, [0.0, 10.0]) == pytest.approx(0.52)


def test_points_beyond_the_reference_and_dominated_points_add_nothing():
    base = np.array([[0.5, 2.0], [0.8, 6.0]])
    more = np.vstack([base, [[0.4, 3.0], [0.9, 12.0], [-0.1, 1.0]]])  # dominated; over params; under accuracy
    assert quality.hypervolume(more, DIRS, [0.0, 10.0]) == pytest.approx(quality.hypervolume(base, DIRS, [0.0, 10.0]))
    assert quality.hypervolume(np.array([[0.9, 12.0]]), DIRS, [0.0, 10.0]) == 0.0


def test_history_is_the_hypervolume_of_every_prefix():
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(0.3, 1.0, 30), rng.uniform(1.0, 9.0, 30)])
    curve = quality.history(pts, DIRS, [0.0, 10.0])
    assert curve == pytest.approx([quality.hypervolume(pts[: i + 1], DIRS, [0.0, 10.0]) for i in range(30)])
    assert curve == sorted(curve)


def test_derived_reference_lies_beyond_the_worst_point():
    pts = np.array([[0.5, 2.0], [0.8, 6.0], [0.6, 4.0]])
    ref = quality.derive_reference(pts, DIRS)
    assert ref[0] == pytest.approx(0.5 - 0.1 * 0.3) and ref[1] == pytest.approx(6.6)
    assert quality.hypervolume(pts, DIRS, ref) > 0  # every point, the worst included, counts


def test_a_given_reference_wins_and_none_is_derived_too_early():
    pts = np.array([[0.5, 2.0]] * (quality.REFERENCE_AFTER - 1))
    assert quality.reference_of(None, ["accuracy", "params"], pts, DIRS) is None
    given = {"accuracy": 0.1, "params": 100.0}
    assert list(quality.reference_of(given, ["accuracy", "params"], pts, DIRS)) == [0.1, 100.0]
