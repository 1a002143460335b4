"""Multi-objective early stopping on hand-made rung data: who stops, who goes on."""

import random

import pytest

from nas.search.execution.pruning import Entry, entries_of, rung_epochs, should_stop, stop_rule, stop_rules, stops


def test_rungs_are_geometric_and_below_the_last_epoch():
    assert rung_epochs(1, 3, 10) == [1, 3, 9]
    assert rung_epochs(2, 2, 16) == [2, 4, 8]
    assert rung_epochs(5, 3, 5) == []  # a candidate of 5 epochs has no rung before its end


# the rung: four candidates that reached epoch 2 (score = validation accuracy)
RUNG = [Entry(0.90, 1000, 4000), Entry(0.80, 500, 2000), Entry(0.70, 300, 1200), Entry(0.60, 5000, 20000)]


@pytest.mark.parametrize("me, stop, why", [
    (Entry(0.75, 600, 2400), True, "0.80 with fewer params and bytes dominates it; top 1 of 5 is 0.90"),
    (Entry(0.75, 100, 400), False, "the cheapest of all: nobody dominates it"),
    (Entry(0.95, 2000, 8000), False, "best score: in the top fraction (and undominated)"),
    (Entry(0.80, 500, 2000), True, "ties with 0.80 at the same cost: weakly dominated, below 0.90"),
    (Entry(0.65, 400, 1600), True, "0.70 at 300/1200 dominates it"),
    (Entry(0.65, 250, 1600), False, "fewer params than anyone scoring more: not dominated"),
])
def test_who_stops_and_who_goes_on(me, stop, why):
    assert should_stop(me, RUNG, 3) is stop, why
    assert stops(stop_rule(me.params, me.bandwidth, RUNG, 3), me.score) is stop, why


def test_the_top_fraction_is_kept_even_when_dominated():
    # nine others: η = 3 keeps the top 3 of 10; a dominated candidate scoring third best goes on
    others = [Entry(0.9 - 0.05 * i, 100, 100) for i in range(9)]  # 0.90 ... 0.50, all cheaper than me
    assert not should_stop(Entry(0.82, 1000, 1000), others, 3)  # third of ten: 0.90, 0.85, 0.82
    assert should_stop(Entry(0.78, 1000, 1000), others, 3)  # fourth: stops
    assert not should_stop(Entry(0.78, 1000, 1000), others, 2)  # η = 2 keeps five


def test_the_first_at_a_rung_always_goes_on():
    assert not should_stop(Entry(0.1, 10**9, 10**9), [], 3)
    assert stop_rule(10**9, 10**9, [], 3) is None


def test_thresholds_agree_with_the_rule_on_random_rungs():
    rng = random.Random(0)
    for _ in range(2000):
        others = [Entry(rng.choice([0.5, 0.6, 0.7, rng.random()]), rng.randint(1, 9), rng.randint(1, 9))
                  for _ in range(rng.randint(0, 8))]
        me = Entry(rng.choice([0.5, 0.6, 0.7, rng.random()]), rng.randint(1, 9), rng.randint(1, 9))
        eta = rng.choice([2, 3, 4])
        assert stops(stop_rule(me.params, me.bandwidth, others, eta), me.score) == should_stop(me, others, eta)


def test_rules_cover_each_rung_and_curves_fill_the_table():
    table = {1: RUNG, 3: RUNG[1:2]}  # at rung 3 only the 0.80 candidate, cheaper than this one
    rules = stop_rules(600, 2400, 10, table, 1, 3)
    assert set(rules) == {"1", "3"}  # rung 9 has nobody yet: no rule
    assert stops(rules["1"], 0.75) and not stops(rules["1"], 0.85)
    curve = [{"epoch": e, "val_accuracy": 0.1 * e} for e in range(1, 5)]
    got = entries_of(curve, "val_accuracy", 600, 2400, [1, 3, 9])
    assert got == {1: Entry(0.1, 600, 2400), 3: Entry(pytest.approx(0.3), 600, 2400)}


