"""The space file's good forms, sampling with conditions, ArchSpec, the builder and the cost model."""

import json
import random
from pathlib import Path

import pytest
import torch

from nas.spaces import ACTIVATIONS, ArchSpec, TrainSpec, bandwidth_bytes, build, load_space, model_cost, parse_space
from nas.errors import NasInputError
from nas.spaces.vocabulary import LIFTS, NORMS, WEIGHTS

ROOT = Path(__file__).resolve().parent.parent


class RandomSuggest:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.asked = []

    def categorical(self, label, choices):
        self.asked.append(label)
        return self.rng.choice(choices)

    def int(self, label, low, high, log, step):
        self.asked.append(label)
        return self.rng.randrange(low, high + 1, step or 1)

    def float(self, label, low, high, log, step):
        self.asked.append(label)
        return self.rng.uniform(low, high)


def test_quickstart_parses_with_every_form():
    space = load_space(ROOT / "examples" / "quickstart.yaml")
    assert space.name == "quickstart"
    assert space.objectives == {"accuracy": "maximize", "params": "minimize", "bandwidth": "minimize"}
    kinds = {p.label: p.kind for p in space.params}
    assert kinds["lift"] == "choice" and kinds["lift_width"] == "int" and kinds["norm"] == "fixed"
    assert kinds["lr"] == "float" and [p.section for p in space.params if p.label == "lr"] == ["train"]
    lw = next(p for p in space.params if p.label == "lift_width")
    assert lw.log and lw.when == {"lift": ("fixed_random", "learned")}


def test_conditions_leave_inactive_parameters_out():
    space = parse_space(
        "task: {dataset: digits}\n"
        "space:\n"
        "  lift: [fixed_random, none]\n"
        "  lift_width: {int: [64, 128], when: {lift: fixed_random}}\n"
        "  hidden_width: {choice: [8, 16]}\n"
        "  depth: {value: 3}\n"
        "train:\n"
        "  lr: {float: [1e-4, 1e-2], log: true}\n"
        "  epochs: {int: [2, 6], step: 2}\n"
    )
    seen = set()
    for seed in range(40):
        s = RandomSuggest(seed)
        values = space.sample(s)
        seen.add(values["lift"])
        assert ("lift_width" in values) == (values["lift"] == "fixed_random")
        assert "depth" not in s.asked and values["depth"] == 3  # fixed: never asked, always present
        assert values["epochs"] in (2, 4, 6) and 1e-4 <= values["lr"] <= 1e-2
        arch, train = space.freeze(values, 64, 10)
        assert arch.depth == 3 and train.epochs == values["epochs"]
    assert seen == {"fixed_random", "none"}


def test_grid_lists_every_point_of_a_finite_space_once():
    space = parse_space(
        "task: {dataset: digits}\n"
        "space:\n"
        "  lift: [fixed_random, none]\n"
        "  lift_width: {choice: [32, 64, 128], when: {lift: fixed_random}}\n"
        "  hidden_width: [8, 16]\n"
        "  depth: 2\n"
        "train:\n"
        "  lr: [1.0e-3, 3.0e-3]\n"
    )
    points = space.grid()
    assert len(points) == (3 + 1) * 2 * 2  # lift_width only under fixed_random
    assert all(("lift_width" in p) == (p["lift"] == "fixed_random") and p["depth"] == 2 for p in points)
    ids = {space.freeze(p, 64, 10)[0].arch_id + str(p["lr"]) for p in points}
    assert len(ids) == len(points)  # no point repeats another
    with pytest.raises(ValueError, match=r"<space>:4: space\.hidden_width: a range"):
        parse_space("task: {dataset: digits}\nspace:\n  lift: none\n  hidden_width: {int: [8, 16]}\n").grid()


def test_yaml_1_2_floats_are_numbers():
    space = parse_space("task: {dataset: digits}\nspace: {hidden_width: 8}\ntrain: {lr: 1e-3}\n")
    assert next(p for p in space.params if p.label == "lr").value == pytest.approx(1e-3)


