"""Triton kernels of the hashed lift (``nas.kernels.lift``): y = x Sᵀ/√d_in and grad_x = grad_y S/√d_in.

S (d_z, d_in) of ±1 is hashed tile by tile in registers from (key, row,
column), never read from or written to memory. Imports triton: import it
only where triton is available.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from nas.kernels.hashing import COL_MULT, ROW_MULT, seed_key

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _fmix32(h):
    """murmur3's 32-bit finaliser on a uint32 tensor (all arithmetic mod 2³²)."""
    h ^= h >> 16
    h *= 0x85EBCA6B
    h ^= h >> 13
    h *= 0xC2B2AE35
    h ^= h >> 16
    return h


@triton.jit
def _row_hash(rows, key, ROW_MULT: tl.constexpr):
    """row(i) = fmix32(key ^ i·ROW_MULT) for int32 row indices ``rows``: uint32, same shape."""
    return _fmix32(tl.cast(key, tl.uint32) ^ (rows.to(tl.uint32) * ROW_MULT))  # tl.cast: key may be a constexpr


@triton.jit
def _sign_tile(row_h, cols, COL_MULT: tl.constexpr):
    """S = ±1.0 (float32) for broadcastable uint32 row hashes ``row_h`` and int32 column indices ``cols``."""
    h = _fmix32(row_h ^ (cols.to(tl.uint32) * COL_MULT))
    return 1.0 - 2.0 * (h >> 31).to(tl.float32)


