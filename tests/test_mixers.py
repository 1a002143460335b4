"""Token mixers: tokenisation, the mixers' defining properties, their costs, one training run."""

import math
import re

import pytest
import torch

from nas.evaluators.datasets import load_task
from nas.evaluators.train import evaluate
from nas.spaces import ArchSpec, TrainSpec, bandwidth_bytes, build, model_cost
from nas.spaces.vocabulary import LIFTS, MIXERS
from nas.spaces.mixers import Attention, LinearAttention, MaxState, TokenConv, Tokens, TokenMLP, token_grid

MIXER_NAMES = [m for m in MIXERS.names() if m != "none"]
SHAPES = [((8, 8), 0, 8), ((8, 8), 2, 16), ((8, 8), 4, 4), ((12,), 3, 4)]  # in_shape, patch, tokens


def spec_for(mixer, in_shape=(8, 8), patch=0, **kw):
    arch = dict(lift="learned", lift_width=16, hidden_width=8, depth=2, norm="layernorm")
    arch.update(kw)
    return ArchSpec(d_in=math.prod(in_shape), d_out=10, mixer=mixer, patch=patch, in_shape=in_shape, **arch)


def test_every_mixer_is_registered():
    assert set(MIXER_NAMES) == {"token_mlp", "maxstate", "attention", "linear_attention", "conv"}


@pytest.mark.parametrize("mixer", MIXER_NAMES)
@pytest.mark.parametrize("in_shape,patch,tokens", SHAPES)
def test_builds_and_forwards(mixer, in_shape, patch, tokens):
    spec = spec_for(mixer, in_shape, patch, norm="batchnorm")
    model = build(spec, fresh=True)
    assert model.n_tokens == tokens
    assert model(torch.randn(3, spec.d_in)).shape == (3, 10)
    model.eval()
    assert model(torch.randn(1, spec.d_in)).shape == (1, 10)  # batch 1, as latency_ms runs it


def test_patches_are_cut_row_major():
    x = torch.arange(64.0).view(1, 64)
    t = Tokens((8, 8), 4, 64)(x)  # (1, 4, 16)
    img = x.view(8, 8)
    assert torch.equal(t[0, 0], img[:4, :4].flatten())
    assert torch.equal(t[0, 1], img[:4, 4:].flatten())
    assert torch.equal(t[0, 2], img[4:, :4].flatten())
    assert torch.equal(Tokens((8, 8), 0, 64)(x)[0, 3], img[3])  # patch 0: the rows
    assert torch.equal(Tokens((12,), 3, 12)(x[:, :12])[0, 1], x[0, 3:6])


@pytest.mark.parametrize("in_shape,patch,says", [
    ((8, 8), 3, "3×3 patches do not tile a 8×8 image"),
    ((12,), 5, "5 does not divide"),
    ((12,), 0, "no tokens of its own"),
    ((2, 3, 4), 2, "2×2 patches do not tile a 2×3 image"),  # (H, W, C): patches of H and W
    ((2, 2, 2, 2), 2, r"1-D, 2-D or \(H, W, C\)"),
])
def test_a_bad_patch_names_shape_and_patch(in_shape, patch, says):
    with pytest.raises(ValueError, match=re.escape(f"in_shape {in_shape} with patch {patch}: ") + f".*{says}"):
        build(spec_for("maxstate", in_shape, patch))
    with pytest.raises(ValueError, match="d_in = 10"):
        token_grid((8, 8), 2, 10)


def test_maxstate_is_causal():
    torch.manual_seed(0)
    mix = MaxState(12, 16)
    x = torch.randn(2, 12, 16)
    for t in (0, 5, 11):
        x2 = x.clone()
        x2[:, t] += torch.randn(2, 16)
        y, y2 = mix(x), mix(x2)
        assert torch.equal(y[:, :t], y2[:, :t])
        assert not torch.allclose(y[:, t], y2[:, t])


def test_attention_is_permutation_equivariant_without_positions():
    torch.manual_seed(0)
    mix = Attention(10, 16)
    x = torch.randn(2, 10, 16)
    perm = torch.randperm(10)
    torch.testing.assert_close(mix(x[:, perm]), mix(x)[:, perm])


