"""The learnable activations, the mixture-of-experts bottleneck and the Hadamard lift."""

import math

import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from nas.evaluators.datasets import load_task
from nas.evaluators.train import evaluate
from nas.spaces import ACTIVATIONS, ArchSpec, TrainSpec, bandwidth_bytes, build, model_cost
from nas.spaces.activations import neuron_scope
from nas.spaces.arch import SCOPED_ACTIVATIONS
from nas.spaces.fpe import FPEPair
from nas.spaces.lifts import HadamardLift, fwht
from nas.spaces.moe import BALANCE_COEF, DenseExpert, NasMixtureOfExperts


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: tiny models run in milliseconds, even on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------- activations
def _spec(activation: str) -> ArchSpec:
    return ArchSpec(d_in=12, d_out=3, lift="learned", lift_width=16, hidden_width=8, depth=2, activation=activation)


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_every_activation_trains_a_step_and_its_parameters_learn(name):
    torch.manual_seed(0)
    model = build(_spec(name))
    acts = [block.act for block in model.blocks]
    assert acts[0] is not acts[1]  # each layer owns its activation
    act_params = [p for a in acts for p in a.parameters()]
    assert not any(p is q for p in act_params[: len(act_params) // 2] for q in act_params[len(act_params) // 2 :])
    before = [p.detach().clone() for p in act_params]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
    loss = F.cross_entropy(model(x), y)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    for act in acts:  # (pwl's outer slopes only learn from inputs outside [-3, 3]: tested below)
        assert sum(p.grad.abs().sum() for p in act.parameters()) > 0 or not list(act.parameters())
    opt.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, act_params))  # AdamW's decay moves even zero-grad ones


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_every_activation_is_counted_on_the_meta_device(name):
    spec = _spec(name)
    n_act = sum(p.numel() for p in ACTIVATIONS.get(name)(spec.hidden_width).parameters())
    plain = 12 * 16 + 2 * 2 * 16 * 8 + 16 * 3
    cost = model_cost(spec)
    assert cost.params == plain + 2 * n_act
    assert bandwidth_bytes(cost) == bandwidth_bytes(model_cost(_spec("relu"))) + 2 * n_act * 4


@pytest.mark.parametrize("name", ACTIVATIONS.names())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_activation_keeps_shape_and_dtype(name, dtype):
    act = ACTIVATIONS.get(name)(5).to(dtype)
    x = torch.randn(2, 3, 5).to(dtype)
    y = act(x)
    assert y.shape == x.shape and y.dtype == dtype and torch.isfinite(y).all()
    ref = ACTIVATIONS.get(name)(5)(x.float())
    torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=2e-2)


def test_rational_starts_close_to_gelu():
    x = torch.linspace(-3, 3, 601)
    with torch.no_grad():
        y = ACTIVATIONS.get("rational")(4)(x)
    assert (y - F.gelu(x)).abs().max() < 0.01


def test_pwl_starts_as_relu():
    x = torch.cat([torch.linspace(-10, 10, 2001), torch.linspace(-3, 3, 9)])  # the knots themselves too
    with torch.no_grad():
        y = ACTIVATIONS.get("pwl")(4)(x)
    torch.testing.assert_close(y, torch.relu(x), rtol=0, atol=1e-6)


def test_pwl_interpolates_its_knot_values_and_extrapolates_with_its_slopes():
    pwl = ACTIVATIONS.get("pwl")(1)
    with torch.no_grad():
        pwl.values.copy_(torch.arange(9.0) ** 2)
        pwl.slopes.copy_(torch.tensor([-2.0, 3.0]))
    x = torch.tensor([-5.0, -3.0, -2.625, 0.0, 0.375, 3.0, 4.0])
    expected = torch.tensor([0 + -2 * -2.0, 0, 0.5, 16, 20.5, 64, 64 + 3])
    torch.testing.assert_close(pwl(x), expected)
    pwl(x).sum().backward()
    assert (pwl.values.grad != 0).any() and (pwl.slopes.grad != 0).all()


# ------------------------------------------------- activation_scope: layer | neuron
PER_LAYER = {"prelu": 1, "swish": 1, "rational": 6 + 4, "pwl": 9 + 2, "pwl_knots": 1 + 8 + 9 + 2, "mix": 4}