def test_the_worker_stops_real_training_at_a_rung_and_only_there():
    import torch

    from nas.evaluators.worker import TrainEvaluator
    from nas.spaces import ArchSpec, TrainSpec

    torch.set_num_threads(1)
    ev = TrainEvaluator("digits", "classification")
    ev.setup(1, "cpu")
    job = {"arch": ArchSpec(d_in=64, d_out=10, hidden_width=16, depth=1).to_json(),
           "train": TrainSpec(epochs=3, batch_size=256).to_json(),
           "stop_rules": {"2": {"dominated_at_or_below": 2.0, "top_below": 2.0}}}  # any accuracy stops at epoch 2
    out = ev(job)
    assert out["stopped_early"] and out["epochs_trained"] == 2 and len(out["curve"]) == 2
    assert out["weights"] is None and "accuracy" not in out["objectives"]
    assert out["objectives"]["val_accuracy"] == out["curve"][-1]["val_accuracy"]
    job["stop_rules"] = {"2": {"dominated_at_or_below": -1.0, "top_below": 2.0}}  # nobody dominates it: goes on
    out = ev(job)
    assert not out["stopped_early"] and out["epochs_trained"] == 3 and 0 < out["objectives"]["accuracy"] <= 1


def test_an_fpe_candidate_is_never_stopped_before_its_expansion():
    from nas.search.execution.pruning import RungTable, dense_until
    from nas.spaces import ArchSpec
    from nas.spaces.fpe import expansion_epoch
    from nas.spaces.schema import PruningConfig

    fpe = ArchSpec(d_in=64, d_out=10, hidden_width=16, fpe_alpha=4, fpe_at=0.5).to_json()
    dense = ArchSpec(d_in=64, d_out=10, hidden_width=16).to_json()
    assert expansion_epoch(0.5, 20) == 11 and dense_until(fpe, 20) == 11 and dense_until(dense, 20) == 0
    # a rung table where everyone is better and cheaper at every rung
    table = RungTable(PruningConfig(min_epochs=1, reduction_factor=3), "val_accuracy")
    table.rungs = {r: [Entry(0.99, 1, 1)] * 4 for r in (1, 3, 9, 27)}
    static = {"params": 10**6, "bandwidth": 10**7}
    assert set(table.rules(static, 20, fpe)) == set()  # rungs 1, 3, 9 are before epoch 11 (its expansion)
    assert set(table.rules(static, 18, fpe)) == set()  # expands at 10: rung 9 is dense
    assert set(table.rules(static, 40, fpe)) == {"27"}  # expands at 21
    assert set(table.rules(static, 20, dense)) == {"1", "3", "9"}
    assert RungTable(None, "val_accuracy").rules(static, 20, dense) is None  # no early stopping: no rules
    # and its dense scores do not join the table
    curve = [{"epoch": e, "val_accuracy": 0.5} for e in range(1, 41)]
    objectives = {"params": 10.0, "bandwidth": 10.0}
    table.rungs = {}
    table.add(curve, objectives, 40, fpe)
    assert set(table.rungs) == {27}
    table.add(curve, objectives, 40, dense)
    assert {r: len(v) for r, v in table.rungs.items()} == {1: 1, 3: 1, 9: 1, 27: 2}


