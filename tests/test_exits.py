"""Early exit: exit heads after every k-th block, the joint loss, the early-exit inference, its accuracy, the
exit histogram, ``bandwidth_expected`` (the mean prefix cost), hand-counted params and bandwidth, export."""

import base64
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
import torch.nn.functional as F

from nas.errors import NasInputError
from nas.evaluators.datasets import load_task
from nas.evaluators.train import accuracy, evaluate, exit_histogram, joint_loss
from nas.exporter import ExportMeta, check_spec, export_model
from nas.spaces import (ArchSpec, TrainSpec, bandwidth_bytes, build, exit_costs, expected_bandwidth, model_cost,
                        parse_space)
from nas.spaces.stages import describe, summary

B = 4  # float32 bytes
FLAT = dict(d_in=12, d_out=5, lift="learned", lift_width=16, hidden_width=6, norm="batchnorm", activation="relu")
MIXED = dict(d_in=64, d_out=10, in_shape=(8, 8), lift="learned", lift_width=16, hidden_width=12, norm="layernorm",
             activation="gelu", mixer="token_mlp", patch=2)


def ready(spec: ArchSpec, seed: int = 0, dtype=torch.float32) -> torch.nn.Module:
    """nas's model with random weights and BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build(spec, fresh=True).to(dtype)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model.all_logits(torch.randn(32, spec.d_in, dtype=dtype))
    return model.eval()


def _values(v):
    """A Plotly trace's values: a list, or NumPy's typed array as the figure JSON holds it."""
    if isinstance(v, dict) and "bdata" in v:
        import numpy as np

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)


def by_hand(heads: list[torch.Tensor], threshold: float) -> torch.Tensor:
    """The head each sample leaves at, from every head's full logits: the first exit head whose top softmax
    probability reaches the threshold, else the final head."""
    n = heads[0].shape[0]
    where = torch.full((n,), len(heads) - 1)
    for j in reversed(range(len(heads) - 1)):
        where[F.softmax(heads[j], dim=1).amax(dim=1) >= threshold] = j
    return where


# ------------------------------------------------------------------ the spec
def test_off_leaves_no_trace_and_unused_settings_are_normalised():
    plain = ArchSpec(**FLAT, depth=3)
    assert "exits" not in plain.to_json() and "exit_threshold" not in plain.to_json()
    assert ArchSpec(**FLAT, depth=3, exit_threshold=0.5) == plain  # the threshold is unused without exits
    assert ArchSpec(**FLAT, depth=3, exits=3).arch_id == plain.arch_id  # no block before the last is a 3rd one
    on = ArchSpec(**FLAT, depth=3, exits=1, exit_threshold=1)
    assert on.exit_threshold == 1.0 and on.to_json()["exits"] == 1 and on.to_json()["exit_threshold"] == 1.0
    assert ArchSpec.from_json(on.to_json()) == on and on.arch_id != plain.arch_id
    assert on.arch_id != ArchSpec(**FLAT, depth=3, exits=1, exit_threshold=0.9).arch_id
    assert "exits /1 p≥1" in summary(on)
    assert "2 exit heads 16 -> 5 after every 1 block" in describe(on)
    assert len(build(ArchSpec(**FLAT, depth=3)).exit_heads) == 0
    assert [k for k in build(on).state_dict() if "exit" in k] == ["exit_heads.0.weight", "exit_heads.1.weight"]


# ------------------------------------------------------------------ params and bandwidth by hand
def _linear(i: int, o: int) -> tuple[int, int]:  # (params, bytes) of a bias-free linear layer
    return i * o, B * (i * o + i + o)


@pytest.mark.parametrize("depth, k, heads_after", [(5, 2, [2, 4]), (4, 1, [1, 2, 3]), (4, 3, [3])])
def test_params_and_bandwidth_by_hand_flat(depth, k, heads_after):
    spec = ArchSpec(**FLAT, depth=depth, exits=k, exit_threshold=0.8)
    d_in, d_z, d_h, d_out = 12, 16, 6, 5
    lift_p, lift_b = _linear(d_in, d_z)
    w1_p, w1_b = _linear(d_z, d_h)
    w2_p, w2_b = _linear(d_h, d_z)
    block_p, block_b = w1_p + w2_p, w1_b + w2_b + B * 2 * d_z + B * d_z  # BatchNorm statistics, the skip read
    head_p, head_b = _linear(d_z, d_out)
    n = len(heads_after)
    cost = model_cost(spec)
    assert cost.params == lift_p + depth * block_p + (n + 1) * head_p
    assert bandwidth_bytes(cost) == lift_b + depth * block_b + (n + 1) * head_b  # worst case: every head
    prefixes = [lift_b + after * block_b + (j + 1) * head_b for j, after in enumerate(heads_after)]
    assert [bandwidth_bytes(c) for c in exit_costs(spec)] == prefixes + [bandwidth_bytes(cost)]
    assert sum(p.numel() for p in build(spec).parameters()) == cost.params
    assert len(exit_costs(ArchSpec(**FLAT, depth=depth))) == 1


def test_params_and_bandwidth_by_hand_mixer():
    spec = ArchSpec(**MIXED, depth=3, exits=1, exit_threshold=0.7)
    plain = ArchSpec(**MIXED, depth=3)
    t, d, d_out = 16, 16, 10
    head_p, head_b = _linear(d, d_out)
    pool_b = B * (t * d + d)  # the mean over the tokens: reads T·D, writes D
    assert model_cost(spec).params == model_cost(plain).params + 2 * head_p
    assert bandwidth_bytes(model_cost(spec)) == bandwidth_bytes(model_cost(plain)) + 2 * (pool_b + head_b)
    costs = [bandwidth_bytes(c) for c in exit_costs(spec)]
    layer_b = (bandwidth_bytes(model_cost(ArchSpec(**MIXED, depth=2))) - bandwidth_bytes(model_cost(plain))) * -1
    assert costs[1] - costs[0] == layer_b + pool_b + head_b
    assert costs[-1] == bandwidth_bytes(model_cost(spec))


# ------------------------------------------------------------------ training and inference
def test_the_joint_loss_is_the_mean_of_every_head_and_trains_them_all():
    spec = ArchSpec(**FLAT, depth=4, exits=2, exit_threshold=0.9)
    torch.manual_seed(0)
    model = build(spec, fresh=True).train()
    x, y = torch.randn(64, 12), torch.randint(5, (64,))
    outs = model.all_logits(x)
    assert len(outs) == 2 and torch.equal(outs[-1], model(x))  # training-mode forward: the final head
    torch.manual_seed(1)
    loss = joint_loss("classification", model, x, y)
    torch.testing.assert_close(loss, (F.cross_entropy(outs[0], y) + F.cross_entropy(outs[1], y)) / 2)
    loss.backward()
    assert model.exit_heads[0].weight.grad.abs().sum() > 0 and model.head.weight.grad.abs().sum() > 0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = joint_loss("classification", model, x, y)
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    plain = build(ArchSpec(**FLAT, depth=4), fresh=True).train()  # no exits: the task loss itself
    torch.testing.assert_close(joint_loss("classification", plain, x, y), F.cross_entropy(plain(x), y))


@pytest.mark.parametrize("arch", [FLAT, MIXED], ids=["flat", "mixer"])
def test_a_tiny_threshold_sends_every_sample_out_at_the_first_head(arch):
    spec = ArchSpec(**arch, depth=3, exits=1, exit_threshold=1e-9)
    model = ready(spec)
    x = torch.randn(40, spec.d_in)
    logits, where = model.exit_forward(x)
    assert where.tolist() == [0] * 40
    with torch.no_grad():
        torch.testing.assert_close(logits, model.all_logits(x)[0])
    counts = exit_histogram(model, x)
    assert counts == [40, 0, 0]
    assert expected_bandwidth(spec, counts) == bandwidth_bytes(exit_costs(spec)[0])
    if arch is FLAT:  # lift + block 1 + exit head 1, by hand
        block = B * (16 * 6 * 2 + (16 + 6) * 2 + 2 * 16 + 16)
        assert expected_bandwidth(spec, counts) == B * (12 * 16 + 12 + 16) + block + B * (16 * 5 + 16 + 5)


def test_threshold_one_lets_only_certain_samples_leave():
    spec = ArchSpec(**FLAT, depth=3, exits=1, exit_threshold=1.0)
    model = ready(spec)
    x = torch.randn(30, 12)
    assert exit_histogram(model, x) == [0, 0, 30]  # small random heads are never certain
    assert expected_bandwidth(spec, [0, 0, 30]) == bandwidth_bytes(model_cost(spec))
    with torch.no_grad():
        model.exit_heads[1].weight.mul_(1e4)  # the second exit head now saturates float32's softmax
        heads = model.all_logits(x)
    sure = F.softmax(heads[1], dim=1).amax(dim=1) >= 1.0
    assert 0 < sure.sum() <= 30
    assert exit_histogram(model, x) == [0, int(sure.sum()), 30 - int(sure.sum())]
    assert torch.equal(model.exit_forward(x)[1], by_hand(heads, 1.0))


@pytest.mark.parametrize("arch", [FLAT, MIXED], ids=["flat", "mixer"])
def test_accuracy_with_exits_equals_accuracy_by_hand_from_the_heads(arch):
    spec = ArchSpec(**arch, depth=4, exits=1, exit_threshold=0.5)
    model = ready(spec, seed=3, dtype=torch.float64)  # float64: a shrunk batch gives the same values
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(200, spec.d_in, generator=gen, dtype=torch.float64) * 3
    y = torch.randint(spec.d_out, (200,), generator=gen)
    with torch.no_grad():
        heads = model.all_logits(x)
        # a threshold where some samples leave at each exit head, midway between two samples' confidences:
        # at one sample's own value, a batch of another size (other BLAS blocking) may move it by an ulp across
        conf = F.softmax(heads[0], dim=1).amax(dim=1).sort().values
        assert conf[100] - conf[99] > 1e-9
        threshold = float(conf[99] + conf[100]) / 2
        model.exit_threshold = threshold
        where = by_hand(heads, threshold)
        chosen = torch.stack(heads)[where, torch.arange(200)]
        logits, got = model.exit_forward(x)
    assert torch.equal(got, where) and len(set(where.tolist())) >= 2
    torch.testing.assert_close(logits, chosen, rtol=1e-12, atol=1e-12)
    assert accuracy(model, x, y) == (chosen.argmax(dim=1) == y).double().mean().item()
    assert accuracy(model, x, y, batch_size=7) == accuracy(model, x, y)  # samples leave on their own
    assert exit_histogram(model, x, batch_size=13) == torch.bincount(where, minlength=4).tolist()
    assert torch.equal(model(x), logits)  # eval-mode forward: the early-exit inference


def test_a_short_training_on_digits_measures_the_exits():
    task = load_task("digits")
    spec = ArchSpec(d_in=task.d_in, d_out=task.d_out, lift="learned", lift_width=64, hidden_width=16, depth=3,
                    exits=1, exit_threshold=0.8)
    ev = evaluate(spec, TrainSpec(epochs=2, batch_size=64, lr=3e-3), task)
    obj = ev.objectives
    counts = obj["exit_counts"]  # the validation samples leaving at each head: what bandwidth_expected weighs
    assert len(counts) == 3 and sum(counts) == len(task.y_val)
    test_counts = obj["test_exit_counts"]  # the test split's, for the record
    assert len(test_counts) == 3 and sum(test_counts) == len(task.y_test)
    assert obj["test_bandwidth_expected"] == pytest.approx(expected_bandwidth(spec, test_counts))
    assert obj["bandwidth_expected"] <= obj["bandwidth"]
    assert obj["bandwidth_expected"] == pytest.approx(expected_bandwidth(spec, counts))
    assert obj["exit_bytes"] == [bandwidth_bytes(c) for c in exit_costs(spec)]  # no gates: the static prefixes
    assert obj["bandwidth_expected"] == pytest.approx(sum(n * b for n, b in zip(counts, obj["exit_bytes"])) / sum(counts))
    assert obj["accuracy"] > 0.5
    plain = evaluate(ArchSpec(**{**spec.to_json(), "exits": 0}), TrainSpec(epochs=1, batch_size=64), task)
    assert plain.objectives["bandwidth_expected"] == plain.objectives["bandwidth"]
    assert "exit_counts" not in plain.objectives and "test_exit_counts" not in plain.objectives
    assert "test_bandwidth_expected" not in plain.objectives


# ------------------------------------------------------------------ export
@pytest.mark.parametrize("arch", [FLAT, MIXED], ids=["flat", "mixer"])
def test_export_is_bit_identical_and_exits_early(arch, tmp_path):
    spec = ArchSpec(**arch, depth=4, exits=2, exit_threshold=0.3)
    model = ready(spec, seed=2)
    out = export_model(spec, {k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "e",
                       ExportMeta(dataset="digits"))
    card = json.loads((out / "arch.json").read_text())
    assert card["checks"]["outputs_equal_nas"] is True and card["checks"]["torch_export"].startswith("not supported")
    source = (out / "model.py").read_text()
    assert "EXIT_THRESHOLD = 0.3" in source and "def early_exit(" in source and "nas_exit_costs" not in source
    import importlib.util
    import sys

    loader = importlib.util.spec_from_file_location(f"exported_{arch['lift']}_{arch.get('mixer')}", out / "model.py")
    mod = importlib.util.module_from_spec(loader)
    sys.modules[loader.name] = mod
    loader.loader.exec_module(mod)
    net = mod.load(out)
    x = torch.randn(64, spec.d_in) * 2
    with torch.no_grad():
        want_logits, want_where = model.exit_forward(x)
        got_logits, got_where = net.exit_forward(x)
        assert torch.equal(net(x), model(x)) and torch.equal(got_logits, want_logits)
        assert torch.equal(got_where, want_where)
        assert all(torch.equal(a, b) for a, b in zip(net.all_logits(x), model.all_logits(x)))


def test_check_spec_refuses_a_threshold_outside_0_1():
    with pytest.raises(NasInputError, match="exit_threshold"):
        check_spec(ArchSpec(**FLAT, depth=3, exits=1, exit_threshold=1.5))
    with pytest.raises(ValueError, match="exit_threshold"):
        build(ArchSpec(**FLAT, depth=3, exits=1, exit_threshold=0.0))


# ------------------------------------------------------------------ the space file
def test_a_space_can_search_exits_and_minimise_bandwidth_expected():
    space = parse_space("task: {dataset: digits}\nobjectives: {accuracy: maximize, bandwidth_expected: minimize}\n"
                        "space:\n  depth: 4\n  hidden_width: 8\n  exits: [0, 1, 2]\n"
                        "  exit_threshold: {float: [0.5, 1.0], when: {exits: [1, 2]}}\n")
    assert space.objectives == {"accuracy": "maximize", "bandwidth_expected": "minimize"}
    arch, _ = space.freeze({"depth": 4, "hidden_width": 8, "exits": 2, "exit_threshold": 0.75}, 64, 10)
    assert arch.exits == 2 and arch.exit_threshold == 0.75
    with pytest.raises(NasInputError, match="space.exits: early exit needs class logits"):
        parse_space("task: {dataset: digits, kind: denoise}\nobjectives: {psnr: maximize}\n"
                    "space: {exits: [0, 1]}\n")
    parse_space("task: {dataset: digits, kind: denoise}\nobjectives: {psnr: maximize}\nspace: {exits: 0}\n")


# ------------------------------------------------------------------ a real study: stored, read back, shown, exported
EXITS_SPACE = """\
name: exits
task: {dataset: digits}
objectives: {accuracy: maximize, bandwidth_expected: minimize, params: minimize}
space:
  lift: learned
  lift_width: 32
  hidden_width: 8
  depth: 3
  exits: [1, 0]
  exit_threshold: [0.6, 0.95]
