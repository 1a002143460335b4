"""Gated cross-layer connections (``connections: gated_dense``, ``nas.spaces.blocks.DenseGates``).

Block i+1 reads u_i = z_i + Σ_{j<i} g[i, j] z_j (z_0 the lift's output): depth·(depth-1)/2 gates, 0 at init,
an L1 penalty GATE_PENALTY in the loss, pruned below GATE_THRESHOLD before the model is scored.
"""

import json

import pytest
import torch

from nas.evaluators.datasets import load_task
from nas.evaluators.train import evaluate, prune_connections, task_loss, train_loss
from nas.exporter import ExportMeta, export_model
from nas.spaces import (ArchSpec, TrainSpec, bandwidth_bytes, build, exit_costs, expected_bandwidth, expected_bytes,
                        kept_cost, model_cost)
from nas.spaces.blocks import GATE_PENALTY, GATE_THRESHOLD, DenseGates
from nas.spaces.stages import describe, summary

FLAT = dict(d_in=12, d_out=5, lift="learned", lift_width=24, hidden_width=8, depth=3, norm="batchnorm")
MIXED = dict(d_in=64, d_out=10, in_shape=(8, 8), lift="learned", lift_width=16, hidden_width=12, depth=3,
             mixer="conv", mixer_kernel=3, patch=2, norm="layernorm")  # 16 tokens of 4 features


def gated(**kw) -> ArchSpec:
    return ArchSpec(**kw, connections="gated_dense")


def gates_of(model) -> DenseGates:
    (g,) = [m for m in model.modules() if isinstance(m, DenseGates)]
    return g


def test_the_residual_default_leaves_no_trace():
    spec = ArchSpec(**FLAT)
    assert "connections" not in spec.to_json() and "connections" not in spec.used_params()
    assert ArchSpec.from_json(spec.to_json()) == spec
    g = gated(**FLAT)
    assert g.to_json()["connections"] == "gated_dense" and g.arch_id != spec.arch_id
    assert ArchSpec.from_json(g.to_json()) == g
    assert not any(isinstance(m, DenseGates) for m in build(spec).modules())
    one = ArchSpec(**{**FLAT, "depth": 1})  # one block reads no earlier stream: gated_dense is the residual model
    assert gated(**{**FLAT, "depth": 1}) == one and gated(**{**FLAT, "depth": 1}).arch_id == one.arch_id
    assert "gated_dense" in summary(g) and "3 gated connections" in describe(g)


@pytest.mark.parametrize("base", [FLAT, MIXED, {**FLAT, "moe_experts": 2, "moe_top_k": 1},
                                  {**FLAT, "weights": "lowrank", "rank": 4}, {**FLAT, "fpe_alpha": 2}],
                         ids=["flat", "conv-mixer", "moe", "lowrank", "fpe"])
def test_at_init_the_gated_model_is_the_residual_one(base):
    """The gates start at exactly 0 and draw no random numbers: the same seed gives the same weights and the
    same outputs, bit for bit, in training and eval mode."""
    x = torch.randn(9, base["d_in"])
    outs = []
    for spec in (ArchSpec(**base), gated(**base)):
        torch.manual_seed(3)
        model = build(spec, fresh=True)
        outs.append((model(x), model.eval()(x), {k: v for k, v in model.state_dict().items() if "gates" not in k}))
    (train_r, eval_r, state_r), (train_g, eval_g, state_g) = outs
    assert state_r.keys() == state_g.keys() and all(torch.equal(state_r[k], state_g[k]) for k in state_r)
    assert torch.equal(train_r, train_g) and torch.equal(eval_r, eval_g)