def test_the_scoped_activations_are_exactly_those_with_parameters():
    learnable = {n for n in ACTIVATIONS if list(ACTIVATIONS.get(n)(3).parameters())}
    assert learnable == set(SCOPED_ACTIVATIONS) == set(PER_LAYER)
    for name in PER_LAYER:
        for per_neuron, n in ((False, PER_LAYER[name]), (True, 7 * PER_LAYER[name])):
            act = ACTIVATIONS.get(name)(7, per_neuron=per_neuron)
            assert sum(p.numel() for p in act.parameters()) == n, (name, per_neuron)


@pytest.mark.parametrize("scope", ["layer", "neuron"])
@pytest.mark.parametrize("name", SCOPED_ACTIVATIONS)
def test_every_learnable_activation_in_both_scopes_trains_and_is_counted_by_hand(name, scope):
    spec = ArchSpec(**{**_spec(name).to_json(), "activation_scope": scope})
    assert spec.activation_scope == scope and (spec.arch_id == _spec(name).arch_id) == (scope == "layer")
    torch.manual_seed(0)
    model = build(spec)
    n_act = PER_LAYER[name] * (spec.hidden_width if scope == "neuron" else 1)
    for block in model.blocks:
        assert sum(p.numel() for p in block.act.parameters()) == n_act
        if scope == "neuron":  # every parameter has one column per unit
            assert all(p.shape[-1] == spec.hidden_width for p in block.act.parameters())
    plain = 12 * 16 + 2 * 2 * 16 * 8 + 16 * 3
    cost = model_cost(spec)
    assert cost.params == plain + 2 * n_act
    assert bandwidth_bytes(cost) == bandwidth_bytes(model_cost(_spec("relu"))) + 2 * n_act * 4
    bf16 = bandwidth_bytes(model_cost(_spec("relu"), dtype_bytes=2))
    assert bandwidth_bytes(model_cost(spec, dtype_bytes=2)) == bf16 + 2 * n_act * 2
    act_params = [p for block in model.blocks for p in block.act.parameters()]
    before = [p.detach().clone() for p in act_params]
    x, y = torch.randn(32, 12) * 2, torch.randint(0, 3, (32,))
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())
    for block in model.blocks:  # (the outer slopes of pwl and pwl_knots only learn outside the knots: not asked)
        assert all(p.grad.abs().sum() > 0 for key, p in block.act.named_parameters() if key != "slopes"), name
    torch.optim.AdamW(model.parameters(), lr=1e-2).step()
    assert all(not torch.equal(b, p) for b, p in zip(before, act_params))
    # the relu model with the same scope: nothing to scope, the same id and JSON as before the field existed
    relu = ArchSpec(**{**_spec("relu").to_json(), "activation_scope": scope})
    assert relu == _spec("relu") and relu.arch_id == _spec("relu").arch_id and "activation_scope" not in relu.to_json()


@pytest.mark.parametrize("name", SCOPED_ACTIVATIONS)
def test_per_neuron_unit_j_is_the_layer_activation_with_column_j(name):
    torch.manual_seed(0)
    wide = ACTIVATIONS.get(name)(5, per_neuron=True)
    with torch.no_grad():
        for p in wide.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert type(neuron_scope(ACTIVATIONS.get(name))(5)) is type(wide)
    x = torch.randn(64, 5) * 3
    y = wide(x)
    for j in range(5):
        one = ACTIVATIONS.get(name)(5)
        one.load_state_dict({k: v[..., j] for k, v in wide.state_dict().items()})
        torch.testing.assert_close(y[:, j], one(x)[:, j], rtol=1e-6, atol=1e-6)
    assert not torch.equal(y[:, 0], ACTIVATIONS.get(name)(5)(x)[:, 0])  # the perturbed units differ from the init


def test_per_neuron_activations_start_as_the_per_layer_ones_bit_for_bit():
    x = torch.randn(200, 6) * 4
    for name in SCOPED_ACTIVATIONS:
        assert torch.equal(ACTIVATIONS.get(name)(6, per_neuron=True)(x), ACTIVATIONS.get(name)(6)(x)), name


