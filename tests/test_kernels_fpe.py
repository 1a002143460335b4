"""The FPE sparse layer's Triton kernels (``nas.kernels.fpe``) against the masked dense product,
on CPU through Triton's interpreter (as ``tests/test_kernels.py``).

Forward output and the gradients of x and of the dense weight (through the
mask), odd shapes (not multiples of the tiles), masks with empty rows and
columns, float32 and bfloat16, the launchers' outputs poisoned with NaN;
the layout itself; and an expanded ``FPEPair`` giving the same output and
gradients with NAS_KERNELS=triton and =torch.
"""

from __future__ import annotations

import math

import pytest
import torch

from kernel_setup import DEVICE, needs_triton, poisoned  # noqa: F401 (poisoned: a fixture); first, see there
from nas.kernels.fpe import (
    ell_dense, ell_layout, ell_linear, ell_linear_reference, ell_values, grouped_forward, grouped_layout,
    grouped_values, masked_linear, masked_linear_reference,
)
from nas.spaces.fpe import FPEPair

# float32: only the order of the sums differs; bfloat16: the reference's product rounds differently
# (the kernel accumulates in float32 and rounds once)
TOL = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (2e-2, 3e-2)}


def _mask(r: int, c: int, density: float) -> torch.Tensor:
    mask = (torch.rand(r, c) < density).float()
    if r > 2 and c > 2:
        mask[1] = 0  # an empty output row
        mask[:, 2] = 0  # an input no row uses
        mask[0] = 1  # a full row: the longest
    return mask.to(DEVICE)


def test_layout_holds_exactly_the_non_zeros():
    torch.manual_seed(0)
    mask = _mask(23, 41, 0.3)
    lay = ell_layout(mask)
    assert lay.cols.dtype == torch.int16 and lay.nnz == int(mask.sum()) and lay.width == 41
    assert lay.counts.tolist() == mask.sum(1).int().tolist()
    w = torch.randn(23, 41, device=DEVICE)
    vals = ell_values(w, lay)
    assert torch.equal(ell_dense(vals, lay), w * mask)
    for r in range(23):  # each row's columns in increasing order, then padding
        n = int(lay.counts[r])
        assert torch.equal(lay.cols[r, :n].long(), mask[r].nonzero().flatten())
        assert not vals[r, n:].any()
    # the transposed view points at the same values
    flat = vals.flatten()
    for c in range(41):
        n = int(lay.tcounts[c])
        rows = lay.tcols[c, :n].long()
        assert torch.equal(rows, mask[:, c].nonzero().flatten())
        assert torch.equal(flat[lay.tpos[c, :n].long()], w[rows, c])


def test_layout_of_an_all_zero_mask():
    lay = ell_layout(torch.zeros(5, 3, device=DEVICE))
    assert lay.nnz == 0 and lay.width == 1 and not lay.counts.any()


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("lead,r,c,density", [((1,), 37, 45, 0.5), ((19,), 70, 33, 0.25), ((3, 5), 9, 130, 0.6),
                                              ((40,), 66, 17, 1.0)])
def test_masked_linear_kernel_matches_reference(poisoned, dtype, lead, r, c, density):
    """Forward, grad_x and grad of the dense weight (zero off the mask), against x (W ⊙ M)ᵀ."""
    mask = _mask(r, c, density).to(dtype)
    w = torch.randn(r, c, device=DEVICE).to(dtype).requires_grad_()
    x = torch.randn(*lead, c, device=DEVICE).to(dtype).requires_grad_()
    grad = torch.randn(*lead, r, device=DEVICE).to(dtype)
    y = masked_linear(x, w, mask)
    gx, gw = torch.autograd.grad(y, (x, w), grad)
    # the reference in float32 on the same operands, rounded once (what the kernel does)
    ref = [t.detach().float().requires_grad_() for t in (x, w)]
    y_ref = masked_linear_reference(ref[0], ref[1], mask.float())
    gx_ref, gw_ref = torch.autograd.grad(y_ref, ref, grad.float())
    rtol, atol = TOL[dtype]
    for got, want in ((y, y_ref), (gx, gx_ref), (gw, gw_ref)):
        assert got.dtype == dtype and got.shape == want.shape
        torch.testing.assert_close(got.float(), want, rtol=rtol, atol=atol * max(1.0, math.sqrt(c / 16)))
    assert not gw[mask == 0].any()


