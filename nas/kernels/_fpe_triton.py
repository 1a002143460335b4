"""Triton kernels of the FPE sparse layer (``nas.kernels.fpe``): padded-rows (ELL) gather products.

Column indices are int16 or int32 in memory (``nas.kernels.fpe``), widened
on load. ``_ell_mm_kernel``: y (M, R) = x (M, C) Wᵀ, W's row r given by
``counts[r]`` (column, value) pairs; one program per (tile of batch rows,
tile of output rows), looping over the tile's non-zeros BLOCK_L at a time
up to its longest row: x is gathered at the columns (BLOCK_M, BLOCK_R,
BLOCK_L) and multiplied by the values, float32 accumulation. With
``HAS_POS`` the values are read through an index (``vals[pos[r, j]]``):
that is grad_x = grad_y W on the transposed layout, sharing W's values.

``_ell_vgrad_kernel``: grad_vals (R, L)[r, j] = Σ_m grad_y[m, r]
x[m, cols[r, j]]; one program per (tile of rows, tile of j), looping over
the batch; padding entries are written as 0.

Imports triton: import it only where triton is available.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _ell_mm_kernel(
    x_ptr, cols_ptr, vals_ptr, pos_ptr, counts_ptr, y_ptr, M, R, C, L,
    HAS_POS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_L: tl.constexpr,
):
    """y[m, r] = Σ_{j < counts[r]} v[r, j] · x[m, cols[r, j]]; x (M, C), y (M, R), cols (R, L), row-major."""
    pid_m, pid_r = tl.program_id(0), tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    m_ok, r_ok = offs_m < M, offs_r < R
    counts = tl.load(counts_ptr + offs_r, mask=r_ok, other=0)  # (BLOCK_R,)
    x_rows = x_ptr + offs_m.to(tl.int64)[:, None, None] * C  # (BLOCK_M, 1, 1)
    acc = tl.zeros((BLOCK_M, BLOCK_R), dtype=tl.float32)
    for l0 in range(0, tl.max(counts, axis=0), BLOCK_L):
        offs_l = l0 + tl.arange(0, BLOCK_L)
        ok = r_ok[:, None] & (offs_l[None, :] < counts[:, None])  # (BLOCK_R, BLOCK_L)
        entry = offs_r.to(tl.int64)[:, None] * L + offs_l[None, :]
        col = tl.load(cols_ptr + entry, mask=ok, other=0).to(tl.int32)  # int16 or int32 in memory
        if HAS_POS:
            v = tl.load(vals_ptr + tl.load(pos_ptr + entry, mask=ok, other=0), mask=ok, other=0.0)
        else:
            v = tl.load(vals_ptr + entry, mask=ok, other=0.0)
        xg = tl.load(x_rows + col[None, :, :], mask=m_ok[:, None, None] & ok[None, :, :], other=0.0)
        acc += tl.sum(xg.to(tl.float32) * v.to(tl.float32)[None, :, :], axis=2)
    tl.store(y_ptr + offs_m.to(tl.int64)[:, None] * R + offs_r[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=m_ok[:, None] & r_ok[None, :])


@triton.jit
def _ell_vgrad_kernel(
    gy_ptr, x_ptr, cols_ptr, counts_ptr, gv_ptr, M, R, C, L,
    BLOCK_M: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_L: tl.constexpr,
):
    """grad_vals[r, j] = Σ_m grad_y[m, r] · x[m, cols[r, j]] (0 for j ≥ counts[r]); gv (R, L) row-major."""
    pid_r, pid_l = tl.program_id(0), tl.program_id(1)
    offs_r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    r_ok = offs_r < R
    counts = tl.load(counts_ptr + offs_r, mask=r_ok, other=0)
    ok = r_ok[:, None] & (offs_l[None, :] < counts[:, None])  # (BLOCK_R, BLOCK_L)
    entry = offs_r.to(tl.int64)[:, None] * L + offs_l[None, :]
    col = tl.load(cols_ptr + entry, mask=ok, other=0).to(tl.int32)  # int16 or int32 in memory
    acc = tl.zeros((BLOCK_R, BLOCK_L), dtype=tl.float32)
    for m0 in range(0, M, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        m_ok = offs_m < M
        gy = tl.load(gy_ptr + offs_m.to(tl.int64)[:, None] * R + offs_r[None, :],
                     mask=m_ok[:, None] & r_ok[None, :], other=0.0)  # (BLOCK_M, BLOCK_R)
        xg = tl.load(x_ptr + offs_m.to(tl.int64)[:, None, None] * C + col[None, :, :],
                     mask=m_ok[:, None, None] & ok[None, :, :], other=0.0)  # (BLOCK_M, BLOCK_R, BLOCK_L)
        acc += tl.sum(gy.to(tl.float32)[:, :, None] * xg.to(tl.float32), axis=0)
    tl.store(gv_ptr + entry, acc.to(gv_ptr.dtype.element_ty), mask=r_ok[:, None] & (offs_l[None, :] < L))


def _blocks(m: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_R, BLOCK_L): narrow batch tiles for small batches."""
    return min(32, max(4, triton.next_power_of_2(m))), 32, 8


