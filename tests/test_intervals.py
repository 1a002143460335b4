"""Seeds, intervals and splits without training: the statistics `nas confirm` reports, the marking of what the
noise lets a front claim, the held-out splits a space file sets, and what each stored score means."""

import math

import numpy as np
import pytest

from nas.evaluators.names import scores_on_test
from nas.search.read.intervals import confirmed, format_confirmed, significance, summarise


def test_summarise_is_students_t_interval():
    s = summarise([0.90, 0.92, 0.94, 0.96, 0.98])
    assert s["n"] == 5 and s["mean"] == pytest.approx(0.94)
    assert s["sd"] == pytest.approx(math.sqrt(0.004 / 4))  # sample sd: squared deviations 1.6e-3·2 + 4e-4·2, over n - 1
    half = 2.776445105 * s["sd"] / math.sqrt(5)  # t(0.975, 4)
    assert s["ci95"] == pytest.approx([0.94 - half, 0.94 + half])
    one = summarise([0.9])
    assert one == {"n": 1, "mean": 0.9, "sd": None, "ci95": None}  # one seed says nothing of the spread
    assert summarise([0.5, 0.5])["ci95"] == [0.5, 0.5]


def test_confirmed_summarises_validation_test_and_measured_costs_not_exact_ones():
    seeds = [{"accuracy": 0.9, "test_accuracy": 0.88, "params": 100.0, "bandwidth": 10.0, "latency_ms": 1.0,
              "exit_counts": [1, 2]},
             {"accuracy": 0.8, "test_accuracy": 0.86, "params": 100.0, "bandwidth": 10.0, "latency_ms": 3.0,
              "exit_counts": [2, 1]}]
    c = confirmed(seeds, [1, 2], "accuracy")
    assert c["seeds"] == 2 and c["seed_list"] == [1, 2] and c["metric"] == "accuracy"
    assert c["val"]["mean"] == pytest.approx(0.85) and c["test"]["mean"] == pytest.approx(0.87)
    assert set(c["objectives"]) == {"latency_ms"} and c["objectives"]["latency_ms"]["mean"] == 2.0


def _entry(mean, half, params, bandwidth=1.0):
    return {"interval": {"n": 5, "mean": mean, "sd": half, "ci95": [mean - half, mean + half]},
            "costs": {"params": params, "bandwidth": bandwidth}}


DIRS = {"accuracy": "maximize", "params": "minimize", "bandwidth": "minimize"}


def test_significance_marks_distinct_indistinguishable_and_dominated():
    entries = {
        1: _entry(0.80, 0.01, 100),   # the cheapest: nothing at most as costly, so distinct
        2: _entry(0.90, 0.01, 200),   # clearly above trial 1, costs more: a real step of the front
        3: _entry(0.905, 0.02, 300),  # above 2 only within the noise: its extra params buy nothing visible
        4: _entry(0.85, 0.01, 400),   # trial 2 costs less and is above beyond the noise: dominated
        5: _entry(0.99, 0.01, 50, bandwidth=5.0),  # cheaper in params, dearer in bandwidth: compared with none
    }
    marks = significance(entries, "accuracy", DIRS)
    assert marks[1] == {"status": "distinct", "by": None}
    assert marks[2] == {"status": "distinct", "by": None}
    assert marks[3] == {"status": "indistinguishable", "by": 2}
    assert marks[4] == {"status": "dominated", "by": 2}  # 1 is cheaper too but not above it: 2 is named
    assert marks[5] == {"status": "distinct", "by": None}


def test_significance_reads_a_minimised_score_and_skips_single_seeds():
    entries = {1: _entry(10.0, 1.0, 100), 2: _entry(20.0, 1.0, 200),
               3: {"interval": {"n": 1, "mean": 5.0, "sd": None, "ci95": None}, "costs": {"params": 50, "bandwidth": 1}}}
    marks = significance(entries, "loss", {"loss": "minimize", "params": "minimize", "bandwidth": "minimize"})
    assert marks == {1: {"status": "distinct", "by": None}, 2: {"status": "dominated", "by": 1}}


def test_format_confirmed():
    assert format_confirmed("accuracy", {"n": 5, "mean": 0.9412, "sd": 0.0041}) == "0.9412 ± 0.0041 (5 seeds)"
    assert format_confirmed("psnr", {"n": 3, "mean": 22.456, "sd": 0.123}) == "22.46 ± 0.12 dB (3 seeds)"
    assert format_confirmed("accuracy", {"n": 1, "mean": 0.9, "sd": None}) == "0.9000 (1 seed)"
    assert format_confirmed("accuracy", None) == "-"


def test_test_scores_by_evaluator_version():
    now = {"accuracy": 0.95, "test_accuracy": 0.93, "test_bandwidth_expected": 1e3, "test_exit_counts": [1, 2]}
    assert scores_on_test(now, 3, ["accuracy", "params"]) == {"accuracy": 0.93, "bandwidth_expected": 1e3}
    # before version 3 the score itself was the test split's
    assert scores_on_test({"accuracy": 0.91, "params": 5.0}, 2, ["accuracy", "params"]) == {"accuracy": 0.91}