def _knot_grid() -> torch.Tensor:
    return torch.cat([torch.linspace(-10, 10, 20001), torch.linspace(-3, 3, 9), torch.randn(5000) * 1000,
                      torch.tensor([0.0, -0.0, 1e-30, -1e-30, 2.9999998, 3.0000002])])


@pytest.mark.parametrize("per_neuron", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pwl_knots_is_exactly_relu_at_init(per_neuron, dtype):
    act = ACTIVATIONS.get("pwl_knots")(3, per_neuron=per_neuron)
    x = _knot_grid()[:, None].expand(-1, 3).to(dtype)
    with torch.no_grad():
        assert torch.equal(act(x), torch.relu(x))
        assert torch.equal(act.knots(), torch.linspace(-3, 3, 9) if not per_neuron
                           else torch.linspace(-3, 3, 9)[:, None].expand(9, 3))


def _pwl_reference(x, t, v, s):
    """The piecewise-linear function through (t_j, v_j) with outer slopes s, in float64, one unit."""
    x, t, v = x.double(), t.double(), v.double()
    y = torch.empty_like(x)
    for n, xn in enumerate(x):
        if xn < t[0]:
            y[n] = v[0] + s[0] * (xn - t[0])
        elif xn > t[-1]:
            y[n] = v[-1] + s[1] * (xn - t[-1])
        else:
            j = min(int((xn >= t[1:-1]).sum()), len(t) - 2)
            y[n] = v[j] + (v[j + 1] - v[j]) / (t[j + 1] - t[j]) * (xn - t[j])
    return y


@pytest.mark.parametrize("per_neuron", [False, True])
def test_pwl_knots_interpolates_its_moved_knots(per_neuron):
    torch.manual_seed(1)
    act = ACTIVATIONS.get("pwl_knots")(4, per_neuron=per_neuron)
    with torch.no_grad():
        for p in act.parameters():
            p.add_(0.5 * torch.randn_like(p))
    x = torch.cat([torch.linspace(-8, 8, 801), torch.randn(200) * 3])[:, None].expand(-1, 4).contiguous()
    y = act(x)
    t, v, s = act.knots().detach(), act.values.detach(), act.slopes.detach()
    assert (t[1:] - t[:-1] >= 1e-3).all()
    for j in range(4):
        col = (lambda a: a[:, j]) if per_neuron else (lambda a: a)
        torch.testing.assert_close(y[:, j].double(), _pwl_reference(x[:, j], col(t), col(v), col(s)),
                                   rtol=1e-5, atol=1e-5)
    y.sum().backward()
    assert (act.start.grad != 0).all() and (act.gaps.grad != 0).any(dim=0).all()  # gradients reach the knots


@pytest.mark.parametrize("per_neuron", [False, True])
def test_pwl_knots_stay_ordered_under_a_large_learning_rate(per_neuron):
    torch.manual_seed(2)
    act = ACTIVATIONS.get("pwl_knots")(4, per_neuron=per_neuron)
    opt = torch.optim.Adam(act.parameters(), lr=1.0)  # every parameter moves by about 1 a step
    moved = torch.zeros(())
    for step in range(30):
        x = torch.randn(256, 4) * 4
        loss = ((act(x) - torch.sin(3 * x) * 5) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        if step == 0:  # (later the knots may move out of the inputs' way)
            assert (act.start.grad != 0).all() and (act.gaps.grad != 0).all()
        opt.step()
        t = act.knots().detach()
        assert (t[1:] - t[:-1] >= 1e-3 * (1 - 1e-4)).all(), (step, t)  # sorted, at least the floor apart
        moved = moved + (t - torch.linspace(-3, 3, 9).reshape(9, *[1] * (t.dim() - 1))).abs().sum()
    assert moved > 30  # the knots did move, far
    assert torch.isfinite(act(torch.randn(100, 4) * 10)).all()
    with torch.no_grad():  # knots so far off that float32 rounds them together: sorted all the same, and finite
        act.start.fill_(-2e13)
        act.gaps.fill_(-200.0)
        t = act.knots()
        assert (t[1:] >= t[:-1]).all() and torch.isfinite(act(torch.randn(100, 4) * 10)).all()


@pytest.mark.parametrize("per_neuron", [False, True])
def test_mix_starts_as_the_mean_of_the_four_and_learns_its_weights(per_neuron):
    mix = ACTIVATIONS.get("mix")(3, per_neuron=per_neuron)
    x = torch.randn(500, 3) * 3
    mean = (torch.relu(x) + F.gelu(x) + F.silu(x) + torch.tanh(x)) / 4
    assert torch.equal(mix(x), mean)
    mix(x).pow(2).sum().backward()
    assert (mix.logits.grad != 0).all()
    with torch.no_grad():  # a large logit picks one function (per unit when per neuron)
        mix.logits.zero_()
        if per_neuron:
            mix.logits[1, 0], mix.logits[3, 1], mix.logits[0, 2] = 100.0, 100.0, 100.0
            want = torch.stack([F.gelu(x[:, 0]), torch.tanh(x[:, 1]), torch.relu(x[:, 2])], dim=1)
        else:
            mix.logits[2] = 100.0
            want = F.silu(x)
    torch.testing.assert_close(mix(x), want)


def test_fpe_children_inherit_their_parents_per_neuron_parameters():
    torch.manual_seed(3)
    pair = FPEPair(8, 4, "prelu", 2, per_neuron=True)
    assert pair.act.slope.shape == (4,)
    with torch.no_grad():
        pair.act.slope.copy_(torch.arange(4.0))
    pair.expand()
    assert torch.equal(pair.act.slope, torch.arange(4.0).repeat_interleave(2))
    knots = FPEPair(8, 4, "pwl_knots", 2, per_neuron=True)
    with torch.no_grad():
        knots.act.gaps.copy_(torch.randn(8, 4))
    before = knots.act.knots().detach()
    knots.expand()
    assert torch.equal(knots.act.knots().detach(), before.repeat_interleave(2, dim=1))
    assert knots.nas_cost(4).params == knots.nnz + 20 * 8


EARLIER_IDS = {  # arch_id of _spec(name) computed by nas before activation_scope existed (main, 2026-12-05)
    "prelu": "739f996c721de799", "swish": "f2dddb495110caf0", "rational": "b6da67e7dc4b071f",
    "pwl": "357fa1b685fd8986", "relu": "6d8169e050f57644",
}


@pytest.mark.parametrize("name", sorted(EARLIER_IDS))
def test_earlier_candidates_keep_their_ids_and_json(name):
    spec = _spec(name)
    assert spec.arch_id == EARLIER_IDS[name] and "activation_scope" not in spec.to_json()
    assert ArchSpec.from_json(spec.to_json()) == spec
    neuron = ArchSpec(**{**spec.to_json(), "activation_scope": "neuron"})
    if name == "relu":
        assert neuron.arch_id == EARLIER_IDS[name]
    else:
        assert neuron.arch_id != EARLIER_IDS[name] and neuron.to_json()["activation_scope"] == "neuron"
        assert ArchSpec.from_json(neuron.to_json()) == neuron


# ---------------------------------------------------------- mixture of experts
def _moe(experts=3, top_k=2, d_z=4, d_h=5, activation="relu", seed=0):
    torch.manual_seed(seed)
    act = ACTIVATIONS.get(activation)
    return NasMixtureOfExperts(d_z, experts, top_k, expert=lambda: DenseExpert(d_z, d_h, act))


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_moe_runs_each_sample_through_exactly_top_k_experts(top_k):
    moe = _moe(experts=4, top_k=top_k)
    seen = []
    for expert in moe.experts:
        expert.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach()))
    x = torch.randn(50, 4)
    moe(x)
    assert sum(len(s) for s in seen) == 50 * top_k  # no expert ran on a sample it was not chosen for
    for row in x:
        assert sum(bool((s == row).all(dim=1).any()) for s in seen) == top_k