def test_token_mlp_mixes_across_tokens():
    torch.manual_seed(0)
    mix = TokenMLP(6, 8)
    x = torch.randn(2, 6, 8)
    x2 = x.clone()
    x2[:, 0] += 1.0
    assert not torch.allclose(mix(x)[:, 5], mix(x2)[:, 5])
    x3 = x.clone()
    x3[:, :, 0] += 1.0  # channels stay apart: only channel 0 changes
    torch.testing.assert_close(mix(x)[:, :, 1:], mix(x3)[:, :, 1:])


@pytest.mark.parametrize("mixer", MIXER_NAMES)
@pytest.mark.parametrize("lift", LIFTS.names())
def test_params_count_the_stored_parameters(mixer, lift):
    spec = spec_for(mixer, (8, 8), 2, lift=lift, norm="batchnorm")
    model = build(spec)
    assert model_cost(spec).params == sum(p.numel() for p in model.parameters())  # a fixed lift is a buffer
    assert model_cost(spec).params == sum(v.numel() for k, v in model.state_dict().items() if "running" not in k
                                          and "num_batches" not in k)


def _seq_bandwidth(mixer, n_tokens):
    return bandwidth_bytes(model_cost(spec_for(mixer, (n_tokens, 4), 0, depth=3)))


def test_attention_bandwidth_grows_quadratically_maxstate_linearly():
    # the second difference over T = 8, 16, 24: 0 for a cost affine in T, 2·8²·k for k·T²
    second = {m: _seq_bandwidth(m, 24) - 2 * _seq_bandwidth(m, 16) + _seq_bandwidth(m, 8) for m in MIXER_NAMES}
    assert second["maxstate"] == second["linear_attention"] == second["conv"] == 0  # exactly affine in T
    heads = Attention(8, 16).heads
    assert second["attention"] == 3 * 2 * heads * 2 * 8**2 * 4  # H·T² written + read, per layer
    assert second["token_mlp"] > 0  # T×2T token weights


def test_attention_bandwidth_by_hand():
    # T = 8 tokens of F = 8 (rows of 8×8), D = 16 in 4 heads, one layer, layernorm (no statistics), float32
    t, f, d, dh, c, h = 8, 8, 16, 8, 10, 4
    spec = spec_for("attention", (8, 8), 0, depth=1, hidden_width=dh)
    weights = f * d + t * d + 4 * d * d + 2 * d * dh + d * c
    acts = (t * (f + d)  # embed
            + t * (d + 3 * d) + (2 * t * d + h * t * t) + (h * t * t + 2 * t * d) + t * 2 * d + t * d  # attention, skip
            + t * (2 * (d + dh) + d)  # channel block, its skip
            + t * d + d + d + c)  # mean, head
    cost = model_cost(spec)
    assert (cost.params, cost.weight_bytes, cost.act_bytes) == (weights, 4 * weights, 4 * acts)


def test_linear_attention_bandwidth_by_hand():
    # T = 8 tokens of F = 8, D = 16 in 4 heads of 4, one layer, layernorm (no statistics), float32
    t, f, d, dh, c, h, e = 8, 8, 16, 8, 10, 4, 4
    spec = spec_for("linear_attention", (8, 8), 0, depth=1, hidden_width=dh)
    weights = f * d + t * d + 4 * d * d + 2 * d * dh + d * c  # embed, positions, W_qkv and W_o, block, head
    state = h * e * e + h * e  # S and z of every head
    acts = (t * (f + d)  # embed
            + t * (d + 3 * d)  # W_qkv
            + (t * 2 * d + state) + (t * d + state + t * d)  # φ(k), v -> S, z; φ(q), S, z -> y
            + t * 2 * d + t * d  # W_o, the skip
            + t * (2 * (d + dh) + d)  # channel block, its skip
            + t * d + d + d + c)  # mean, head
    cost = model_cost(spec)
    assert (cost.params, cost.weight_bytes, cost.act_bytes) == (weights, 4 * weights, 4 * acts)
    mix = build(spec).layers[0].mix
    assert isinstance(mix, LinearAttention) and mix.nas_cost(4).act_bytes == 4 * (
        t * 4 * d + t * 2 * d + 4 * t * d + 2 * state)