def test_archspec_json_round_trip_and_id():
    spec = ArchSpec(d_in=784, d_out=10, lift="fixed_random", lift_width=1024, hidden_width=64, depth=3,
                    activation="gelu", norm="layernorm", lift_seed=7)
    again = ArchSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec and again.arch_id == spec.arch_id
    assert ArchSpec(**{**spec.to_json(), "lift_seed": 8}).arch_id != spec.arch_id
    assert ArchSpec(**{**spec.to_json(), "depth": 2}).arch_id != spec.arch_id
    with pytest.raises(ValueError, match="unknown ArchSpec fields: colour"):
        ArchSpec.from_json({**spec.to_json(), "colour": "red"})


def test_arch_id_ignores_parameters_that_are_not_used():
    a = ArchSpec(d_in=64, d_out=10, lift="none", lift_width=512, lift_seed=3, hidden_width=32)
    b = ArchSpec(d_in=64, d_out=10, lift="none", lift_width=128, lift_seed=0, hidden_width=32)
    assert a.arch_id == b.arch_id and a.d_z == 64
    learned = ArchSpec(d_in=64, d_out=10, lift="learned", lift_width=128, hidden_width=32)
    assert learned.arch_id == ArchSpec(**{**learned.to_json(), "lift_seed": 5}).arch_id
    assert TrainSpec(lr=1e-3).train_key != TrainSpec(lr=2e-3).train_key


def test_static_objectives_are_the_models_own_and_built_once_per_architecture(monkeypatch):
    """The driver's params and bandwidth of a candidate: its model's cost, built once per architecture id (a
    long study proposes the same architecture again with other training settings), the least recently used
    forgotten past ``STATIC_KEPT``, and a shape that cannot be built refused every time."""
    from nas.evaluators import train

    monkeypatch.setattr(train, "_STATIC", {})
    monkeypatch.setattr(train, "STATIC_KEPT", 2)
    built = []
    monkeypatch.setattr(train, "model_cost", lambda spec: built.append(spec.arch_id) or model_cost(spec))
    a = ArchSpec(d_in=64, d_out=10, lift="learned", lift_width=128, hidden_width=32, depth=2)
    b, c = ArchSpec(**{**a.to_json(), "depth": 1}), ArchSpec(**{**a.to_json(), "fpe_alpha": 2})
    want = {"params": float(model_cost(a).params), "bandwidth": float(bandwidth_bytes(model_cost(a)))}
    first = train.static_objectives(a)
    first["params"] = -1.0  # the caller's copy: the kept figures are not changed through it
    assert train.static_objectives(ArchSpec(**{**a.to_json(), "lift_seed": 9})) == want  # same id: not rebuilt
    assert built == [a.arch_id]
    train.static_objectives(b), train.static_objectives(a), train.static_objectives(c)  # b is now the oldest
    assert built == [a.arch_id, b.arch_id, c.arch_id]
    train.static_objectives(a)
    train.static_objectives(b)
    assert built == [a.arch_id, b.arch_id, c.arch_id, b.arch_id]  # a kept (used), b forgotten and rebuilt
    bad = ArchSpec(d_in=64, d_out=10, hidden_width=32, mixer="mlp_mixer", in_shape=(8, 8), patch=3)
    for _ in range(2):
        with pytest.raises(ValueError):
            train.static_objectives(bad)


@pytest.mark.parametrize("lift", ["fixed_random", "learned", "none"])
@pytest.mark.parametrize("depth", [1, 4])
def test_params_follow_the_paper_formula(lift, depth):
    d_in, d_z, d_h, d_out = 784, 1000, 115, 10
    spec = ArchSpec(d_in=d_in, d_out=d_out, lift=lift, lift_width=d_z, hidden_width=d_h, depth=depth)
    d_z = spec.d_z
    expected = (d_in * d_z if lift == "learned" else 0) + depth * 2 * d_z * d_h + d_z * d_out
    assert model_cost(spec).params == expected
    model = build(spec)
    assert sum(p.numel() for p in model.parameters()) == expected  # the model agrees with its own report


