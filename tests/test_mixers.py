"""Token mixers: tokenisation, the three mixers' defining properties, their costs, one training run."""

import math
import re

import pytest
import torch

from nas.evaluators.datasets import load_task
from nas.evaluators.train import evaluate
from nas.spaces import ArchSpec, TrainSpec, bandwidth_bytes, build, model_cost
from nas.spaces.blocks import LIFTS, MIXERS
from nas.spaces.mixers import Attention, MaxState, Tokens, TokenMLP, token_grid

MIXER_NAMES = [m for m in MIXERS.names() if m != "none"]
SHAPES = [((8, 8), 0, 8), ((8, 8), 2, 16), ((8, 8), 4, 4), ((12,), 3, 4)]  # in_shape, patch, tokens


def spec_for(mixer, in_shape=(8, 8), patch=0, **kw):
    arch = dict(lift="learned", lift_width=16, hidden_width=8, depth=2, norm="layernorm")
    arch.update(kw)
    return ArchSpec(d_in=math.prod(in_shape), d_out=10, mixer=mixer, patch=patch, in_shape=in_shape, **arch)


def test_every_mixer_is_registered():
    assert set(MIXER_NAMES) == {"token_mlp", "maxstate", "attention"}


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
    ((2, 3, 4), 2, "1-D or 2-D"),
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
    assert second["maxstate"] == 0  # exactly affine in T
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