@pytest.mark.parametrize("top_k", [1, 2])
def test_moe_matches_a_hand_computed_reference(top_k):
    moe = _moe(experts=3, top_k=top_k)
    x = torch.randn(7, 4)
    expected = torch.zeros(7, 4)
    for i in range(7):
        p = torch.softmax(x[i] @ moe.router.weight.t(), dim=0)  # (3,)
        chosen = sorted(range(3), key=lambda e: -p[e].item())[:top_k]
        norm = 1.0 if top_k == 1 else sum(p[e] for e in chosen)  # top-1 keeps the raw probability
        for e in chosen:
            ex = moe.experts[e]
            expected[i] += p[e] / norm * (ex.w2.weight @ torch.relu(ex.w1.weight @ x[i]))
    torch.testing.assert_close(moe(x), expected)


def test_moe_gives_every_part_a_gradient_and_runs_in_bfloat16():
    moe = _moe(experts=3, top_k=2)
    x = torch.randn(64, 4)
    moe(x).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in moe.parameters())
    y = moe.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()


def test_moe_balance_loss_in_training_only_and_least_for_uniform_routing():
    moe = _moe(experts=4, top_k=2)
    x = torch.randn(64, 4)
    moe.train()
    moe(x)
    random_routing = moe.nas_aux_loss
    assert random_routing is not None and random_routing.requires_grad
    random_routing.backward()
    assert moe.router.weight.grad.abs().sum() > 0
    moe.eval()
    moe(x)
    assert moe.nas_aux_loss is None
    moe.train()
    with torch.no_grad():
        moe.router.weight.zero_()  # uniform probabilities
    moe(x)
    uniform = moe.nas_aux_loss.item()
    assert uniform == pytest.approx(BALANCE_COEF)  # E · Σ f_i / E
    with torch.no_grad():  # every sample prefers expert 0, then expert 1: p ≈ (0.9975, 0.0025, 0, 0)
        moe.router.weight[0] = 3.0
        moe.router.weight[1] = 1.5
    moe(torch.ones(64, 4) + 0.05 * torch.randn(64, 4))
    skewed = moe.nas_aux_loss.item()  # f = (1/2, 1/2, 0, 0): 0.01 · 4 · (0.9975 + 0.0025) / 2
    assert skewed == pytest.approx(2 * BALANCE_COEF, rel=0.01)
    assert random_routing.item() == pytest.approx(uniform, rel=0.05)  # a random router balances about as well


