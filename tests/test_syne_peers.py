"""benchmarks/syne_peers.py: Syne Tune's MOASHA and multi-objective random search replayed on a table through
Syne Tune's own simulator, on a small synthetic nas-table/1. Needs Syne Tune (``pip install -e .[bench]``);
skipped without it."""
import random
import sys
from pathlib import Path

import pytest

pytest.importorskip("syne_tune", reason="Syne Tune is the bench extra: pip install -e .[bench]")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from syne_peers import TableSpace, run_syne  # noqa: E402

EPOCHS = 9


SPACE = """\
name: synthetic
task: {dataset: digits}
space:
  lift: [none, hadamard, learned]
  lift_width: {choice: [256, 512], when: {lift: [hadamard, learned]}}
  hidden_width: [16, 32, 64, 128, 256, 512]
  depth: 2
train:
  epochs: %d
  lr: [0.001, 0.01]
""" % EPOCHS


def synthetic_table(seed: int = 0, epochs: int = EPOCHS, d_in: int = 20) -> dict:
    """60 candidates: every point of SPACE (lift x lift_width, inactive when lift is none, x hidden_width x lr),
    keyed as nas keys them; random but seeded curves and epoch seconds."""
    from nas.search.replay import key_of
    from nas.spaces import parse_space

    rng = random.Random(seed)
    space = parse_space(SPACE, "synthetic.yaml")
    cands = {}
    for values in space.grid():
        arch, train = space.freeze(values, d_in, 10)
        quality, acc, curve = rng.uniform(0.6, 0.95), 0.1, []
        for e in range(1, epochs + 1):
            acc += (quality - acc) * rng.uniform(0.2, 0.6)
            curve.append({"epoch": e, "train_loss": 1 - acc, "val_accuracy": round(acc, 4),
                          "seconds": round(rng.uniform(0.2, 0.6) * (1 + arch.hidden_width / 256), 4)})
        for p in curve:
            p["cpu_seconds"] = p["seconds"]
        params = float(2 * arch.hidden_width * arch.lift_width + arch.lift_width * d_in)
        cands[key_of(arch.to_json(), train.to_json())] = {
            "arch": arch.to_json(), "train": train.to_json(),
            "objectives": {"accuracy": round(acc, 4), "test_accuracy": round(acc + rng.uniform(-0.02, 0.02), 4),
                           "params": params, "bandwidth": 4 * params, "latency_ms": 0.1},
            "curve": curve}
    return {"format": "nas-table/1", "task_key": "synthetic", "space": SPACE,
            "dims": {"d_in": d_in, "d_out": 10, "in_shape": []},
            "directions": {"accuracy": "maximize", "params": "minimize", "bandwidth": "minimize"},
            "candidates": cands}


TABLE = synthetic_table()


def full_seconds(key: str, epochs: int = EPOCHS) -> float:
    return sum(p["seconds"] for p in TABLE["candidates"][key]["curve"][:epochs])


@pytest.fixture(scope="module")
def studies():
    out = {}
    for method in ("morandom", "moasha", "moasha_rc", "morea_rc"):
        out[method] = run_syne(TABLE, method, seed=3, workers=2, max_trials=40, max_seconds=None)
    return out


def test_the_peers_sample_nass_prior():
    """Each parameter is a categorical of exactly its choices in the space file (no derived field, such as a
    lift width that only a lift has), and the candidates come out as nas's random sampler draws them."""
    import collections

    import numpy as np
    from syne_tune.config_space import Categorical

    space = TableSpace(TABLE)
    assert len(TABLE["candidates"]) == 60
    assert {p: list(d.categories) for p, d in space.config_space.items()} == {
        "lift": ["none", "hadamard", "learned"], "lift_width": [256, 512],
        "hidden_width": [16, 32, 64, 128, 256, 512], "lr": [0.001, 0.01]}
    assert all(isinstance(d, Categorical) for d in space.config_space.values())
    rng = np.random.RandomState(0)
    drawn = [space.lookup({p: d.sample(random_state=rng) for p, d in space.config_space.items()}) for _ in range(6000)]
    assert set(drawn) <= set(TABLE["candidates"])
    lifts = collections.Counter(TABLE["candidates"][k]["arch"]["lift"] for k in drawn)
    assert all(abs(n / len(drawn) - 1 / 3) < 0.03 for n in lifts.values()), lifts  # uniform, as nas's random sampler
    # lift_width is ignored when lift is none: both widths give the one candidate
    none = {"lift": "none", "hidden_width": 64, "lr": 0.01}
    assert space.lookup({**none, "lift_width": 256}) == space.lookup({**none, "lift_width": 512})