def test_params_and_bandwidth_match_a_hand_count_at_depth_3():
    """Depth 3: 3 connections (block 2 reads z_0; block 3 reads z_0 and z_1). Each: 1 param (its gate, 4 bytes
    read once) and one read of a d_z = 24 stream (96 bytes) — T·d_z behind a mixer."""
    spec = gated(**{**FLAT, "norm": "none"})
    cost = model_cost(spec)
    # lift 12·24, 3 blocks of W1 24·8 and W2 8·24, head 24·5, 3 gates
    assert cost.params == 12 * 24 + 3 * 2 * 24 * 8 + 24 * 5 + 3 == 1563
    weights = 4 * cost.params  # every param read once, no norm statistics
    acts = 4 * ((12 + 24)  # lift reads x, writes z_0
                + 3 * ((24 + 8) + (8 + 24) + 24)  # each block: W1, W2, the residual add's skip read
                + (24 + 5)  # head
                + 3 * 24)  # the three connections each read an earlier stream
    assert bandwidth_bytes(cost) == weights + acts
    base = model_cost(ArchSpec(**{**FLAT, "norm": "none"}))
    assert cost.params - base.params == 3 and bandwidth_bytes(cost) - bandwidth_bytes(base) == 3 * (4 + 24 * 4)
    mixed, plain = model_cost(gated(**MIXED)), model_cost(ArchSpec(**MIXED))
    assert mixed.params - plain.params == 3
    assert bandwidth_bytes(mixed) - bandwidth_bytes(plain) == 3 * (4 + 16 * 16 * 4)  # 16 tokens of 16
    assert model_cost(gated(**{**FLAT, "depth": 5})).params - model_cost(ArchSpec(**{**FLAT, "depth": 5})).params \
        == 10  # depth·(depth-1)/2
    assert model_cost(gated(**{**FLAT, "depth": 1})).params == model_cost(ArchSpec(**{**FLAT, "depth": 1})).params


def test_the_gate_penalty_is_in_the_training_loss():
    """train_loss's gradient on the gates = the task's + GATE_PENALTY · sign(g)."""
    torch.manual_seed(0)
    model = build(gated(**FLAT), fresh=True)
    gates = gates_of(model)
    with torch.no_grad():
        gates.gate.copy_(torch.tensor([0.3, -0.2, 0.05]))
    x, y = torch.randn(16, 12), torch.randint(0, 5, (16,))
    train_loss("classification", model, x, y).backward()
    with_penalty = gates.gate.grad.clone()
    model.zero_grad()
    task_loss("classification", model(x), y).backward()
    diff = with_penalty - gates.gate.grad
    torch.testing.assert_close(diff, GATE_PENALTY * torch.tensor([1.0, -1.0, 1.0]))
    assert GATE_PENALTY == 1e-3


def test_gate_penalty_sets_the_weight_and_a_strong_one_prunes_every_gate():
    """``gate_penalty`` λ is the L1 weight training puts on the gates: 0 leaves them free (all kept on digits),
    0.3 drives every one below GATE_THRESHOLD, so the scored model moves what the residual one moves."""
    spec = gated(**FLAT, gate_penalty=0.05)
    assert spec.to_json()["gate_penalty"] == 0.05 and spec.arch_id != gated(**FLAT).arch_id
    assert ArchSpec(**FLAT, gate_penalty=0.05) == ArchSpec(**FLAT)  # residual: the key is unused, no trace
    assert "gate_penalty" not in ArchSpec(**FLAT).to_json()
    model = build(spec, fresh=True)
    gates = gates_of(model)
    gates.nas_weight = spec.gate_penalty  # as evaluate sets it
    with torch.no_grad():
        gates.gate.copy_(torch.tensor([0.3, -0.2, 0.05]))
    torch.testing.assert_close(gates.nas_penalty(), torch.tensor(0.05 * 0.55))

    task = load_task("digits")
    kept = {}
    for lam in (0.0, 0.3):
        arch = ArchSpec(d_in=task.d_in, d_out=task.d_out, lift="learned", lift_width=32, hidden_width=16, depth=3,
                        connections="gated_dense", gate_penalty=lam)
        ev = evaluate(arch, TrainSpec(epochs=3, batch_size=64, lr=3e-3), task)
        kept[lam] = int(ev.state[next(k for k in ev.state if k.endswith("keep"))].sum())
        plain = ArchSpec(**{**arch.to_json(), "connections": "residual"})
        if kept[lam] == 0:  # every connection gone: it moves what the residual model moves
            assert ev.objectives["bandwidth_kept"] == bandwidth_bytes(model_cost(plain)) < ev.objectives["bandwidth"]
    assert kept == {0.0: 3, 0.3: 0}


