"""Structured forms of W1 and W2 (space key ``weights``): lowrank, circulant, monarch (nas.spaces.structured)."""

import pytest
import torch
import torch.nn.functional as F

from nas.errors import NasInputError
from nas.exporter import check_spec
from nas.spaces import WEIGHTS, ArchSpec, bandwidth_bytes, build, model_cost, parse_space
from nas.spaces.arch import WEIGHT_KEYS
from nas.spaces.stages import describe, summary
from nas.spaces.structured import CirculantLinear, LowRankLinear, MonarchLinear, StructuredPair


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------ each form is the dense matrix of its factors
def circulant_matrix(layer: CirculantLinear) -> torch.Tensor:
    """W (d_out, d_in): the grid of circulant blocks C(w)[r, s] = w[(r − s) mod c], padded side cut off."""
    c, q, p = layer.c, layer.q, layer.p
    r, s = torch.arange(c)[:, None], torch.arange(c)[None, :]
    full = torch.zeros(q * c, p * c, dtype=layer.weight.dtype)
    for i in range(q):
        for j in range(p):
            full[i * c:(i + 1) * c, j * c:(j + 1) * c] = layer.weight[i, j][(r - s) % c]
    return full[: layer.d_out, : layer.d_in]


def monarch_matrix(layer: MonarchLinear) -> torch.Tensor:
    """W = L P R: block-diagonal R (m, d_in) and L (d_out, m), P moving entry j of chunk i to position j·b + i."""
    b, m = layer.blocks, layer.m
    perm = torch.zeros(m, m, dtype=layer.r.dtype)
    for i in range(b):
        for j in range(m // b):
            perm[j * b + i, i * (m // b) + j] = 1
    return torch.block_diag(*layer.l) @ perm @ torch.block_diag(*layer.r)


MATRICES = {  # name -> (a layer of shape d_in -> d_out, its dense matrix)
    "lowrank": (lambda d_in, d_out, k: LowRankLinear(d_in, d_out, k), lambda m: m.u.weight @ m.v.weight),
    "circulant": (lambda d_in, d_out, k: CirculantLinear(d_in, d_out), circulant_matrix),
    "monarch": (lambda d_in, d_out, k: MonarchLinear(d_in, d_out, k), monarch_matrix),
}
SHAPES = {  # name -> (d_in, d_out, rank or blocks): square, wide, narrow; circulant with padding; monarch b² > m
    "lowrank": [(16, 8, 3), (8, 16, 8), (12, 12, 1), (7, 5, 5)],
    "circulant": [(16, 8, 0), (8, 16, 0), (12, 12, 0), (12, 8, 0), (8, 20, 0), (5, 13, 0)],
    "monarch": [(16, 8, 2), (8, 16, 4), (12, 12, 3), (16, 16, 4), (12, 6, 3), (24, 8, 1)],
}
CASES = [(name, *shape) for name, shapes in SHAPES.items() for shape in shapes]


@pytest.mark.parametrize("name, d_in, d_out, k", CASES, ids=[f"{n}-{a}x{b}-{k}" for n, a, b, k in CASES])
def test_every_form_is_the_dense_matrix_of_its_factors(name, d_in, d_out, k):
    make, matrix = MATRICES[name]
    torch.manual_seed(d_in * 100 + d_out)
    layer = make(d_in, d_out, k).double()
    x = torch.randn(5, 3, d_in, dtype=torch.float64)  # any leading shape
    w = matrix(layer)
    assert w.shape == (d_out, d_in)
    torch.testing.assert_close(layer(x), x @ w.T, rtol=1e-12, atol=1e-12)
    assert layer.nas_cost(4).params == sum(p.numel() for p in layer.parameters())
    (layer(x) ** 2).sum().backward()
    assert all(p.grad is not None and (p.grad != 0).all() for p in layer.parameters())  # every stored value is used


def test_monarch_mixes_every_input_into_every_output_when_b_squared_fits():
    torch.manual_seed(0)
    assert (monarch_matrix(MonarchLinear(16, 16, 4)) != 0).all()  # b² = m: the Monarch case
    assert (monarch_matrix(MonarchLinear(32, 8, 2)) != 0).all()
    sparse = monarch_matrix(MonarchLinear(12, 6, 3))  # b² = 9 > m = 6: each output sees only some input chunks
    assert (sparse == 0).any() and (sparse != 0).any()


def test_circulant_counts_its_vectors_and_pads_the_longer_side():
    assert CirculantLinear(64, 16).weight.shape == (1, 4, 16)  # c = 16: 4 input blocks
    assert CirculantLinear(16, 64).weight.shape == (4, 1, 16)
    assert CirculantLinear(64, 24).weight.shape == (1, 3, 24)  # 64 inputs padded to 72
    assert CirculantLinear(20, 8).weight.shape == (1, 3, 8)


@pytest.mark.parametrize("name", [n for n in WEIGHTS.names() if n != "dense"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_form_keeps_shape_and_dtype(name, dtype):
    layer = MATRICES[name][0](12, 8, 2).to(dtype)
    x = torch.randn(4, 12).to(dtype)
    y = layer(x)
    assert y.shape == (4, 8) and y.dtype == dtype and torch.isfinite(y).all()
    ref = MATRICES[name][0](12, 8, 2)
    ref.load_state_dict({k: v.float() for k, v in layer.state_dict().items()})
    torch.testing.assert_close(y.float(), ref(x.float()), rtol=5e-2, atol=5e-2)


# ------------------------------------------------------------ exact params and bandwidth, by hand
def _spec(weights: str, **kw) -> ArchSpec:
    # learned lift 12 -> 16, one block 16 -> 8 -> 16 (no norm), head 16 -> 3
    return ArchSpec(d_in=12, d_out=3, lift="learned", lift_width=16, hidden_width=8, depth=1, norm="none",
                    weights=weights, **kw)


F32 = 4
OUTSIDE_PARAMS = 12 * 16 + 16 * 3  # the lift and the head
OUTSIDE_BYTES = (12 * 16 + 12 + 16) * F32 + 16 * F32 + (16 * 3 + 16 + 3) * F32  # lift, residual add, head


@pytest.mark.parametrize("weights, params, act", [
    # dense: W1 16·8, W2 8·16; each reads its input and writes its output
    ("dense", 16 * 8 + 8 * 16, (16 + 8) + (8 + 16)),
    # lowrank rank 4: W1 = U (8×4) V (4×16), W2 = U (16×4) V (4×8); two layers each, the 4-wide middle written
    # and read back
    ("lowrank", (4 * 16 + 8 * 4) + (4 * 8 + 16 * 4), (16 + 4) + (4 + 8) + (8 + 4) + (4 + 16)),
    # circulant: c = 8; W1 two 8-vectors (16 inputs in 2 blocks), W2 two (16 outputs in 2 blocks); FFTs in-layer
    ("circulant", 2 * 8 + 2 * 8, (16 + 8) + (8 + 16)),
    # monarch 2 blocks, m = 8: W1 R 2·(4×8), L 2·(4×4); W2 R 2·(4×4), L 2·(8×4); two layers each, m-wide middle
    ("monarch", (2 * 4 * 8 + 2 * 4 * 4) + (2 * 4 * 4 + 2 * 8 * 4), (16 + 8) + (8 + 8) + (8 + 8) + (8 + 16)),
])
def test_params_and_bandwidth_hand_counted(weights, params, act):
    spec = _spec(weights, **({"rank": 4} if weights == "lowrank" else {"monarch_blocks": 2} if weights == "monarch"
                             else {}))
    cost = model_cost(spec)
    assert cost.params == OUTSIDE_PARAMS + params
    assert bandwidth_bytes(cost) == OUTSIDE_BYTES + params * F32 + act * F32  # every stored value read once
    assert sum(p.numel() for p in build(spec).parameters()) == cost.params  # the model agrees with its report


def test_a_mixture_of_structured_experts_counts_every_expert_and_moves_top_k():
    spec = _spec("lowrank", rank=4, moe_experts=3, moe_top_k=2)
    expert_params = (4 * 16 + 8 * 4) + (4 * 8 + 16 * 4)
    expert_act = (16 + 4) + (4 + 8) + (8 + 4) + (4 + 16)
    cost = model_cost(spec)
    assert cost.params == OUTSIDE_PARAMS + 16 * 3 + 3 * expert_params  # the router 16 -> 3 and all 3 experts
    router = 16 * 3 * F32 + (16 + 3) * F32
    assert bandwidth_bytes(cost) == OUTSIDE_BYTES + router + 2 * (expert_params + expert_act) * F32
    model = build(spec)
    assert all(isinstance(e, StructuredPair) for e in model.blocks[0].ffn.experts)
    assert sum(p.numel() for p in model.parameters()) == cost.params


# ------------------------------------------------------------ every form builds and trains
@pytest.mark.parametrize("weights", WEIGHTS.names())
@pytest.mark.parametrize("extra", [{}, {"moe_experts": 2, "moe_top_k": 1},
                                   {"mixer": "token_mlp", "patch": 2, "in_shape": (4, 4), "d_in": 16}],
                         ids=["flat", "moe", "mixer"])
def test_every_form_trains_a_step_alone_in_experts_and_behind_a_mixer(weights, extra):
    torch.manual_seed(0)
    spec = ArchSpec(**{"d_in": 12, "d_out": 4, "lift": "learned", "lift_width": 16, "hidden_width": 8, "depth": 2,
                       "weights": weights, "rank": 3, "monarch_blocks": 4, **extra})
    model = build(spec, fresh=True)
    x, y = torch.randn(16, spec.d_in), torch.randint(0, 4, (16,))
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    torch.optim.AdamW(model.parameters(), lr=1e-2).step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert sum(p.numel() for p in build(spec).parameters()) == model_cost(spec).params


# ------------------------------------------------------------ ids, JSON, words
def test_dense_candidates_keep_their_ids_and_json():
    dense = ArchSpec(d_in=64, d_out=10, lift="learned", lift_width=32, hidden_width=16, depth=2)
    assert dense.arch_id == "fa10f6a193d71f77"  # the id nas gave it before weights existed
    mixed = ArchSpec(d_in=64, d_out=10, in_shape=(8, 8), mixer="maxstate", patch=2, hidden_width=16, moe_experts=2,
                     fpe_alpha=2)
    assert mixed.arch_id == "15a951a2d6a3b8d0"
    for spec in (dense, mixed):
        assert not {"weights", "rank", "monarch_blocks"} & (set(spec.to_json()) | set(spec.used_params()))
    assert ArchSpec(**{**dense.to_json(), "weights": "dense", "rank": 3, "monarch_blocks": 2}) == dense


def test_only_the_forms_own_key_enters_its_id():
    base = dict(d_in=64, d_out=10, lift="learned", lift_width=32, hidden_width=16)
    low = ArchSpec(**base, weights="lowrank", rank=4, monarch_blocks=8)
    assert low == ArchSpec(**base, weights="lowrank", rank=4)  # monarch_blocks: unused, normalised away
    assert low.arch_id != ArchSpec(**base, weights="lowrank", rank=5).arch_id
    assert set(low.to_json()) >= {"weights", "rank"} and "monarch_blocks" not in low.to_json()
    circ = ArchSpec(**base, weights="circulant", rank=4)
    assert "rank" not in circ.used_params() and circ.arch_id == ArchSpec(**base, weights="circulant").arch_id
    mon = ArchSpec(**base, weights="monarch", monarch_blocks=2)
    assert ArchSpec.from_json(mon.to_json()) == mon and mon.arch_id != low.arch_id


def test_the_form_shows_in_the_words():
    spec = ArchSpec(d_in=64, d_out=10, lift="learned", lift_width=32, hidden_width=16, weights="lowrank", rank=4)
    assert summary(spec) == "learned 32 | 16×2 relu batchnorm · lowrank r4"
    assert "low-rank W1 and W2 (rank 4)" in describe(spec)
    assert "block-circulant W1 and W2 (by FFT)" in describe(ArchSpec(**{**spec.to_json(), "weights": "circulant"}))
    mon = ArchSpec(**{**spec.to_json(), "weights": "monarch", "monarch_blocks": 2})
    assert "monarch W1 and W2 (2 blocks)" in describe(mon) and summary(mon).endswith("· monarch 2 blocks")
    from nas.dashboard.data import block_diagram, families

    assert "lowrank r4: W1 32→16" in block_diagram(spec.to_json())
    assert families(mon.to_json())["weights"] == "monarch" and families({"d_in": 4, "d_out": 2})["weights"] == "dense"


# ------------------------------------------------------------ bad inputs
def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"needs 1 <= rank <= 8 \(the narrower width\), not 9"):
        LowRankLinear(16, 8, 9)
    with pytest.raises(ValueError, match="not 0"):
        LowRankLinear(16, 8, 0)
    with pytest.raises(ValueError, match="a number of blocks that divides both widths, not 3"):
        MonarchLinear(16, 8, 3)
    with pytest.raises(KeyError, match=r"unknown weight form 'lowrnk' \(did you mean 'lowrank'\?\)"):
        WEIGHTS.get("lowrnk")


@pytest.mark.parametrize("changes, expect", [
    ({"weights": "lowrank", "rank": 17}, r"rank 17 of the lowrank W1 \(d_z -> d_h\) and W2 must be in "
                                         r"\[1, min\(d_z, d_h\)\] = \[1, 16\] \(d_z 32, hidden_width 16\)"),
    ({"weights": "monarch", "monarch_blocks": 3}, r"monarch_blocks 3 must divide both widths of W1 and W2: d_z 32 "
                                                  r"and hidden_width 16"),
    ({"weights": "circulant", "fpe_alpha": 2}, r"weights circulant does not compose with FPE \(fpe_alpha 2\)"),
], ids=["rank", "blocks", "fpe"])
def test_a_candidate_that_cannot_be_built_says_which_keys(changes, expect):
    spec = ArchSpec(d_in=64, d_out=10, lift="learned", lift_width=32, hidden_width=16, **changes)
    with pytest.raises(ValueError, match=expect):  # the runner records such a candidate as infeasible
        model_cost(spec)
    with pytest.raises(NasInputError, match="cannot export: " + expect):
        check_spec(spec)
    with pytest.raises(NasInputError, match=r"cannot export: unknown weight form 'toeplitz'"):
        check_spec(ArchSpec(d_in=4, d_out=2, weights="toeplitz"))


def _space(body: str):
    return parse_space("task: {dataset: digits}\nspace:\n" + body, "s.yaml")


def test_a_space_that_can_sample_both_fpe_and_a_form_parses_and_such_candidates_are_infeasible():
    space = _space("  hidden_width: 8\n  weights: [dense, lowrank]\n  rank: 4\n  fpe_alpha: [1, 2]\n")
    space.check_task(64, (8, 8))
    arch, _ = space.freeze({"hidden_width": 8, "weights": "lowrank", "rank": 4, "fpe_alpha": 2}, 64, 10)
    with pytest.raises(ValueError, match="does not compose with FPE"):
        model_cost(arch)
    # a condition may keep them apart: only where every candidate would have both is the space refused
    _space("  hidden_width: [8, 16]\n  weights: lowrank\n  rank: 4\n"
           "  fpe_alpha: {value: 2, when: {hidden_width: [16]}}\n")


@pytest.mark.parametrize("body, expect", [
    ("  hidden_width: 8\n  weights: [lowrank, monarch]\n  fpe_alpha: 2\n",
     r"s.yaml:4: space.weights: a structured weight form does not compose with FPE"),
    ("  hidden_width: 8\n  weights: [lowrank, monarch]\n  fpe_alpha: 2\n  moe_experts: 2\n",
     r"every candidate of this space would have both"),
], ids=["fpe", "fpe-and-moe"])
def test_a_space_whose_every_candidate_has_fpe_and_a_form_is_an_input_error(body, expect):
    with pytest.raises(NasInputError, match=expect):
        _space(body)


@pytest.mark.parametrize("body, expect", [
    ("  lift: learned\n  lift_width: [16, 32]\n  hidden_width: {int: [4, 12]}\n  weights: [dense, lowrank]\n"
     "  rank: [4, 13]\n",
     r"s.yaml:7: space.rank: rank 13 is above min\(d_z, hidden_width\) of every candidate this space can sample "
     r"\(at most 12: d_z ≤ 32, hidden_width ≤ 12\)"),
    ("  hidden_width: 100\n  weights: lowrank\n  rank: {int: [2, 65]}\n",  # lift none: d_z = d_in = 64
     r"space.rank: rank 65 is above .* \(at most 64: d_z ≤ 64, hidden_width ≤ 100\)"),
    ("  hidden_width: 8\n  weights: [circulant, lowrank]\n",
     r"s.yaml:4: space.weights \(lowrank with the default rank 16\): rank 16 is above"),
    ("  lift: learned\n  lift_width: [24, 36]\n  hidden_width: [6, 9]\n  weights: monarch\n  monarch_blocks: [3, 4]\n",
     r"s.yaml:7: space.monarch_blocks: monarch_blocks 4 divides none of the widths it must divide: d_z \[24, 36\], "
     r"hidden_width \[6, 9\]"),
], ids=["rank-choice", "rank-range", "rank-default", "blocks"])
def test_a_listed_value_that_fits_no_width_is_an_input_error(body, expect):
    space = _space(body)
    with pytest.raises(NasInputError, match=expect):
        space.check_task(64, (8, 8))


def test_every_form_has_its_key_in_the_space_vocabulary():
    from nas.spaces.schema import _KNOWN

    assert "weights" in _KNOWN["space"] and set(WEIGHT_KEYS.values()) <= set(_KNOWN["space"])
    assert set(WEIGHT_KEYS) < set(WEIGHTS.names()) and WEIGHTS.get("dense").__name__ == "Linear"