@needs_triton
def test_ell_linear_kernel_gradient_of_the_values(poisoned):
    """The autograd Function's own gradients (x and vals) against the scatter-to-dense reference."""
    torch.manual_seed(1)
    mask = _mask(29, 51, 0.35)
    lay = ell_layout(mask)
    vals = ell_values(torch.randn(29, 51, device=DEVICE), lay).requires_grad_()
    x = torch.randn(13, 51, device=DEVICE, requires_grad=True)
    grad = torch.randn(13, 29, device=DEVICE)
    got = torch.autograd.grad(ell_linear(x, vals, lay), (x, vals), grad)
    want = torch.autograd.grad(ell_linear_reference(x, vals, lay), (x, vals), grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    valid = torch.arange(lay.width, device=DEVICE) < lay.counts[:, None]
    assert not got[1][~valid].any()  # padding gets exactly 0


@needs_triton
def test_wide_layers_use_int32_indices(poisoned):
    """Past 32767 columns (or rows) the indices are int32; the kernels read either."""
    mask = torch.zeros(3, 40000, device=DEVICE)
    mask[0, [1, 33000, 39999]] = 1
    mask[2, [0, 32767, 32768]] = 1
    lay = ell_layout(mask)
    assert lay.cols.dtype == torch.int32 and lay.tcols.dtype == torch.int16
    assert ell_layout(mask.t().contiguous()).tcols.dtype == torch.int32
    w = torch.randn(3, 40000, device=DEVICE, requires_grad=True)
    x = torch.randn(2, 40000, device=DEVICE, requires_grad=True)
    grad = torch.randn(2, 3, device=DEVICE)
    got = torch.autograd.grad(masked_linear(x, w, mask), (x, w), grad)
    want = torch.autograd.grad(masked_linear_reference(x, w, mask), (x, w), grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@needs_triton
def test_layout_is_cached_and_rebuilt_when_the_mask_changes(monkeypatch):
    import nas.kernels.fpe as fpe

    monkeypatch.setenv("NAS_KERNELS", "triton")
    built = []
    real = fpe.ell_layout
    monkeypatch.setattr(fpe, "ell_layout", lambda m: built.append(1) or real(m))
    mask = _mask(11, 7, 0.5)
    w, x = torch.randn(11, 7, device=DEVICE), torch.randn(3, 7, device=DEVICE)
    masked_linear(x, w, mask)
    masked_linear(x, w, mask)
    assert len(built) == 1
    mask[3, 4] = 1 - mask[3, 4]  # in place: a new version
    torch.testing.assert_close(masked_linear(x, w, mask), masked_linear_reference(x, w, mask))
    assert len(built) == 2


@needs_triton
@pytest.mark.parametrize("alpha,split", [(2, "random"), (4, "random"), (3, "feature")])
def test_fpe_pair_same_with_kernel_and_reference(monkeypatch, alpha, split):
    """An expanded FPEPair: NAS_KERNELS=triton gives =torch's output and gradients; parameters unchanged."""
    torch.manual_seed(0)
    pair = FPEPair(21, 6, "prelu", alpha, split, d_out=5).to(DEVICE)
    pair.expand()
    names = [n for n, _ in pair.named_parameters()]
    x = torch.randn(9, 21, device=DEVICE)
    out = {}
    for mode in ("torch", "triton"):
        monkeypatch.setenv("NAS_KERNELS", mode)
        pair.zero_grad()
        y = pair(x)
        y.square().sum().backward()
        out[mode] = (y.detach(), [p.grad.clone() for p in pair.parameters()])
    assert [n for n, _ in pair.named_parameters()] == names and set(pair.state_dict()) >= {"mask1", "mask2"}
    torch.testing.assert_close(out["triton"][0], out["torch"][0], rtol=1e-5, atol=1e-5)
    for got, want in zip(out["triton"][1], out["torch"][1]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert not pair.w1.grad[pair.mask1 == 0].any() and not pair.w2.grad[pair.mask2 == 0].any()


def _feature_mask(d_h: int, d_z: int, alpha: int, prune: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask (α·d_h, d_z), groups (d_z,)) of a feature split: child k of every neuron reads group k;
    ``prune``: the fraction of kept entries then zeroed, as FPE's pruning does."""
    groups = torch.randint(alpha, (d_z,))
    groups[: min(alpha, d_z)] = torch.arange(min(alpha, d_z))  # every group used...
    if d_z > alpha:
        groups[-1] = alpha - 1
    mask = (groups[None, None, :] == torch.arange(alpha)[None, :, None]).expand(d_h, alpha, d_z)
    mask = mask.reshape(alpha * d_h, d_z).float()
    mask = mask * (torch.rand_like(mask) >= prune)
    return mask.to(DEVICE), groups


def test_grouped_layout_is_found_for_a_feature_split_and_refused_otherwise():
    torch.manual_seed(3)
    mask, groups = _feature_mask(5, 23, 3)
    mask[:, 4] = 0  # an input no child uses is left out
    lay = grouped_layout(mask, 3)
    assert lay is not None and lay.groups == 3 and lay.shape == (15, 23)
    assert sorted(lay.perm.tolist()) == [c for c in range(23) if c != 4]
    for k in range(3):
        cols = lay.perm[lay.offsets[k]:lay.offsets[k + 1]].tolist()
        assert all(int(groups[c]) == k for c in cols)
    random = (torch.randint(3, (5, 23)).unsqueeze(1) == torch.arange(3).view(1, 3, 1)).reshape(15, 23).float()
    assert grouped_layout(random.to(DEVICE), 3) is None  # neurons disagree on the grouping
    assert grouped_layout(mask, 2) is None  # 15 rows are not pairs of children
    assert grouped_layout(torch.ones(6, 4, device=DEVICE), 2) is None  # W2-like: every child reads every input


@pytest.mark.parametrize("lead,d_h,d_z,alpha,prune", [((1,), 7, 45, 2, 0.0), ((19,), 6, 33, 4, 0.3),
                                                      ((3, 5), 9, 130, 3, 0.1), ((2,), 4, 5, 4, 0.0),
                                                      ((3,), 5, 3, 4, 0.0)])  # α > d_z: an empty group
def test_grouped_product_matches_the_masked_one(lead, d_h, d_z, alpha, prune):
    """Forward, grad_x and the dense weight's gradient (0 off the mask) of the grouped dense products."""
    torch.manual_seed(4)
    mask, _ = _feature_mask(d_h, d_z, alpha, prune)
    lay = grouped_layout(mask, alpha)
    assert lay is not None
    w = torch.randn(alpha * d_h, d_z, device=DEVICE, requires_grad=True)
    x = torch.randn(*lead, d_z, device=DEVICE, requires_grad=True)
    grad = torch.randn(*lead, alpha * d_h, device=DEVICE)
    if prune == 0:  # the other groups' columns are never read: NaN there cannot reach the output
        poisoned_w = torch.where(mask != 0, w.detach(), torch.full_like(w, math.nan))
        assert torch.isfinite(grouped_forward(x, grouped_values(poisoned_w, mask, lay), lay)).all()
    y = grouped_forward(x, grouped_values(w, mask, lay), lay)
    got = torch.autograd.grad(y, (x, w), grad)
    y_ref = masked_linear_reference(x, w, mask)
    want = torch.autograd.grad(y_ref, (x, w), grad)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not got[1][mask == 0].any()


def test_masked_linear_takes_the_grouped_path_only_with_groups(monkeypatch):
    import nas.kernels.fpe as fpe

    monkeypatch.setenv("NAS_KERNELS", "triton")
    calls = []
    real = fpe.grouped_forward
    monkeypatch.setattr(fpe, "grouped_forward", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(5)
    mask, _ = _feature_mask(4, 10, 2)
    w, x = torch.randn(8, 10, device=DEVICE), torch.randn(3, 10, device=DEVICE)
    torch.testing.assert_close(masked_linear(x, w, mask, groups=2), masked_linear_reference(x, w, mask))
    assert calls == [1]
    monkeypatch.setenv("NAS_KERNELS", "torch")
    masked_linear(x, w, mask, groups=2)
    assert calls == [1]  # the reference path never builds a layout