@pytest.mark.parametrize(
    "d_z, d_h, depth, published",
    [
        (785, 115, 4, 1.95e6),  # denoising, hourglass 785/115×4
        (784, 1150, 1, 3.03e6),  # denoising, conventional 784/1150
        (785, 270, 4, 2.93e6),  # generative classification, hourglass 785/270×4
        (784, 785, 4, 6.15e6),  # generative classification, conventional 784/785×4
    ],
)
def test_published_mnist_parameter_counts(d_z, d_h, depth, published):
    """The hourglass paper's MNIST models (784 pixels in and out); its counts include a trained W_in."""
    spec = ArchSpec(d_in=784, d_out=784, lift="learned", lift_width=d_z, hidden_width=d_h, depth=depth)
    assert round(model_cost(spec).params, -4) == published


def test_fixed_lift_is_regenerated_not_stored():
    spec = ArchSpec(d_in=16, d_out=3, lift="fixed_random", lift_width=32, hidden_width=4, depth=1, lift_seed=5)
    a, b = build(spec), build(spec)
    assert torch.equal(a.lift.weight, b.lift.weight)
    assert "lift.weight" not in a.state_dict()
    assert not any(p is a.lift.weight for p in a.parameters())
    other = build(ArchSpec(**{**spec.to_json(), "lift_seed": 6}))
    assert not torch.equal(a.lift.weight, other.lift.weight)
    w = a.lift.weight
    assert abs(w.std().item() - 16 ** -0.5) < 0.05  # N(0, 1/d_in)


def test_bandwidth_hand_computed_hourglass():
    # fixed lift 8 -> 32 (not stored, but its 32·8 entries are read), 2 blocks of 32 -> 4 -> 32 with batchnorm,
    # head 32 -> 3
    spec = ArchSpec(d_in=8, d_out=3, lift="fixed_random", lift_width=32, hidden_width=4, depth=2, norm="batchnorm")
    f = 4  # float32 bytes
    lift = 32 * 8 * f + (8 + 32) * f
    block = (
        2 * 32 * f  # batchnorm running mean and variance
        + 32 * 4 * f + (32 + 4) * f  # W1 weights, its input and output
        + 4 * 32 * f + (4 + 32) * f  # W2 weights, its input and output
        + 32 * f  # the residual add reads the skip vector
    )
    head = 32 * 3 * f + (32 + 3) * f
    assert bandwidth_bytes(model_cost(spec)) == lift + 2 * block + head == 5100
    assert model_cost(spec).params == 2 * 2 * 32 * 4 + 32 * 3  # the lift: 0 parameters
    hashed = ArchSpec(**{**spec.to_json(), "lift": "hashed"})  # generated inside the product: no weight bytes
    assert bandwidth_bytes(model_cost(hashed)) == 5100 - 32 * 8 * f


def test_bandwidth_hand_computed_conventional_and_learned():
    f = 4
    conv = ArchSpec(d_in=10, d_out=2, lift="none", hidden_width=20, depth=1, norm="layernorm")
    expected = (10 * 20 + 10 + 20) * f + (20 * 10 + 20 + 10) * f + 10 * f + (10 * 2 + 10 + 2) * f
    assert bandwidth_bytes(model_cost(conv)) == expected
    learned = ArchSpec(d_in=10, d_out=2, lift="learned", lift_width=16, hidden_width=4, depth=1, norm="none")
    expected = (10 * 16 + 10 + 16) * f + (16 * 4 + 16 + 4) * f + (4 * 16 + 4 + 16) * f + 16 * f + (16 * 2 + 16 + 2) * f
    assert bandwidth_bytes(model_cost(learned)) == expected
    assert model_cost(learned).params == 10 * 16 + 2 * 16 * 4 + 16 * 2