def _check(x: torch.Tensor, vals: torch.Tensor, layout) -> None:
    if x.dtype not in DTYPES or vals.dtype != x.dtype:
        raise TypeError(f"FPE sparse layer: x and the values must share a float dtype, "
                        f"found {x.dtype} and {vals.dtype}")
    if x.device != vals.device or layout.cols.device != x.device:
        raise ValueError(f"FPE sparse layer: x on {x.device}, values on {vals.device}, layout on {layout.cols.device}")
    r, c = layout.shape
    if x.dim() != 2 or x.shape[1] != c or tuple(vals.shape) != (r, layout.width):
        raise ValueError(f"FPE sparse layer: x (M, {c}) and values ({r}, {layout.width}) expected, "
                         f"found {tuple(x.shape)} and {tuple(vals.shape)}")


def ell_forward(x: torch.Tensor, vals: torch.Tensor, layout) -> torch.Tensor:
    """Launch: y (M, R) = x (M, C) Wᵀ, x's dtype."""
    _check(x, vals, layout)
    x, vals = x.contiguous(), vals.contiguous()
    m, (r, c) = x.shape[0], layout.shape
    y = torch.empty(m, r, dtype=x.dtype, device=x.device)
    if m and r:
        bm, br, bl = _blocks(m)
        _ell_mm_kernel[(triton.cdiv(m, bm), triton.cdiv(r, br))](
            x, layout.cols, vals, layout.cols, layout.counts, y, m, r, c, layout.width,
            HAS_POS=False, BLOCK_M=bm, BLOCK_R=br, BLOCK_L=bl)
    return y


def ell_backward(grad_y: torch.Tensor, x: torch.Tensor, vals: torch.Tensor, layout,
                 need_x: bool = True, need_vals: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Launch: grad_x (M, C) = grad_y W (transposed layout) and grad_vals (R, L) (0 at padding)."""
    grad_y, x, vals = grad_y.contiguous(), x.contiguous(), vals.contiguous()
    m, (r, c) = x.shape[0], layout.shape
    bm, br, bl = _blocks(m)
    grad_x = grad_vals = None
    if need_x:
        grad_x = torch.empty(m, c, dtype=grad_y.dtype, device=grad_y.device)
        if m and c:
            _ell_mm_kernel[(triton.cdiv(m, bm), triton.cdiv(c, br))](
                grad_y, layout.tcols, vals, layout.tpos, layout.tcounts, grad_x, m, c, r, layout.tcols.shape[1],
                HAS_POS=True, BLOCK_M=bm, BLOCK_R=br, BLOCK_L=bl)
    if need_vals:
        grad_vals = torch.empty_like(vals)
        if r:
            _ell_vgrad_kernel[(triton.cdiv(r, br), triton.cdiv(layout.width, bl))](
                grad_y, x, layout.cols, layout.counts, grad_vals, m, r, c, layout.width,
                BLOCK_M=bm, BLOCK_R=br, BLOCK_L=bl)
    return grad_x, grad_vals


class EllLinearFunction(torch.autograd.Function):
    """y = x Wᵀ, W's non-zeros ``vals`` in ``layout``: x (…, C) -> (…, R); gradients for x and vals."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, vals: torch.Tensor, layout) -> torch.Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        ctx.layout, ctx.lead = layout, x.shape[:-1]
        ctx.save_for_backward(x2, vals)
        return ell_forward(x2, vals, layout).reshape(*x.shape[:-1], layout.shape[0])

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x2, vals = ctx.saved_tensors
        grad_x, grad_vals = ell_backward(grad_y.reshape(-1, grad_y.shape[-1]), x2, vals, ctx.layout,
                                         ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        if grad_x is not None:
            grad_x = grad_x.reshape(*ctx.lead, ctx.layout.shape[1])
        return grad_x, grad_vals, None