def test_task_keys_read_back():
    from nas.search.keys import TaskRef

    for ref in (TaskRef("classification", "digits"),
                TaskRef("denoise", "mnist5k", test=0.2, validation=0.1),
                TaskRef("classification", "sat", (("clauses", 8), ("disjoint", False), ("seed", 0)), 0.15, 0.3),
                TaskRef("superres", "npz:/data/a b/x.npz")):
        assert TaskRef.from_key(ref.key()) == ref
    # the keys stored before the splits could be set are read as the default splits
    assert TaskRef("classification", "digits").key() == "classification|digits"
    assert TaskRef.from_key('classification|sat|{"clauses":8}').options == (("clauses", 8),)


def test_default_splits_are_unchanged_and_a_space_file_can_set_them(tmp_path):
    from nas.evaluators import load_task

    assert load_task("mnist5k").sizes() == (3612, 638, 750)  # train, validation, test: as before the keys
    t = load_task("digits", test=0.3, validation=0.1)
    assert t.sizes() == (1132, 126, 539)  # 0.3 of 1,797 held out for test, 0.1 of the 1,258 left for validation
    rng = np.random.default_rng(0)
    x, y = rng.random((100, 6), dtype=np.float32), rng.integers(0, 3, 100)
    xv, yv = rng.random((30, 6), dtype=np.float32), rng.integers(0, 3, 30)
    np.savez(tmp_path / "v.npz", X=x, y=y, X_val=xv, y_val=yv)
    t = load_task(f"npz:{tmp_path / 'v.npz'}")
    assert t.sizes() == (85, 30, 15)  # X_val is the validation split; the test split is drawn from X
    assert np.allclose(t.x_val.numpy(), xv)


def test_the_card_says_which_split_each_score_is():
    from nas.exporter.card import _metric
    from nas.search.read.format import human_bytes, human_count

    def said(metric, version):
        return _metric(metric, 0.9, human_count, human_bytes, version)

    assert "validation accuracy" in said("accuracy", 3) and "what the search selected on" in said("accuracy", 3)
    assert "test accuracy" in said("test_accuracy", 3) and "never selected on" in said("test_accuracy", 3)
    assert "test accuracy" in said("accuracy", 2) and "selected on it" in said("accuracy", 2)
    assert "per validation sample" in said("bandwidth_expected", 3) and "per test sample" in said(
        "bandwidth_expected", 2)


def test_a_reused_twin_is_not_its_originals_rival():
    """A reused candidate beside its original on the front is the same training: confirmed once
    (``distinct``), both read its seeds, and the marking does not compare one with the other."""
    from types import SimpleNamespace

    from nas.search.execution.confirm import distinct
    from nas.search.read.results import by_candidate, identity

    a = SimpleNamespace(trial_number=4, arch_id="a", train_key="t.e3", task_key="k")
    twin = SimpleNamespace(trial_number=9, arch_id="a", train_key="t.e3", task_key="k")
    b = SimpleNamespace(trial_number=2, arch_id="b", train_key="t.e3", task_key="k")
    assert [c.trial_number for c in distinct([twin, a, b])] == [2, 4]
    seeds = by_candidate({4: [(1, {"accuracy": 0.9})]}, {4: a, 9: twin})
    assert seeds[identity(twin)] == seeds[identity(a)]
    entries = {4: {**_entry(0.90, 0.01, 200), "id": identity(a)}, 9: {**_entry(0.90, 0.01, 200), "id": identity(twin)},
               2: {**_entry(0.80, 0.01, 100), "id": identity(b)}}
    marks = significance(entries, "accuracy", DIRS)
    assert marks[4] == marks[9] == {"status": "distinct", "by": None}  # not "≈ its twin"


def test_picks_read_the_seeds_only_once_the_whole_front_is_confirmed():
    from nas.exporter.pick import best_by, confirmed_pool

    def row(n, acc, params, pareto, mean=None):
        r = {"number": n, "values": {"accuracy": acc, "params": params}, "pareto": pareto}
        if mean is not None:
            r["confirmed"] = {"metric": "accuracy", "val": {"n": 3, "mean": mean, "sd": 0.01}, "objectives": {}}
        return r

    dirs = {"accuracy": "maximize", "params": "minimize"}
    part = [row(0, 0.95, 100, True), row(1, 0.90, 50, True, mean=0.97), row(2, 0.80, 500, False, mean=0.99)]
    assert confirmed_pool(part, dirs) == []  # trial 0 of the front unconfirmed: single seeds decide
    assert best_by(part, "accuracy", dirs)["number"] == 0
    whole = [row(0, 0.95, 100, True, mean=0.93), row(1, 0.90, 50, True, mean=0.94), row(2, 0.80, 500, False)]
    pool = confirmed_pool(whole, dirs)
    assert [r["number"] for r in pool] == [0, 1] and best_by(pool, "accuracy", dirs)["number"] == 1  # by the means


def test_a_task_key_keeps_its_split_fractions_exactly():
    from nas.search.keys import TaskRef

    ref = TaskRef("classification", "digits", test=0.1234567, validation=0.2000001)
    assert TaskRef.from_key(ref.key()) == ref