def _prune_case(base, values):
    torch.manual_seed(1)
    model = build(gated(**base), fresh=True)
    gates = gates_of(model)
    with torch.no_grad():
        gates.gate.copy_(torch.tensor(values))
    model.eval()
    return model, gates


@pytest.mark.parametrize("base", [FLAT, MIXED], ids=["flat", "conv-mixer"])
def test_pruning_removes_the_small_gates(base):
    values = [0.5, 0.004, -0.009]  # (1,0) kept; (2,0) and (2,1) below GATE_THRESHOLD = 0.01
    assert GATE_THRESHOLD == 0.01
    x = torch.randn(8, base["d_in"])
    zeroed, _ = _prune_case(base, [0.5, 0.0, 0.0])  # the same weights with those gates at 0, nothing pruned
    with torch.no_grad():
        want = zeroed(x)
    model, gates = _prune_case(base, values)
    with torch.no_grad():
        before = model(x)
    prune_connections(model)
    assert gates.keep.tolist() == [True, False, False] and gates.gate.tolist() == [0.5, 0.0, 0.0]
    assert gates.links == [[], [(0, 0)], []]
    with torch.no_grad():
        after = model(x)
    assert torch.equal(after, want) and not torch.equal(after, before)
    spec = gated(**base)
    full, kept = bandwidth_bytes(model_cost(spec)), bandwidth_bytes(kept_cost(spec, model))
    stream = 24 if base is FLAT else 16 * 16  # d_z, or T·d_z
    assert full - kept == 2 * (4 + 4 * stream)
    assert kept_cost(spec, model).params == model_cost(spec).params - 2
    # the mask is part of the state: a deployed build loading it skips the same connections
    fresh = build(spec).eval()
    fresh.load_state_dict(model.state_dict(), strict=True)
    assert gates_of(fresh).links == gates.links
    with torch.no_grad():
        assert torch.equal(fresh(x), after)
    # without gates the kept bandwidth is the bandwidth
    plain = ArchSpec(**base)
    assert bandwidth_bytes(kept_cost(plain, build(plain))) == bandwidth_bytes(model_cost(plain))


def test_a_short_training_on_digits_reports_bandwidth_kept():
    task = load_task("digits")
    spec = ArchSpec(d_in=task.d_in, d_out=task.d_out, lift="learned", lift_width=32, hidden_width=16, depth=4,
                    connections="gated_dense")
    ev = evaluate(spec, TrainSpec(epochs=2, batch_size=64, lr=3e-3), task)
    o = ev.objectives
    assert 0.3 < o["accuracy"] <= 1.0
    assert o["bandwidth_kept"] <= o["bandwidth"]
    model = build(spec)
    model.load_state_dict(ev.state, strict=True)
    g = gates_of(model)
    assert all(abs(v) >= GATE_THRESHOLD for v, k in zip(g.gate.tolist(), g.keep.tolist()) if k)
    assert all(v == 0.0 for v, k in zip(g.gate.tolist(), g.keep.tolist()) if not k)
    assert o["bandwidth"] - o["bandwidth_kept"] == (6 - g.nas_kept()) * (4 + 32 * 4)
    plain = evaluate(ArchSpec(**{**spec.to_json(), "connections": "residual"}),
                     TrainSpec(epochs=1, batch_size=64, lr=3e-3), task)
    assert plain.objectives["bandwidth_kept"] == plain.objectives["bandwidth"]


@pytest.mark.parametrize("base", [FLAT, MIXED, {**FLAT, "moe_experts": 2, "moe_top_k": 2}],
                         ids=["flat", "conv-mixer", "moe"])