def test_a_bigger_bottleneck_costs_more():
    small = ArchSpec(d_in=64, d_out=10, lift="fixed_random", lift_width=256, hidden_width=16, depth=2)
    big = ArchSpec(**{**small.to_json(), "hidden_width": 64})
    assert model_cost(big).params > model_cost(small).params
    assert bandwidth_bytes(model_cost(big)) > bandwidth_bytes(model_cost(small))


@pytest.mark.parametrize("activation", ACTIVATIONS.names())
@pytest.mark.parametrize("norm", NORMS.names())
@pytest.mark.parametrize("lift", LIFTS.names())
@pytest.mark.parametrize("weights", WEIGHTS.names())
def test_every_block_builds_trains_a_step_with_finite_gradients(activation, norm, lift, weights):
    torch.manual_seed(0)
    spec = ArchSpec(d_in=12, d_out=4, lift=lift, lift_width=24, hidden_width=6, depth=2, activation=activation,
                    norm=norm, weights=weights, rank=3, monarch_blocks=3)
    model = build(spec)
    x, y = torch.randn(16, 12), torch.randint(0, 4, (16,))
    out = model(x)
    assert out.shape == (16, 4)
    loss = torch.nn.functional.cross_entropy(out, y)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    before = [p.detach().clone() for p in model.parameters()]
    torch.optim.AdamW(model.parameters(), lr=1e-2).step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_unknown_registry_name_lists_the_valid_ones():
    with pytest.raises(KeyError, match="unknown activation 'relu6'.*expected one of relu, gelu, silu, tanh"):
        ACTIVATIONS.get("relu6")


def test_activation_scope_is_sampled_and_frozen_into_the_arch():
    space = parse_space(
        "task: {dataset: digits}\n"
        "space:\n"
        "  activation: [relu, prelu, pwl_knots, mix]\n"
        "  activation_scope: {choice: [layer, neuron], when: {activation: [prelu, pwl_knots, mix]}}\n"
        "  hidden_width: 8\n"
    )
    seen = set()
    for seed in range(60):
        s = RandomSuggest(seed)
        values = space.sample(s)
        assert ("activation_scope" in values) == (values["activation"] != "relu")
        arch, _ = space.freeze(values, 64, 10)
        assert arch.activation_scope == values.get("activation_scope", "layer")
        assert ("activation_scope" in arch.to_json()) == (arch.activation_scope == "neuron")
        seen.add((arch.activation, arch.activation_scope))
    assert {("prelu", "neuron"), ("mix", "neuron"), ("pwl_knots", "layer"), ("relu", "layer")} <= seen
    # a fixed activation ignores the scope: the same model, id and JSON
    relu = ArchSpec(d_in=64, d_out=10, hidden_width=8, activation="relu", activation_scope="neuron")
    assert relu == ArchSpec(d_in=64, d_out=10, hidden_width=8) and relu.activation_scope == "layer"
    with pytest.raises(NasInputError, match="space.activation_scope: unknown activation_scope 'unit'"):
        parse_space("task: {dataset: digits}\nspace:\n  activation: prelu\n  activation_scope: unit\n")
    with pytest.raises(NasInputError, match="space.activation_scope: wrong type for activation_scope; found 2"):
        parse_space("task: {dataset: digits}\nspace:\n  activation: prelu\n  activation_scope: {choice: [layer, 2]}\n")


def test_activation_scope_shows_in_the_words():
    from nas.spaces.stages import describe, summary

    spec = ArchSpec(d_in=64, d_out=10, lift="learned", lift_width=32, hidden_width=8, activation="pwl_knots",
                    activation_scope="neuron")
    assert summary(spec) == "learned 32 | 8×2 pwl_knots per neuron batchnorm"
    assert "(batchnorm, pwl_knots per neuron)" in describe(spec)
    assert summary(ArchSpec(**{**spec.to_json(), "activation_scope": "layer"})) == "learned 32 | 8×2 pwl_knots batchnorm"
