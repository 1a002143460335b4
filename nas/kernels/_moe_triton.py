"""Triton kernels of the grouped matrix product over expert segments (``nas.kernels.moe``).

``_grouped_mm_kernel``: one program per (row tile of one segment, column
tile); the launcher lists the row tiles (expert, first row) on the host
from the segment sizes, which the mixture already has there. It computes
y = x @ w[i]ᵀ (forward) and grad_x = grad_y @ w[i] (backward) through
strides. ``_grouped_wgrad_kernel``: one program per (expert, tile of
grad_w[i]) looping over its segment's rows. Imports triton: import it only
where triton is available.
"""

from __future__ import annotations

import itertools

import torch
import triton
import triton.language as tl

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _grouped_mm_kernel(
    x_ptr, w_ptr, y_ptr, tile_expert_ptr, tile_row_ptr, seg_end_ptr, N, R,
    stride_we, stride_wn, stride_wr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_R: tl.constexpr,
):
    """y[rows, :N] = x[rows, :R] @ Wᵀ, W[n, r] = w[e·stride_we + n·stride_wn + r·stride_wr]; x, y row-major.

    rows: BLOCK_M rows from ``tile_row[tile]``, cut at the end of segment e = ``tile_expert[tile]``.
    """
    tile, pid_n = tl.program_id(0), tl.program_id(1)
    e = tl.load(tile_expert_ptr + tile)
    rows = tl.load(tile_row_ptr + tile) + tl.arange(0, BLOCK_M)
    row_ok = rows < tl.load(seg_end_ptr + e)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    w_base = w_ptr + e.to(tl.int64) * stride_we
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for r0 in range(0, R, BLOCK_R):
        offs_r = r0 + tl.arange(0, BLOCK_R)
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * R + offs_r[None, :],
                    mask=row_ok[:, None] & (offs_r[None, :] < R), other=0.0)  # (BLOCK_M, BLOCK_R)
        w_t = tl.load(w_base + offs_r[:, None] * stride_wr + offs_n[None, :] * stride_wn,
                      mask=(offs_r[:, None] < R) & (offs_n[None, :] < N), other=0.0)  # (BLOCK_R, BLOCK_N)
        acc += tl.dot(x.to(DOT_DTYPE), w_t.to(DOT_DTYPE), input_precision=PRECISION)
    tl.store(y_ptr + rows[:, None].to(tl.int64) * N + offs_n[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=row_ok[:, None] & (offs_n[None, :] < N))


@triton.jit
def _grouped_wgrad_kernel(
    gy_ptr, x_ptr, gw_ptr, seg_start_ptr, N, K,
    DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """grad_w[e] (N, K) = grad_y[seg e]ᵀ @ x[seg e]; grad_y (S, N), x (S, K), grad_w (E, N, K), all row-major."""
    e, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    start, end = tl.load(seg_start_ptr + e), tl.load(seg_start_ptr + e + 1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for r0 in range(start, end, BLOCK_M):
        rows = r0 + tl.arange(0, BLOCK_M)
        row_ok = rows < end
        gy = tl.load(gy_ptr + rows[:, None].to(tl.int64) * N + offs_n[None, :],
                     mask=row_ok[:, None] & (offs_n[None, :] < N), other=0.0)  # (BLOCK_M, BLOCK_N)
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * K + offs_k[None, :],
                    mask=row_ok[:, None] & (offs_k[None, :] < K), other=0.0)  # (BLOCK_M, BLOCK_K)
        acc += tl.dot(tl.trans(gy.to(DOT_DTYPE)), x.to(DOT_DTYPE), input_precision=PRECISION)
    tl.store(gw_ptr + e.to(tl.int64) * N * K + offs_n[:, None] * K + offs_k[None, :], acc.to(gw_ptr.dtype.element_ty),
             mask=(offs_n[:, None] < N) & (offs_k[None, :] < K))


def _dot_config(dtype: torch.dtype) -> tuple:
    """(tl.dot operand dtype, input precision); see ``nas.kernels._lift_triton._dot_config``."""
    if dtype == torch.float32:
        return tl.float32, "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"
    if triton.knobs.runtime.interpret:  # no bfloat16 tl.dot in the interpreter (triton-lang/triton#11584)
        return tl.float32, "ieee"
    return (tl.bfloat16 if dtype == torch.bfloat16 else tl.float16), None


def _check(x: torch.Tensor, w: torch.Tensor, counts: list[int]) -> None:
    if x.dtype not in DTYPES or w.dtype != x.dtype:
        raise TypeError(f"grouped matmul: x and w must share a float dtype, found {x.dtype} and {w.dtype}")
    if x.device != w.device:
        raise ValueError(f"grouped matmul: x is on {x.device}, w on {w.device}")
    if x.dim() != 2 or w.dim() != 3 or len(counts) != w.shape[0] or sum(counts) != x.shape[0]:
        raise ValueError(f"grouped matmul: x (S, R), w (E, N, R) and E counts summing to S expected, found "
                         f"{tuple(x.shape)}, {tuple(w.shape)} and {len(counts)} counts summing to {sum(counts)}")


def _tiles(counts: list[int], block_m: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(expert of each row tile, its first row, the end row of every segment) as int32 tensors on ``device``."""
    experts, rows, ends, start = [], [], [], 0
    for e, n in enumerate(counts):
        for r in range(start, start + n, block_m):
            experts.append(e)
            rows.append(r)
        start += n
        ends.append(start)
    return tuple(torch.tensor(v, dtype=torch.int32, device=device) for v in (experts, rows, ends))


def _launch_mm(x: torch.Tensor, w: torch.Tensor, counts: list[int], n: int, strides: tuple[int, int, int]):
    """y (S, n) = x (S, R) times each segment's W with W[n, r] at w's (expert, n, r) ``strides``."""
    s, r = x.shape
    y = torch.empty(s, n, dtype=x.dtype, device=x.device)
    if s == 0:
        return y
    block_m, block_n, block_r = 32, 64, 32
    tile_expert, tile_row, seg_end = _tiles(counts, block_m, x.device)
    dot_dtype, precision = _dot_config(x.dtype)
    grid = (len(tile_expert), triton.cdiv(n, block_n))
    _grouped_mm_kernel[grid](x, w, y, tile_expert, tile_row, seg_end, n, r, *strides,
                             DOT_DTYPE=dot_dtype, PRECISION=precision,
                             BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_R=block_r)
    return y


def grouped_matmul_forward(x: torch.Tensor, w: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Launch: y (S, N) = x (S, K) @ w[i]ᵀ per segment."""
    _check(x, w, counts)
    x, w = x.contiguous(), w.contiguous()
    _, n, k = w.shape
    return _launch_mm(x, w, counts, n, (n * k, k, 1))


def grouped_matmul_backward(grad_y: torch.Tensor, x: torch.Tensor, w: torch.Tensor,
                            counts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch: grad_x (S, K) = grad_y @ w[i] per segment and grad_w (E, N, K) = grad_y[seg]ᵀ @ x[seg]."""
    grad_y, x, w = grad_y.contiguous(), x.contiguous(), w.contiguous()
    e, n, k = w.shape
    grad_x = _launch_mm(grad_y, w, counts, k, (n * k, 1, k))
    grad_w = torch.empty_like(w)
    starts = torch.tensor([0, *itertools.accumulate(counts)], dtype=torch.int32, device=x.device)
    block_m, block_n, block_k = 32, 64, 64
    dot_dtype, precision = _dot_config(x.dtype)
    grid = (e, triton.cdiv(n, block_n), triton.cdiv(k, block_k))
    _grouped_wgrad_kernel[grid](grad_y, x, grad_w, starts, n, k, DOT_DTYPE=dot_dtype, PRECISION=precision,
                                BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k)
    return grad_x, grad_w


class GroupedMatmulFunction(torch.autograd.Function):
    """y = x @ w[i]ᵀ per segment of ``counts`` rows (``nas.kernels.moe``), with gradients for x and w."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, counts: list[int]) -> torch.Tensor:
        ctx.counts = counts
        ctx.save_for_backward(x, w)
        return grouped_matmul_forward(x, w, counts)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, w = ctx.saved_tensors
        grad_x, grad_w = grouped_matmul_backward(grad_y, x, w, ctx.counts)
        return grad_x, grad_w, None