def test_a_pruned_gated_model_exports_bit_identically(base, tmp_path):
    from tests.test_export import inputs, standalone

    spec = gated(**base)
    model, gates = _prune_case(base, [0.7, -0.003, -0.25])
    if base.get("norm") == "batchnorm":
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.rand(32, spec.d_in) * 2 - 0.5)
        model.eval()
    prune_connections(model)
    assert gates.keep.tolist() == [True, False, True]
    out = export_model(spec, model.state_dict(), tmp_path / "exp", ExportMeta(dataset="digits"),
                       check_torch_export=base.get("moe_experts", 1) == 1)
    card = json.loads((out / "arch.json").read_text())
    assert card["checks"]["outputs_equal_nas"] is True and ArchSpec.from_json(card["arch"]) == spec
    if base.get("moe_experts", 1) == 1:
        assert card["checks"]["torch_export"] == "ok", card["checks"]
    source = (out / "model.py").read_text()
    assert "class DenseGates" in source and "nas_prune" not in source and "GATE_PENALTY" not in source
    x = inputs(spec.d_in)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        want = model(x)
    standalone("""
import importlib.util
import torch
spec = importlib.util.spec_from_file_location("m", "exp/model.py")
m = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = m
spec.loader.exec_module(m)
net = m.load("exp")
gates = [mod for mod in net.modules() if type(mod).__name__ == "DenseGates"][0]
assert gates.links == [[], [(0, 0)], [(1, 2)]], gates.links
with torch.no_grad():
    torch.save(net(torch.load("x.pt", weights_only=True)), "y.pt")
""", cwd=tmp_path)
    assert torch.equal(torch.load(tmp_path / "y.pt", weights_only=True), want)


def test_the_space_file_takes_connections_and_bandwidth_kept():
    from nas.spaces import parse_space

    space = parse_space("task: {dataset: digits}\nobjectives: {accuracy: maximize, bandwidth_kept: minimize}\n"
                        "space:\n  hidden_width: 8\n  connections: [residual, gated_dense]\n")
    assert space.objectives["bandwidth_kept"] == "minimize"
    arch, _ = space.freeze({"hidden_width": 8, "connections": "gated_dense"}, 64, 10, ())
    assert arch.connections == "gated_dense"


SPACE = """\
task: {dataset: digits}
objectives: {accuracy: maximize, bandwidth_kept: minimize}
space:
  lift: learned
  lift_width: 32
  hidden_width: 16
  depth: [2, 3]
  connections: [residual, gated_dense]
train: {epochs: 1, lr: 0.003}
search: {sampler: random, trials: 4, workers: 1, seed: 0}
pruning: false
"""