def test_a_resumed_study_rebuilds_its_rung_table_from_the_store(tmp_path):
    from nas.search.store.models import Candidate, Run
    from nas.search.execution.pruning import RungTable
    from nas.search.store.storage import Store
    from nas.spaces import ArchSpec
    from nas.spaces.schema import PruningConfig

    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    dense = ArchSpec(d_in=64, d_out=10, hidden_width=16).to_json()
    fpe = ArchSpec(d_in=64, d_out=10, hidden_width=16, fpe_alpha=2).to_json()
    curve = [{"epoch": e, "val_accuracy": 0.1 * e} for e in range(1, 10)]
    with store.session() as s:
        run = Run(study_name="s", space_text="", space_sha="", sampler="random", workers=1, target_trials=3,
                  host="h", pid=1, nas_version="0")
        s.add(run)
        s.flush()
        for n, (arch, state, cv) in enumerate([(dense, "COMPLETE", curve), (fpe, "COMPLETE", curve),
                                                (dense, "PRUNED", curve[:3]), (dense, "FAIL", None)]):
            s.add(Candidate(run_id=run.id, study_name="s", trial_number=n, trial_id=n, arch_id=str(n), train_key="t",
                            task_key="k", arch=arch, train={"epochs": 9}, values={}, state=state, curve=cv,
                            objectives={"params": 10.0 + n, "bandwidth": 10.0}))
    table = RungTable(PruningConfig(min_epochs=1, reduction_factor=3), "val_accuracy")
    table.load(store, "s")
    # rungs 1 and 3 below 9 epochs: the complete dense one and the stopped one at both; the FPE one (expanding at
    # epoch 5) at neither; the failed one nowhere
    assert {r: sorted(e.params for e in v) for r, v in table.rungs.items()} == {1: [10.0, 12.0], 3: [10.0, 12.0]}
    assert table.rungs[3][0].score == pytest.approx(0.3)
    empty = RungTable(None, "val_accuracy")
    empty.load(store, "s")
    assert empty.rungs == {}
    store.close()


def test_exits_and_gated_connections_are_judged_at_their_best_bandwidth():
    """The static bandwidth of a candidate with early exit or gated connections is its worst case, which its
    plain twin always beats; at a rung it is compared on what it can be found to move once trained (its first
    exit's prefix, every gate pruned), so a twin with the same score does not stop it."""
    from types import SimpleNamespace

    from nas.search.execution.pruning import RungTable, rung_bandwidth
    from nas.spaces import ArchSpec, bandwidth_bytes, exit_costs, model_cost

    base = dict(d_in=64, d_out=10, lift="learned", lift_width=32, hidden_width=16, depth=4)
    plain = ArchSpec(**base)
    exits = ArchSpec(**base, exits=1, exit_threshold=0.9)
    gated = ArchSpec(**base, connections="gated_dense")
    both = ArchSpec(**base, exits=2, exit_threshold=0.9, connections="gated_dense")
    bw = {s: float(bandwidth_bytes(model_cost(s))) for s in (plain, exits, gated, both)}
    assert rung_bandwidth(bw[plain], plain.to_json()) == bw[plain]
    assert rung_bandwidth(bw[exits], exits.to_json()) == bandwidth_bytes(exit_costs(exits)[0]) < bw[plain] < bw[exits]
    assert rung_bandwidth(bw[gated], gated.to_json()) == bw[plain] < bw[gated]
    assert rung_bandwidth(bw[both], both.to_json()) == bandwidth_bytes(exit_costs(ArchSpec(**base, exits=2))[0])

    table = RungTable(SimpleNamespace(min_epochs=1, reduction_factor=2), "val_accuracy")
    curve = [{"epoch": e, "val_accuracy": 0.9} for e in (1, 2, 3, 4)]
    for _ in range(4):  # four plain twins reached the rungs (epochs 1 and 2) with 0.9
        table.add(curve, {"params": float(model_cost(plain).params), "bandwidth": bw[plain]}, 4, plain.to_json())
    static = {"params": float(model_cost(exits).params), "bandwidth": bw[exits]}
    worst = stop_rule(static["params"], static["bandwidth"], table.rungs[1], 2)
    assert stops(worst, 0.85) is True  # on its worst case a twin dominates it, and 0.85 is not in the top 2
    rules = table.rules(static, 4, exits.to_json())
    assert not any(stops(rule, 0.85) for rule in rules.values())  # at its best (its first exit) none does
    # (a gated candidate at its best moves what its twin moves, with its gates' params more: a twin scoring
    # more at a rung still dominates it, as it would on the final objectives)
    twin = table.rules({"params": float(model_cost(plain).params), "bandwidth": bw[plain]}, 4, plain.to_json())
    assert stops(twin["1"], 0.85) is True  # while a plain candidate at 0.85 stops at the first rung