def test_moe_cost_hand_computed():
    # hashed lift 8 -> 16 (generated in the product), one block (no norm) of 4 experts 16 -> 4 -> 16 with top-2,
    # head 16 -> 3
    spec = ArchSpec(d_in=8, d_out=3, lift="hashed", lift_width=16, hidden_width=4, depth=1, norm="none",
                    moe_experts=4, moe_top_k=2)
    f = 4
    cost = model_cost(spec)
    assert cost.params == 16 * 4 + 4 * (2 * 16 * 4) + 16 * 3  # router, all 4 experts, head
    lift = (8 + 16) * f
    router = 16 * 4 * f + (16 + 4) * f
    expert = 2 * 16 * 4 * f + (16 + 4) * f + (4 + 16) * f
    block = router + 2 * expert + 16 * f  # only the 2 chosen experts; the residual add
    head = 16 * 3 * f + (16 + 3) * f
    assert bandwidth_bytes(cost) == lift + block + head == 2108


# ------------------------------------------------------------- Hadamard lift
@pytest.mark.parametrize("n", [1, 2, 8, 32])
def test_fwht_is_the_hadamard_matrix_product(n):
    x = torch.randn(3, 2, n, dtype=torch.float64)
    h = torch.tensor(scipy.linalg.hadamard(n), dtype=torch.float64)
    torch.testing.assert_close(fwht(x), x @ h)