@triton.jit(do_not_specialize=["key"])  # a key of 1 would become a constant
def _hashed_lift_fwd_kernel(
    x_ptr, y_ptr, M, N, K, key, scale,
    ROW_MULT: tl.constexpr, COL_MULT: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """y (M, N) = scale · x (M, K) @ S[:N, :K]ᵀ; x and y row-major, float32 accumulation, masked at the edges."""
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rows_m = offs_m.to(tl.int64)  # M·K and M·N can pass 2³¹
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_h = _row_hash(offs_n, key, ROW_MULT)  # (BLOCK_N,) hashes of R's rows = y's columns
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + rows_m[:, None] * K + offs_k[None, :],
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0.0)  # (BLOCK_M, BLOCK_K)
        s_t = _sign_tile(row_h[None, :], offs_k[:, None], COL_MULT)  # (BLOCK_K, BLOCK_N) = S[n, k]ᵀ
        acc += tl.dot(x.to(DOT_DTYPE), s_t.to(DOT_DTYPE), input_precision=PRECISION)
    y = (acc * scale).to(y_ptr.dtype.element_ty)
    tl.store(y_ptr + rows_m[:, None] * N + offs_n[None, :], y, mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


@triton.jit(do_not_specialize=["key"])
def _hashed_lift_bwd_kernel(
    gy_ptr, gx_ptr, M, N, K, key, scale,
    ROW_MULT: tl.constexpr, COL_MULT: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """grad_x (M, K) = scale · grad_y (M, N) @ S[:N, :K]; row-major, float32 accumulation, masked."""
    pid_m, pid_k = tl.program_id(0), tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rows_m = offs_m.to(tl.int64)  # M·K and M·N can pass 2³¹
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        gy = tl.load(gy_ptr + rows_m[:, None] * N + offs_n[None, :],
                     mask=(offs_m[:, None] < M) & (offs_n[None, :] < N), other=0.0)  # (BLOCK_M, BLOCK_N)
        row_h = _row_hash(offs_n, key, ROW_MULT)  # (BLOCK_N,)
        s = _sign_tile(row_h[:, None], offs_k[None, :], COL_MULT)  # (BLOCK_N, BLOCK_K) = S[n, k]
        acc += tl.dot(gy.to(DOT_DTYPE), s.to(DOT_DTYPE), input_precision=PRECISION)
    gx = (acc * scale).to(gx_ptr.dtype.element_ty)
    tl.store(gx_ptr + rows_m[:, None] * K + offs_k[None, :], gx, mask=(offs_m[:, None] < M) & (offs_k[None, :] < K))


def _dot_config(dtype: torch.dtype) -> tuple:
    """(operand dtype of tl.dot, input precision) for inputs of ``dtype``.

    float32 follows ``torch.backends.cuda.matmul.allow_tf32`` like torch's own
    product. Triton's interpreter cannot multiply bfloat16 in ``tl.dot``
    (triton-lang/triton#11584), so there the 16-bit operands go in as float32:
    the ±1 entries and 16-bit products are exact in float32, only the
    accumulation order can differ.
    """
    if dtype == torch.float32:
        return tl.float32, "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"
    if triton.knobs.runtime.interpret:
        return tl.float32, "ieee"
    return (tl.bfloat16 if dtype == torch.bfloat16 else tl.float16), None


def _blocks(m: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K) for M rows: small batches get narrow tiles and more programs."""
    block_m = min(128, max(16, triton.next_power_of_2(m)))
    return block_m, (32 if m <= 16 else 64), 64


def _check(x: torch.Tensor, width: int, name: str) -> None:
    if x.dtype not in DTYPES:
        raise TypeError(f"hashed lift: {name} must be float32, float16 or bfloat16, found {x.dtype}")
    if x.dim() != 2 or x.shape[1] != width:
        raise ValueError(f"hashed lift: {name} must be (M, {width}), found {tuple(x.shape)}")


def hashed_lift_forward(x: torch.Tensor, seed: int, d_z: int) -> torch.Tensor:
    """Launch the forward kernel: x (M, d_in) -> y (M, d_z), x's dtype and device."""
    m, d_in = x.shape
    _check(x, d_in, "x")
    x = x.contiguous()
    y = torch.empty(m, d_z, dtype=x.dtype, device=x.device)
    dot_dtype, precision = _dot_config(x.dtype)
    bm, bn, bk = _blocks(m)
    grid = (triton.cdiv(m, bm), triton.cdiv(d_z, bn))
    _hashed_lift_fwd_kernel[grid](x, y, m, d_z, d_in, seed_key(seed), 1 / math.sqrt(d_in),
                                  ROW_MULT=ROW_MULT, COL_MULT=COL_MULT, DOT_DTYPE=dot_dtype, PRECISION=precision,
                                  BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
    return y


def hashed_lift_backward(grad_y: torch.Tensor, seed: int, d_in: int) -> torch.Tensor:
    """Launch the backward kernel: grad_y (M, d_z) -> grad_x (M, d_in), grad_y's dtype and device."""
    m, d_z = grad_y.shape
    _check(grad_y, d_z, "grad_y")
    grad_y = grad_y.contiguous()
    grad_x = torch.empty(m, d_in, dtype=grad_y.dtype, device=grad_y.device)
    dot_dtype, precision = _dot_config(grad_y.dtype)
    bm, bn, bk = _blocks(m)
    grid = (triton.cdiv(m, bm), triton.cdiv(d_in, bk))
    _hashed_lift_bwd_kernel[grid](grad_y, grad_x, m, d_z, d_in, seed_key(seed), 1 / math.sqrt(d_in),
                                  ROW_MULT=ROW_MULT, COL_MULT=COL_MULT, DOT_DTYPE=dot_dtype, PRECISION=precision,
                                  BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
    return grad_x


class HashedLiftFunction(torch.autograd.Function):
    """y = x Rᵀ with R hashed on the fly: x (…, d_in) -> (…, d_z); gradient for x only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, seed: int, d_z: int) -> torch.Tensor:
        ctx.seed, ctx.d_in, ctx.lead = seed, x.shape[-1], x.shape[:-1]
        y = hashed_lift_forward(x.reshape(-1, x.shape[-1]), seed, d_z)
        return y.reshape(*x.shape[:-1], d_z)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        grad_x = hashed_lift_backward(grad_y.reshape(-1, grad_y.shape[-1]), ctx.seed, ctx.d_in)
        return grad_x.reshape(*ctx.lead, ctx.d_in), None, None