@pytest.mark.slow  # two real `nas run`s (Ray) and an export
def test_a_study_minimises_bandwidth_kept_and_exports_a_gated_candidate(tmp_path):
    import subprocess
    import sys

    import sqlalchemy as sa

    from nas.search.store.models import Candidate
    from nas.search.store.storage import Store

    def run(name):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\n" + SPACE)
        proc = subprocess.run([sys.executable, "-m", "nas.cli", "run", f"{name}.yaml", "--no-progress"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def complete(name):
        with store.session() as s:
            return list(s.scalars(sa.select(Candidate).where(Candidate.study_name == name,
                                                             Candidate.state == "COMPLETE")))

    run("first")
    store = Store(f"sqlite:///{tmp_path / 'nas.db'}")
    try:
        done = complete("first")
        assert len(done) == 4
        assert {c.arch.get("connections", "residual") for c in done} == {"residual", "gated_dense"}  # seed 0
        for c in done:
            o = c.objectives
            assert o["bandwidth_kept"] <= o["bandwidth"]
            if c.arch.get("connections", "residual") == "residual":
                assert "connections" not in c.arch and o["bandwidth_kept"] == o["bandwidth"]
        gated_trial = next(c for c in done if "connections" in c.arch)
        out = tmp_path / "exp"
        proc = subprocess.run([sys.executable, "-m", "nas.cli", "export", "first", "--trial",
                               str(gated_trial.trial_number), "--out", str(out)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        card = json.loads((out / "arch.json").read_text())
        assert card["checks"]["outputs_equal_nas"] is True and card["arch"]["connections"] == "gated_dense"
        assert "bandwidth_kept" in (out / "README.md").read_text()
        # results stored before bandwidth_kept existed (residual ones) are reused with all their bandwidth kept;
        # a stale bandwidth_expected (an earlier cost model's) is recounted: without exits, the kept bandwidth
        with store.session() as s:
            for c in s.scalars(sa.select(Candidate).where(Candidate.study_name == "first")):
                stale = {**c.objectives, "bandwidth_expected": 1.0}
                if "connections" not in c.arch:
                    stale.pop("bandwidth_kept")
                c.objectives = stale
        run("again")
        again = complete("again")
        assert len(again) == 4 and all(c.reused_from is not None for c in again)
        for c in again:
            assert c.objectives["bandwidth_kept"] <= c.objectives["bandwidth"]
            if "connections" not in c.arch:
                assert c.objectives["bandwidth_kept"] == c.objectives["bandwidth"]
            assert c.objectives["bandwidth_expected"] == c.objectives["bandwidth_kept"]  # no exits in this space
    finally:
        store.close()


@pytest.mark.parametrize("base", [FLAT, MIXED], ids=["flat", "conv-mixer"])
def test_early_exit_with_gated_connections_keeps_each_samples_streams(base):
    """Early exit drops the samples that leave from the batch; the gated connections must read the earlier
    streams of the samples still running: each sample's logits are those of the head it left at, computed on
    the whole batch (``all_logits``), and the exit prefixes count the connections into their blocks."""
    spec = ArchSpec(**{**base, "depth": 4}, connections="gated_dense", exits=1, exit_threshold=0.5)
    torch.manual_seed(0)
    model = build(spec, fresh=True)
    with torch.no_grad():
        gates_of(model).gate.uniform_(-0.5, 0.5)
        gates_of(model).keep[0] = False  # connection (block 1 <- z_0) pruned: the prefix costs leave it out
        gates_of(model).gate[0] = 0.0
        gates_of(model).relink()
        for head in model.exit_heads:
            head.weight.mul_(3)
    model.eval()
    x = torch.randn(400, base["d_in"])
    with torch.no_grad():
        full = model.all_logits(x)
        model.exit_threshold = float(full[0].softmax(1).amax(1).median())  # about half leave at the first head
        out, where = model.exit_forward(x)
    counts = where.bincount(minlength=len(full)).tolist()
    assert counts[0] > 0 and sum(counts[1:]) > 0
    assert torch.allclose(out, torch.stack([full[w][i] for i, w in enumerate(where.tolist())]), atol=1e-5)
    costs = model.nas_exit_costs(4)
    links = [len(row) for row in gates_of(model).links]  # kept connections into each block: 0, 0 (pruned), 2, 3
    assert links == [0, 0, 2, 3]
    per_link = 4 + 4 * base["lift_width"] * (16 if base is MIXED else 1)  # its gate, one read of the stream
    no_gates = ArchSpec(**{**base, "depth": 4}, exits=1, exit_threshold=0.5)
    plain = build(no_gates).nas_exit_costs(4)
    for j, (c, p) in enumerate(zip(costs, plain)):
        assert bandwidth_bytes(c) - bandwidth_bytes(p) == per_link * sum(links[: j + 1])
    # what evaluate stores: the last prefix is the whole kept model (bandwidth_kept), the rest each exit's bytes
    assert exit_costs(spec, model=model) == costs and costs[-1] == kept_cost(spec, model)
    assert expected_bytes(counts, [bandwidth_bytes(c) for c in costs]) == expected_bandwidth(spec, counts, model=model)