train: {epochs: 2, lr: 3.0e-3}
search: {sampler: random, trials: 3, workers: 1, seed: 0}
pruning: false
"""


@pytest.mark.slow  # a real `nas run` (Ray)
def test_a_study_stores_the_histogram_and_the_dashboard_and_export_read_it(tmp_path, monkeypatch):
    from child import nas_cli

    from nas.dashboard import data
    from nas.search.store.models import Candidate
    from nas.search.store.storage import Store

    (tmp_path / "exits.yaml").write_text(EXITS_SPACE)
    proc = nas_cli("run", "exits.yaml", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    store = Store(url, create=False)
    with store.session() as s:
        rows = [(c.trial_number, ArchSpec.from_json(c.arch), dict(c.objectives))
                for c in s.scalars(sa.select(Candidate).where(Candidate.state == "COMPLETE"))]
    store.close()
    task = load_task("digits")
    n_val, n_test = len(task.y_val), len(task.y_test)
    assert len(rows) == 3 and any(a.exits for _, a, _ in rows)
    for trial, arch, obj in rows:
        assert obj["bandwidth_expected"] <= obj["bandwidth"]
        if arch.exits:
            assert len(obj["exit_counts"]) == 3 and sum(obj["exit_counts"]) == n_val
            assert sum(obj["test_exit_counts"]) == n_test
            assert obj["bandwidth_expected"] == pytest.approx(expected_bandwidth(arch, obj["exit_counts"]))
        else:
            assert "exit_counts" not in obj and obj["bandwidth_expected"] == obj["bandwidth"]
    engine = sa.create_engine(url)
    trial, arch, obj = next(r for r in rows if r[1].exits)
    table = data.exit_table(data.detail(engine, "exits", trial))
    assert table["head"].tolist() == ["exit 1", "exit 2", "final"] and table["samples"].tolist() == obj["exit_counts"]
    assert table["test samples"].tolist() == obj["test_exit_counts"]
    assert table["after block"].tolist() == [1, 2, 3]
    assert table["bytes per sample"].tolist() == [bandwidth_bytes(c) for c in exit_costs(arch)]
    frame = data.candidates(engine, "exits")
    assert "exit_counts" not in frame and "exit_bytes" not in frame and "bandwidth_expected" in frame
    plain = next((r for r in rows if not r[1].exits), None)
    if plain is not None:
        assert data.exit_table(data.detail(engine, "exits", plain[0])) is None
    engine.dispose()
    from streamlit.testing.v1 import AppTest  # the drill-down draws the histogram

    monkeypatch.setenv("NAS_STORAGE", url)
    at = AppTest.from_file(str(Path(data.__file__).parent / "app.py"), default_timeout=120).run()
    at.selectbox(key="detail-trial").select(trial).run()
    assert not at.exception, [e.value for e in at.exception]
    bars = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    bars = [f for f in bars if "leaving at each head" in f["layout"].get("title", {}).get("text", "")]
    assert len(bars) == 1 and list(_values(bars[0]["data"][0]["y"])) == obj["exit_counts"]
    proc = nas_cli("export", "exits", "--trial", str(trial), "--out", "best", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((tmp_path / "best" / "arch.json").read_text())
    assert card["checks"]["outputs_equal_nas"] is True and card["objectives"]["exit_counts"] == obj["exit_counts"]
    readme = (tmp_path / "best" / "README.md").read_text()
    assert "moved per validation sample on average, early exits taken" in readme
    assert "moved per test sample on average, early exits taken" in readme  # test_bandwidth_expected: the record
