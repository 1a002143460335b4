"""Fixed Parameter Expansion (nas.spaces.fpe) and the sat dataset (nas.evaluators.sat)."""

import numpy as np
import pytest
import torch

from nas.evaluators.datasets import load_task
from nas.evaluators.sat import formula, generate
from nas.evaluators.train import evaluate
from nas.spaces import ArchSpec, TrainSpec, build, model_cost
from nas.spaces.blocks import Cost
from nas.spaces.fpe import FPEPair


def dense_pair(split, d_z=12, d_h=5, alpha=3, seed=0):
    torch.manual_seed(seed)
    return FPEPair(d_z, d_h, "relu", alpha, split)


@pytest.mark.parametrize("split", ["random", "feature"])
def test_split_keeps_w1_non_zeros_and_sums_to_the_dense_pre_activation(split):
    pair = dense_pair(split)
    x = torch.randn(7, 12)
    dense_pre = x @ pair.w1.detach().t()  # (7, d_h)
    w1_nnz = int((pair.w1 != 0).sum())
    pair.expand(prune=False)
    assert pair.w1.shape == (15, 12) and pair.w2.shape == (12, 15)
    assert int(pair.mask1.sum()) == w1_nnz == int((pair.w1 != 0).sum())
    # the children's masks of one parent are disjoint and cover every input
    assert torch.equal(pair.mask1.view(5, 3, 12).sum(1), torch.ones(5, 12))
    children_pre = (x @ (pair.w1 * pair.mask1).detach().t()).view(7, 5, 3)  # child k of neuron i: row i·α + k
    torch.testing.assert_close(children_pre.sum(2), dense_pre)
    # only the pre-activations add up: the copied output columns sum act(part) over the children, and
    # relu(a) + relu(b) != relu(a + b), so the expanded pair is not the dense function (SEEDS.md, FPE)
    assert torch.equal(pair.w2.view(12, 5, 3), pair.w2[:, ::3].unsqueeze(2).expand(12, 5, 3))


@pytest.mark.parametrize("split", ["random", "feature"])
def test_pruning_restores_the_dense_non_zero_count_and_masks_stay_fixed(split):
    pair = dense_pair(split)
    pair.expand()
    assert int(pair.mask1.sum() + pair.mask2.sum()) == 2 * 12 * 5 == pair.nnz
    masks = pair.mask1.clone(), pair.mask2.clone()
    opt = torch.optim.AdamW(pair.parameters(), lr=0.1, weight_decay=0.01)
    for _ in range(3):
        loss = pair(torch.randn(16, 12)).square().mean()
        opt.zero_grad()
        loss.backward()
        assert not pair.w1.grad[pair.mask1 == 0].any() and not pair.w2.grad[pair.mask2 == 0].any()
        opt.step()
    assert torch.equal(pair.mask1, masks[0]) and torch.equal(pair.mask2, masks[1])
    assert not pair.w1[pair.mask1 == 0].any() and not pair.w2[pair.mask2 == 0].any()
    assert int((pair.w1 != 0).sum() + (pair.w2 != 0).sum()) <= pair.nnz


def test_feature_split_gives_every_neuron_the_same_grouping():
    pair = dense_pair("feature")
    pair.expand(prune=False)
    groups = pair.mask1.view(5, 3, 12).argmax(1)  # (d_h, d_z): the child of each input
    assert (groups == groups[0]).all()


def test_expands_once_at_the_given_epoch():
    pair = FPEPair(8, 4, "relu", 2, "random", at=0.5)
    assert [pair.nas_before_epoch(e, 4) for e in range(1, 5)] == [False, False, True, False]
    assert pair.expanded and pair.w1.shape == (8, 8)


def test_cost_is_the_expanded_layout_computed_by_hand():
    # d_z = 6, d_h = 4, α = 2, float32: 48 non-zeros × (4 bytes + a 2-byte index),
    # row pointers (8 + 1) × 4 for W1 and (6 + 1) × 4 for W2; activations (6 + 8) × 4 per layer
    expected = Cost(params=48, weight_bytes=48 * 6 + 9 * 4 + 7 * 4, act_bytes=2 * (6 + 8) * 4)
    dense = FPEPair(6, 4, "relu", 2)
    assert dense.nas_cost(4) == expected
    with torch.device("meta"):
        deployed = FPEPair(6, 4, "relu", 2, expanded=True)
    assert deployed.nas_cost(4) == expected


def test_both_splits_cost_the_same_csr_layout_and_wide_layers_need_4_byte_indices():
    assert FPEPair(6, 4, "relu", 2, "feature").nas_cost(4) == FPEPair(6, 4, "relu", 2, "random").nas_cost(4)
    with torch.device("meta"):
        wide = FPEPair(40000, 2, "relu", 2, expanded=True).nas_cost(4)  # inputs past int16's 32,767
    nnz = 2 * (40000 + 40000)
    assert wide.weight_bytes == nnz * (4 + 4) + (4 + 1) * 4 + (40000 + 1) * 4


def test_model_cost_on_meta_for_an_fpe_spec():
    spec = ArchSpec(d_in=64, d_out=10, hidden_width=16, depth=2, fpe_alpha=4, fpe_split="feature", norm="none")
    cost = model_cost(spec)
    per_block = FPEPair(64, 16, "relu", 4, "feature").nas_cost(4) + Cost(act_bytes=64 * 4)
    head = Cost(params=640, weight_bytes=640 * 4, act_bytes=74 * 4)
    assert cost == per_block + per_block + head
    assert cost.params == model_cost(ArchSpec(d_in=64, d_out=10, hidden_width=16, depth=2, norm="none")).params


def test_training_expands_and_the_state_loads_into_the_deployed_model():
    task = load_task("digits")
    spec = ArchSpec(d_in=task.d_in, d_out=task.d_out, hidden_width=8, depth=1, fpe_alpha=2, fpe_split="feature",
                    fpe_at=0.5)
    result = evaluate(spec, TrainSpec(epochs=2, batch_size=64, lr=1e-2), task)
    assert result.objectives["accuracy"] > 0.5 and len(result.curve) == 2
    deployed = build(spec)
    deployed.load_state_dict(result.state, strict=True)
    pair = deployed.blocks[0].ffn
    assert pair.w1.shape == (16, 64) and int(pair.mask1.sum() + pair.mask2.sum()) == 2 * 64 * 8


def test_sat_is_balanced_deterministic_and_labelled_by_its_formula():
    x, y = generate(16, 8, 3, 500, seed=3)
    assert x.shape == (500, 16) and x.dtype == np.float32 and set(np.unique(x)) <= {0.0, 1.0}
    assert y.dtype == np.int64 and int(y.sum()) == 250
    x2, y2 = generate(16, 8, 3, 500, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, generate(16, 8, 3, 500, seed=4)[0])
    f = formula(16, 8, 3, seed=3)
    assert f.variables.shape == (8, 3) and all(len(set(c)) == 3 for c in f.variables.tolist())
    assert np.array_equal(f(x).astype(np.int64), y)
    # by hand: a clause is the AND of its literals, the label the OR of the clauses
    manual = [any(all((row[v] > 0.5) != neg for v, neg in zip(vs, ns)) for vs, ns in zip(f.variables, f.negated))
              for row in x]
    assert np.array_equal(np.array(manual, dtype=np.int64), y)