def test_hadamard_lift_is_seeded_and_stores_nothing():
    x = torch.randn(5, 12)
    a, b, c = HadamardLift(12, 40, 3), HadamardLift(12, 40, 3), HadamardLift(12, 40, 4)
    assert a.n == 64 and a(x).shape == (5, 40)
    assert torch.equal(a(x), b(x)) and not torch.allclose(a(x), c(x))
    assert dict(a.state_dict()) == {} and not list(a.parameters())
    spec = ArchSpec(d_in=12, d_out=3, lift="hadamard", lift_width=40, hidden_width=4, depth=1, norm="none")
    fixed = ArchSpec(**{**spec.to_json(), "lift": "fixed_random"})
    hashed = ArchSpec(**{**spec.to_json(), "lift": "hashed"})
    assert model_cost(spec) == model_cost(hashed)  # params 0, weight bytes 0, (d_in + d_z) activation bytes
    # the Gaussian lift is not stored either, but its 40×12 matrix is read: only its weight bytes differ
    assert model_cost(fixed).params == model_cost(spec).params
    assert model_cost(fixed).weight_bytes == model_cost(spec).weight_bytes + 40 * 12 * 4
    assert model_cost(spec).params == 2 * 40 * 4 + 40 * 3
    assert ArchSpec(**{**spec.to_json(), "lift_seed": 1}).arch_id != spec.arch_id


def test_hadamard_lift_scales_like_the_fixed_random_lift():
    x = torch.randn(12)
    full = HadamardLift(12, 16, 0)  # d_z = n: exactly (n / d_in)·‖x‖²
    torch.testing.assert_close(full(x).pow(2).sum(), 16 / 12 * x.pow(2).sum())
    z = torch.stack([HadamardLift(12, 40, seed)(x) for seed in range(300)])  # (seeds, d_z)
    per_coord = z.pow(2).mean(0) / (x.pow(2).sum() / 12)  # variance over the seeds / ‖x‖²/d_in
    assert per_coord.mean().item() == pytest.approx(1.0, abs=0.05)
    assert z.mean().abs().item() < 0.1 * math.sqrt(x.pow(2).sum().item() / 12)


# ------------------------------------------------------------------ end to end
def test_moe_candidate_trains_on_digits_and_its_state_loads_strictly():
    task = load_task("digits")
    spec = ArchSpec(d_in=task.d_in, d_out=task.d_out, lift="hadamard", lift_width=96, hidden_width=16, depth=2,
                    activation="pwl", moe_experts=4, moe_top_k=2)
    result = evaluate(spec, TrainSpec(epochs=1, batch_size=64, lr=3e-3), task)
    assert 0.0 <= result.objectives["accuracy"] <= 1.0 and result.epochs_trained == 1
    model = build(spec)
    model.load_state_dict(result.state, strict=True)
    assert result.objectives["params"] == model_cost(spec).params


def test_every_family_shows_in_the_one_line_description_and_the_diagram():
    from nas.dashboard.data import block_diagram, describe

    spec = ArchSpec(d_in=64, d_out=10, lift="hashed", lift_width=32, hidden_width=16, depth=4, activation="pwl",
                    mixer="maxstate", patch=2, in_shape=(8, 8), moe_experts=4, moe_top_k=2, fpe_alpha=2,
                    fpe_split="feature")
    line = describe(spec.to_json())
    assert line == "maxstate/p2 hashed 32 | 16×4 pwl batchnorm · moe 4 top-2 · fpe α2 feature"
    dot = block_diagram(spec.to_json())
    for part in ("patch 2", "hashed lift", "maxstate mixer", "4 experts, top-2", "FPE α2 (feature)", "blocks 3…4",
                 "mean over tokens", "head\\n32 → 10"):
        assert part in dot, part
    assert describe(ArchSpec(d_in=64, d_out=10, hidden_width=256).to_json()) == "conventional | 256×2 relu batchnorm"


@pytest.mark.parametrize("first", ["activations", "mixers", "structured", "vocabulary"])
def test_the_registries_list_their_names_in_one_order_whichever_family_is_imported_first(first):
    """Error messages and the docs list a registry's names in the vocabulary's order, not Python's import order."""
    import subprocess
    import sys

    code = (f"import nas.spaces.{first}\nfrom nas.spaces.vocabulary import ACTIVATIONS, LIFTS, NORMS, MIXERS, "
            "WEIGHTS, CONNECTIONS\nprint([r.names() for r in (ACTIVATIONS, LIFTS, NORMS, MIXERS, WEIGHTS, CONNECTIONS)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[['relu', 'gelu', 'silu', 'tanh', 'prelu',"), out
    assert "['none', 'token_mlp', 'maxstate', 'attention', 'linear_attention', 'conv']" in out