@pytest.mark.parametrize("kernel", [1, 3, 7])
def test_conv_bandwidth_by_hand(kernel):
    # T = 16 patches of 2×2 (F = 4), D = 16, one layer, batchnorm (2·D statistics per norm), float64 (8 bytes)
    t, f, d, dh, c = 16, 4, 16, 8, 10
    spec = spec_for("conv", (8, 8), 2, depth=1, hidden_width=dh, norm="batchnorm", mixer_kernel=kernel)
    params = f * d + d * kernel + 2 * d * dh + d * c  # embed, depthwise taps, block, head; no position table
    stats = 2 * d + 2 * d  # the mixer's norm and the block's
    acts = (t * (f + d)  # embed
            + 2 * t * d + t * d  # the convolution reads and writes T·D, the skip
            + t * (2 * (d + dh) + d)  # channel block, its skip
            + t * d + d + d + c)  # mean, head
    cost = model_cost(spec, dtype_bytes=8)
    assert (cost.params, cost.weight_bytes, cost.act_bytes) == (params, 8 * (params + stats), 8 * acts)
    assert build(spec).pos is None


def naive_linear_attention(mix: LinearAttention, h: torch.Tensor) -> torch.Tensor:
    """The same formula token by token, pair by pair: y_i = Σ_j (φ(q_i)·φ(k_j)) v_j / (Σ_j φ(q_i)·φ(k_j) + eps)."""
    bsz, t, d = h.shape
    e = d // mix.heads
    phi = lambda x: torch.where(x > 0, x + 1, torch.exp(x))  # elu(x) + 1
    qkv = h @ mix.qkv.weight.t()
    out = torch.zeros(bsz, t, d, dtype=h.dtype)
    for b in range(bsz):
        for head in range(mix.heads):
            cols = slice(head * e, (head + 1) * e)
            q, k, v = (phi(qkv[b, :, i * d:(i + 1) * d][:, cols]) if i < 2 else qkv[b, :, i * d:(i + 1) * d][:, cols]
                       for i in range(3))
            for i in range(t):
                scores = torch.stack([q[i] @ k[j] for j in range(t)])  # (T,): the T×T matrix, a row at a time
                out[b, i, cols] = (scores[:, None] * v).sum(0) / (scores.sum() + mix.eps)
    return out @ mix.out.weight.t()


@pytest.mark.parametrize("t,d", [(5, 8), (9, 12), (4, 128)])  # 4 heads of 2 and of 3; 2 heads of 64
def test_linear_attention_equals_the_quadratic_formula(t, d):
    torch.manual_seed(0)
    mix = LinearAttention(t, d).double()
    h = torch.randn(2, t, d, dtype=torch.float64)
    y = mix(h)
    assert y.shape == (2, t, d)
    torch.testing.assert_close(y, naive_linear_attention(mix, h), rtol=1e-12, atol=1e-12)


def test_linear_attention_is_permutation_equivariant_and_safe_on_extreme_inputs():
    torch.manual_seed(0)
    mix = LinearAttention(10, 16)
    x = torch.randn(2, 10, 16)
    perm = torch.randperm(10)
    torch.testing.assert_close(mix(x[:, perm]), mix(x)[:, perm])
    with torch.no_grad():
        mix.qkv.weight.copy_(torch.eye(16).repeat(3, 1))  # q = k = v = h
    # φ = exp(x) underflows to 0 below about -104 (float32): without eps the normaliser would be 0, the output 0/0
    for scale in (-1e2, -1e3, -1e30, 1e3, 1e6):
        assert torch.isfinite(mix(torch.full((1, 10, 16), scale))).all(), scale
    assert torch.equal(mix(torch.full((1, 10, 16), -1e3)), torch.zeros(1, 10, 16))


@pytest.mark.parametrize("kernel", [1, 3, 5, 9])
def test_conv_sees_exactly_its_kernel_of_neighbours(kernel):
    torch.manual_seed(0)
    t, d, r = 8, 6, kernel // 2
    mix = TokenConv(t, d, kernel)
    assert mix.conv.weight.shape == (d, 1, kernel) and sum(p.numel() for p in mix.parameters()) == d * kernel
    x = torch.randn(2, t, d)
    assert mix(x).shape == (2, t, d)
    for j in (0, 3, 7):  # change token j: exactly the tokens within r of it change, channel by channel
        x2 = x.clone()
        x2[:, j, 2] += 1.0
        changed = (mix(x2) != mix(x)).any(dim=0)  # (T, D)
        assert changed[:, 2].tolist() == [abs(i - j) <= r for i in range(t)]
        assert not changed[:, [0, 1, 3, 4, 5]].any()  # depthwise: other channels untouched
    w = mix.conv.weight[:, 0].detach().double()  # (D, kernel), by hand with zeros beyond the ends
    xd = x.double()
    want = torch.zeros(2, t, d, dtype=torch.float64)
    for i in range(t):
        for a in range(kernel):
            if 0 <= i + a - r < t:
                want[:, i] += w[:, a] * xd[:, i + a - r]
    torch.testing.assert_close(mix(x).double(), want, rtol=1e-5, atol=1e-6)