def test_the_corrected_priority_ranks_a_dominating_trial_first():
    """Syne Tune 0.16's NonDominatedPriority returns indices in sorted order where MOASHA reads one priority per
    trial: a trial dominating every other at its rung is stopped (benchmarks/moasha_rank_bug.py). The
    rank-correct priority puts it first, and MOASHA's own rung then lets it go on."""
    import numpy as np
    from syne_tune.optimizer.schedulers.asha import Bracket
    from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import NonDominatedPriority

    from syne_peers import RankCorrectPriority

    earlier = [{"loss": 0.6, "size": 0.4}, {"loss": 0.2, "size": 0.2}, {"loss": 0.8, "size": 0.8}]
    dominating = {"loss": 0.1, "size": 0.1}
    x = np.array([list(m.values()) for m in earlier + [dominating]])
    assert RankCorrectPriority(dim=0)(x).tolist() == [2, 1, 3, 0]  # trial 3 first; 1 dominates 0, 0 dominates 2
    for priority, want in ((NonDominatedPriority(dim=0), "STOP"), (RankCorrectPriority(dim=0), "CONTINUE")):
        bracket = Bracket(min_t=1, max_t=9, reduction_factor=3, s=0, priority=priority)
        for trial_id, metrics in enumerate(earlier):
            bracket.on_result(trial_id=trial_id, cur_iter=1, metrics=metrics)
        assert bracket.on_result(trial_id=3, cur_iter=1, metrics=dominating) == want


def test_the_optuna_peer_prunes_and_replays_repeatably():
    from optuna_peer import run_optuna_hb

    ends = run_optuna_hb(TABLE, seed=1, workers=2, max_seconds=40.0)
    again = run_optuna_hb(TABLE, seed=1, workers=2, max_seconds=40.0)
    assert ends == again and ends
    assert all(t["key"] in TABLE["candidates"] for t in ends)
    assert [t["finished_at"] for t in ends] == sorted(t["finished_at"] for t in ends)
    assert any(t["stopped_early"] for t in ends) and any(not t["stopped_early"] for t in ends)
    for t in ends:
        assert t["seconds"] == pytest.approx(full_seconds(t["key"], t["epochs_trained"]))


@pytest.mark.parametrize("method", ["morandom", "moasha", "moasha_rc", "morea_rc"])
def test_trials_are_table_entries_in_finishing_order(studies, method):
    trials = studies[method]
    assert len(trials) == 40  # max_trials started, each run to its end
    assert all(t["key"] in TABLE["candidates"] for t in trials)
    assert [t["finished_at"] for t in trials] == sorted(t["finished_at"] for t in trials)
    assert all(t["finished_at"] >= t["seconds"] - 1e-9 for t in trials)
    # two workers: the clock is at least half of all the seconds trained
    assert trials[-1]["finished_at"] >= sum(t["seconds"] for t in trials) / 2 - 1e-6


def test_random_search_trains_every_trial_in_full(studies):
    trials = studies["morandom"]
    assert not any(t["stopped_early"] for t in trials)
    assert all(t["epochs_trained"] == EPOCHS for t in trials)
    assert sum(t["seconds"] for t in trials) == pytest.approx(sum(full_seconds(t["key"]) for t in trials))


@pytest.mark.parametrize("method", ["moasha", "moasha_rc"])
def test_moasha_stops_trials_early_at_its_rungs(studies, method):
    trials = studies[method]
    stopped = [t for t in trials if t["stopped_early"]]
    assert stopped and len(stopped) < len(trials)
    assert {t["epochs_trained"] for t in trials} <= {1, 3, 9}  # rungs 1, 3 (rung_min 1, factor 3), max 9
    assert all(t["epochs_trained"] < EPOCHS for t in stopped)
    for t in trials:
        assert t["seconds"] == pytest.approx(full_seconds(t["key"], t["epochs_trained"]))
    assert sum(t["seconds"] for t in trials) < sum(full_seconds(t["key"]) for t in trials)


@pytest.mark.parametrize("method", ["morandom", "moasha"])
def test_repeatable_for_a_seed(studies, method):
    again = run_syne(TABLE, method, seed=3, workers=2, max_trials=40, max_seconds=None)
    assert again == studies[method]
    other = run_syne(TABLE, method, seed=4, workers=2, max_trials=40, max_seconds=None)
    assert [t["key"] for t in other] != [t["key"] for t in again]