def test_conv_kernel_changes_the_model_and_its_id_only_for_conv():
    small, big = spec_for("conv", mixer_kernel=3), spec_for("conv", mixer_kernel=7)
    assert small.arch_id != big.arch_id
    assert model_cost(big).params - model_cost(small).params == 2 * 16 * 4  # 2 layers × D = 16 × 4 more taps
    assert [m.mix.kernel for m in build(big).layers] == [7, 7]
    assert spec_for("conv").mixer_kernel == 3 and spec_for("conv").to_json()["mixer_kernel"] == 3
    for mixer in ("none", "attention", "maxstate"):  # another mixer ignores the key: no trace in the id or the JSON
        spec = spec_for(mixer, mixer_kernel=7)
        assert spec == spec_for(mixer) and "mixer_kernel" not in spec.to_json()
        assert "mixer_kernel" not in spec.used_params()


def test_mixer_heads_changes_the_model_its_costs_and_id_only_for_mixers_with_heads():
    # spec_for: D = 16 (default 4 heads), T = 8 row tokens, 2 layers, float32
    t, d, layers = 8, 16, 2
    for mixer in ("maxstate", "attention", "linear_attention"):
        base, two = spec_for(mixer), spec_for(mixer, mixer_heads=2)
        assert base.arch_id != two.arch_id and two.to_json()["mixer_heads"] == 2
        assert [m.mix.heads for m in build(base).layers] == [4, 4] and [m.mix.heads for m in build(two).layers] == [2, 2]
        cb, c2 = model_cost(base), model_cost(two)
        assert c2.params == sum(p.numel() for p in build(two).parameters())
        if mixer == "maxstate":  # G: 5H -> H, bias-free: 5H² weights
            assert cb.params - c2.params == layers * 5 * (4 * 4 - 2 * 2)
        else:
            assert cb.params == c2.params  # the projections do not depend on the heads
        if mixer == "attention":  # H·T² scores written and read, per layer
            assert cb.act_bytes - c2.act_bytes == layers * 2 * (4 - 2) * t * t * 4
        if mixer == "linear_attention":  # a state of H heads of (D/H)² + D/H, written and read per layer
            state = lambda h: h * (d // h) ** 2 + h * (d // h)  # noqa: E731
            assert cb.act_bytes - c2.act_bytes == layers * 2 * (state(4) - state(2)) * 4
    for mixer in ("none", "token_mlp", "conv"):  # a mixer without heads ignores the key: no trace in the id or JSON
        spec = spec_for(mixer, mixer_heads=2)
        assert spec == spec_for(mixer) and "mixer_heads" not in spec.to_json()


def test_a_head_count_that_does_not_divide_the_width_is_an_infeasible_candidate():
    spec = spec_for("attention", mixer_heads=3)  # D = 16
    with pytest.raises(ValueError, match="mixer_heads 3 does not divide the mixer's width d_z = 16"):
        model_cost(spec)
    with pytest.raises(ValueError, match="3 heads do not divide the mixer's width 16"):
        Attention(8, 16, heads=3)


def test_a_head_count_that_divides_no_width_of_the_space_is_an_input_error(tmp_path):
    from nas.errors import NasInputError
    from nas.spaces import parse_space

    text = ("task: {dataset: digits}\nspace:\n  mixer: [attention, maxstate]\n  patch: 2\n  lift: learned\n"
            "  lift_width: [24, 40]\n  mixer_heads: [2, 16]\n")
    with pytest.raises(NasInputError, match=r"s\.yaml:7: space\.mixer_heads: 16 heads divide no width"):
        parse_space(text, "s.yaml")
    ok = parse_space(text.replace("[2, 16]", "[2, 8]"), "s.yaml")  # 8 divides 24 and 40
    assert ok.params[-1].label == "mixer_heads"


@pytest.mark.parametrize("kernel", [0, 2, -1, 4])
def test_an_even_or_nonpositive_kernel_is_refused_naming_the_key(kernel):
    spec = spec_for("conv", mixer_kernel=kernel)
    with pytest.raises(ValueError, match=f"mixer_kernel {kernel}: the conv mixer's kernel size must be an odd"):
        model_cost(spec)
    with pytest.raises(ValueError, match=f"kernel size must be odd and at least 1, found {kernel}"):
        TokenConv(4, 8, kernel)
    from nas.errors import NasInputError
    from nas.exporter import check_spec

    with pytest.raises(NasInputError, match="mixer_kernel"):
        check_spec(spec)


def test_a_space_searches_the_kernel_only_for_conv():
    from nas.spaces import parse_space

    space = parse_space("task: {dataset: digits}\nspace:\n  mixer: [conv, attention]\n  patch: 2\n"
                        "  mixer_kernel: {int: [1, 7], step: 2, when: {mixer: conv}}\n")
    kernel = next(p for p in space.params if p.label == "mixer_kernel")
    assert (kernel.kind, kernel.low, kernel.high, kernel.step, kernel.when) == ("int", 1, 7, 2, {"mixer": ("conv",)})
    conv, _ = space.freeze({"mixer": "conv", "patch": 2, "mixer_kernel": 5}, 64, 10, (8, 8))
    assert conv.mixer_kernel == 5 and build(conv).layers[0].mix.kernel == 5
    other, _ = space.freeze({"mixer": "attention", "patch": 2}, 64, 10, (8, 8))
    assert other.mixer_kernel == 3 and "mixer_kernel" not in other.used_params()


def test_the_new_mixers_in_words():
    from nas.dashboard.data import block_diagram
    from nas.spaces.stages import describe, kind, summary

    conv = spec_for("conv", patch=2, mixer_kernel=5)
    assert summary(conv) == "conv k5/p2 learned 16 | 8×2 relu layernorm"
    assert "2 x (conv (kernel 5) across the tokens" in describe(conv) and kind(conv) == "Convolutional mixer net"
    assert "conv k5 mixer + skip" in block_diagram(conv.to_json())
    lin = spec_for("linear_attention", patch=2)
    assert summary(lin).startswith("linear_attention/p2 ") and kind(lin) == "Linear-attention net"


@pytest.mark.parametrize("mixer", MIXER_NAMES)
def test_one_adamw_step_has_finite_gradients(mixer):
    torch.manual_seed(0)
    spec = spec_for(mixer, (8, 8), 2, norm="batchnorm")
    model = build(spec, fresh=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.rand(16, 64), torch.randint(0, 10, (16,))
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    opt.step()
    assert torch.isfinite(torch.nn.functional.cross_entropy(model(x), y))


def test_maxstate_trains_on_digits_and_its_state_loads_strictly():
    spec = spec_for("maxstate", (8, 8), 0, depth=1, lift_width=32, hidden_width=16)
    ev = evaluate(spec, TrainSpec(epochs=1, batch_size=64, lr=3e-3), load_task("digits"))
    assert 0.2 < ev.objectives["accuracy"] <= 1.0  # well above chance (0.1) after one epoch
    build(spec).load_state_dict(ev.state, strict=True)


def test_the_example_space_freezes_to_mixer_candidates():
    from pathlib import Path

    from nas.spaces import load_space

    space = load_space(Path(__file__).resolve().parent.parent / "examples" / "mixers.yaml")
    values = {"mixer": "attention", "patch": 4, "lift": "learned", "lift_width": 16, "hidden_width": 8, "depth": 1,
              "activation": "gelu", "norm": "layernorm", "epochs": 5, "batch_size": 64, "lr": 1e-3}
    arch, _ = space.freeze(values, 64, 10, (8, 8))
    assert build(arch).n_tokens == 4
    flat, _ = space.freeze({k: v for k, v in values.items() if k != "patch"} | {"mixer": "none"}, 64, 10, (8, 8))
    assert "patch" not in flat.used_params() and type(build(flat)).__name__ == "HourglassMLP"


def test_a_dataset_of_sequences_is_classified_step_by_step(tmp_path):
    """An npz whose X is (n, steps, features): patch 0 makes each step a token; a causal max finds the marker."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.5, size=(600, 10, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=600)
    where = rng.integers(0, 10, size=600)
    x[np.arange(600), where, 0] += 2.0 * y  # class 1: one step somewhere carries a large first feature
    np.savez(tmp_path / "seq.npz", X=x, y=y)
    task = load_task(f"npz:{tmp_path / 'seq.npz'}")
    assert task.in_shape == (10, 3) and task.d_in == 30
    assert token_grid(task.in_shape, 0, task.d_in) == (10, 3)
    torch.manual_seed(0)
    spec = ArchSpec(d_in=30, d_out=2, lift="learned", lift_width=16, hidden_width=8, depth=1, mixer="maxstate",
                    patch=0, in_shape=task.in_shape, norm="batchnorm")
    ev = evaluate(spec, TrainSpec(epochs=8, batch_size=32, lr=3e-3), task)
    assert ev.objectives["accuracy"] > 0.9


def test_samouts_layer_is_the_seeds_formula_and_counts_its_params():
    """mixer_layer: samout, the layer SamOut puts around MaxStateSuper: LayerNorm(α·FFN(mixer(h)) + (1 − α)·h),
    FFN(m) = W2(W1 m ⊙ relu(W_g m)) of width d_h, α learned from 0.5, post-LayerNorm with its affine terms."""
    import torch.nn.functional as F

    from nas.spaces.mixers import SamOutLayer
    from nas.spaces.stages import summary

    spec = ArchSpec(d_in=64, d_out=10, in_shape=(8, 8), lift="learned", lift_width=16, hidden_width=12, depth=2,
                    mixer="maxstate", patch=2, mixer_layer="samout")
    torch.manual_seed(0)
    model = build(spec)
    layers = list(model.layers)
    assert len(layers) == 2 and all(isinstance(l, SamOutLayer) for l in layers)
    layer = layers[0]
    with torch.no_grad():
        layer.alpha.fill_(0.3)
        layer.norm.weight.uniform_(0.5, 1.5)
        layer.norm.bias.uniform_(-0.2, 0.2)
        h = torch.randn(3, 16, 16)
        m = layer.mix(h)
        f = (m @ layer.w1.weight.T * torch.relu(m @ layer.wg.weight.T)) @ layer.w2.weight.T
        want = F.layer_norm(0.3 * f + 0.7 * h, (16,), layer.norm.weight, layer.norm.bias)
        assert torch.allclose(layer(h), want, atol=1e-5)
    assert model_cost(spec).params == sum(p.numel() for p in model.parameters())
    plain = model_cost(ArchSpec(**{**spec.to_json(), "mixer_layer": "nas"})).params
    assert model_cost(spec).params - plain == 2 * (16 * 12 + 2 * 16 + 1)  # W_g, γ, β and α per layer
    # bandwidth by hand, one layer of T = 16 tokens of d = 16, hidden 12: the mixer's own, W1, W_g, W2 read
    # once (3·16·12), γ, β, α; per token W1 and W_g each read 16 and write 12, W2 reads 12 and writes 16,
    # the blend reads h (16)
    mix = layer.mix.nas_cost(4)
    own = layer.nas_cost(4)
    assert own.weight_bytes - mix.weight_bytes == (3 * 16 * 12 + 2 * 16 + 1) * 4
    assert own.act_bytes - mix.act_bytes == 16 * (2 * (16 + 12) + (12 + 16) + 16) * 4
    # against nas's layer with norm none (per token: W1 16 -> 12, W2 12 -> 16, the block's skip 16, the
    # mixer's skip 16): W_g, γ, β, α more, and 12 values more a token
    flat = dict(spec.to_json(), norm="none")
    samout_cost, nas_cost = model_cost(ArchSpec(**flat)), model_cost(ArchSpec(**{**flat, "mixer_layer": "nas"}))
    assert samout_cost.weight_bytes - nas_cost.weight_bytes == 2 * (16 * 12 + 2 * 16 + 1) * 4
    assert samout_cost.act_bytes - nas_cost.act_bytes == 2 * 16 * 12 * 4
    assert "samout layer" in summary(spec)
    with pytest.raises(ValueError, match="samout.*fpe_alpha 2"):
        build(ArchSpec(**{**spec.to_json(), "fpe_alpha": 2}))