@pytest.mark.parametrize("method", ["morandom", "moasha"])
def test_simulated_time_budget(method):
    trials = run_syne(TABLE, method, seed=0, workers=2, max_trials=None, max_seconds=30.0)
    assert trials and all(t["finished_at"] <= 30.0 for t in trials)
    # the two workers were busy until the budget: what finished fills most of 2 x 30 s
    assert 30.0 < sum(t["seconds"] for t in trials) <= 60.0
    both = run_syne(TABLE, method, seed=0, workers=2, max_trials=5, max_seconds=1e6)
    assert len(both) == 5


def test_rung_settings_are_used():
    trials = run_syne(TABLE, "moasha", seed=1, workers=2, max_trials=30, max_seconds=None, rung_min=2,
                      reduction_factor=2)
    assert {t["epochs_trained"] for t in trials} <= {2, 4, 8, 9}


@pytest.mark.parametrize("method", ["morandom", "moasha"])
def test_stock_fixed_tick_clock_agrees_with_the_event_clock(method):
    exact = run_syne(TABLE, method, seed=5, workers=2, max_trials=15, max_seconds=None)
    ticked = run_syne(TABLE, method, seed=5, workers=2, max_trials=15, max_seconds=None, tick=0.01)
    assert [(t["key"], t["epochs_trained"]) for t in ticked] == [(t["key"], t["epochs_trained"]) for t in exact]
    # each start can lag by one tick (plus Syne Tune's 2 ms per stop); 15 trials on 2 workers
    assert all(0 <= b["finished_at"] - a["finished_at"] <= 15 * 0.012 for a, b in zip(exact, ticked))


def test_the_faster_nondominated_sort_is_syne_tunes_own():
    """syne_peers replaces Syne Tune's Pareto filter and epsilon net by faster ones: they must give the same
    answers, on random points with ties and duplicates, so MOASHA's decisions stay its own."""
    import importlib

    import numpy as np
    from syne_tune.optimizer.schedulers.multiobjective import non_dominated_priority as ndp

    import syne_peers

    importlib.reload(ndp)  # Syne Tune's own functions again, if a study above replaced them
    own_pareto, own_net = ndp.pareto_efficient, ndp.compute_epsilon_net
    assert own_pareto is not syne_peers._pareto_efficient and own_net is not syne_peers._compute_epsilon_net
    rng = np.random.default_rng(0)
    for trial in range(200):
        n, m = int(rng.integers(1, 60)), int(rng.integers(1, 4))
        x = rng.integers(0, 6, size=(n, m)).astype(float)  # few values: many ties and duplicates
        if trial % 2:
            x = rng.normal(size=(n, m))
        assert np.array_equal(syne_peers._pareto_efficient(x), own_pareto(x))
        for dim in (None, 0, m - 1):
            np.random.seed(trial)
            want = own_net(x, dim=dim)
            np.random.seed(trial)
            assert np.array_equal(syne_peers._compute_epsilon_net(x, dim=dim), want), (trial, dim)


def test_moashas_newest_rank_priority_decides_as_the_full_sort():
    """MOASHA reads only the new trial's rank (the last row): the fast priority must give that rank exactly as
    Syne Tune's shipped priority and the rank-correct one do, on random rungs with ties and duplicates."""
    import numpy as np
    from syne_tune.optimizer.schedulers.multiobjective.multiobjective_priority import NonDominatedPriority

    import syne_peers

    def newest(p):  # asha.py's on_result: ranks = searchsorted(sorted(p), p) / n; it reads ranks[-1]
        return np.searchsorted(sorted(p), p)[-1]

    rng = np.random.default_rng(1)
    seen = set()
    for trial in range(300):
        n, m = int(rng.integers(2, 80)), int(rng.integers(2, 4))
        x = rng.integers(0, 5, size=(n, m)).astype(float) if trial % 2 else rng.normal(size=(n, m))
        for correct in (True, False):  # fresh priorities: one remembers its number of objectives
            want = newest((syne_peers.RankCorrectPriority() if correct else NonDominatedPriority())(x))
            got = syne_peers.NewestRankPriority(correct=correct)(x)
            assert sorted(got) == list(range(n)) and newest(got) == want, (trial, correct)
            seen.add((correct, want == n - 1, want == 0))
    assert len(seen) >= 5  # first, last and in-between ranks all exercised, for both priorities
