"""Triton kernels of the maxstate scan and combination (``nas.kernels.maxstate``), forward and backward.

One program per (sample b, tile of BLOCK_J channels j, all H heads) walks
the sequence: forward in t carrying the running maximum, backward in
reverse t carrying the gradient still owed to the current maximum's
holder. Everything is computed in float32 and stored in the tensors'
dtypes. Imports triton: import it only where triton is available.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _head_mix(v, g):
    """(BLOCK_J, HP) @ (HP, HP)ᵀ: out[j, h] = Σ_h' v[j, h'] g[h, h'], by broadcasting (H is small)."""
    return tl.sum(v[:, None, :] * g[None, :, :], axis=2)


@triton.jit
def _head_mix_t(v, g):
    """(BLOCK_J, HP) @ (HP, HP): out[j, h'] = Σ_h v[j, h] g[h, h']."""
    return tl.sum(v[:, :, None] * g[None, :, :], axis=1)


@triton.jit
def _maxstate_fwd_kernel(
    p_ptr, g_ptr, alpha_ptr, y_ptr, e_ptr, T, D, C, H,
    SAVE_E: tl.constexpr, BLOCK_J: tl.constexpr, HP: tl.constexpr,
):
    """y (B, T, D) from p (B, T, 4D), G (H, 5H), α (3,); with SAVE_E also e = cummax(c) (B, T, D) in c's layout."""
    pid_b, pid_j = tl.program_id(0), tl.program_id(1)
    j = pid_j * BLOCK_J + tl.arange(0, BLOCK_J)
    h = tl.arange(0, HP)
    mask = (j[:, None] < C) & (h[None, :] < H)  # (BLOCK_J, HP)
    src = h[None, :] * C + j[:, None]  # offset of (j, h) inside each of a, b, c, d
    dst = j[:, None] * H + h[None, :]  # offset of (j, h) in y
    gmask = (h[:, None] < H) & (h[None, :] < H)
    g_off = h[:, None] * 5 * H + h[None, :]
    g_a = tl.load(g_ptr + g_off, mask=gmask, other=0.0).to(tl.float32)  # (HP, HP) each
    g_b = tl.load(g_ptr + g_off + H, mask=gmask, other=0.0).to(tl.float32)
    g_c = tl.load(g_ptr + g_off + 2 * H, mask=gmask, other=0.0).to(tl.float32)
    g_d = tl.load(g_ptr + g_off + 3 * H, mask=gmask, other=0.0).to(tl.float32)
    g_e = tl.load(g_ptr + g_off + 4 * H, mask=gmask, other=0.0).to(tl.float32)
    a1 = tl.load(alpha_ptr).to(tl.float32)
    a2 = tl.load(alpha_ptr + 1).to(tl.float32)
    a3 = tl.load(alpha_ptr + 2).to(tl.float32)
    e = tl.full((BLOCK_J, HP), float("-inf"), tl.float32)
    for t in range(T):
        row = (pid_b * T + t).to(tl.int64)
        base = p_ptr + row * 4 * D + src
        a = tl.load(base, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(base + D, mask=mask, other=0.0).to(tl.float32)
        c = tl.load(base + 2 * D, mask=mask, other=0.0).to(tl.float32)
        d = tl.load(base + 3 * D, mask=mask, other=0.0).to(tl.float32)
        e = tl.maximum(e, c, propagate_nan=tl.PropagateNan.ALL)  # NaN stays, as in torch.cummax
        gp = _head_mix(a, g_a) + _head_mix(b, g_b) + _head_mix(c, g_c) + _head_mix(d, g_d) + _head_mix(e, g_e)
        y = a * b + a1 * b + a2 * d + a * (a3 * e + d) + b * (c + e) + c * e + gp * e
        tl.store(y_ptr + row * D + dst, y.to(y_ptr.dtype.element_ty), mask=mask)
        if SAVE_E:
            tl.store(e_ptr + row * D + src, e.to(e_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _maxstate_bwd_kernel(
    p_ptr, g_ptr, alpha_ptr, e_ptr, gy_ptr, dp_ptr, dg_part_ptr, dalpha_part_ptr, T, D, C, H,
    BLOCK_J: tl.constexpr, HP: tl.constexpr,
):
    """dp (B, T, 4D) and this program's partial sums of dG (H, 5H) and dα (3,), from grad_y (B, T, D).

    In reverse t: de_t (direct terms and through g) is added to ``owed``; at
    a position that holds the running maximum (c_t == e_t, the last holder on
    ties) dc_t takes what is owed and ``owed`` restarts at 0.
    """
    pid_b, pid_j = tl.program_id(0), tl.program_id(1)
    j = pid_j * BLOCK_J + tl.arange(0, BLOCK_J)
    h = tl.arange(0, HP)
    mask = (j[:, None] < C) & (h[None, :] < H)
    src = h[None, :] * C + j[:, None]
    dst = j[:, None] * H + h[None, :]
    gmask = (h[:, None] < H) & (h[None, :] < H)
    g_off = h[:, None] * 5 * H + h[None, :]
    g_a = tl.load(g_ptr + g_off, mask=gmask, other=0.0).to(tl.float32)
    g_b = tl.load(g_ptr + g_off + H, mask=gmask, other=0.0).to(tl.float32)
    g_c = tl.load(g_ptr + g_off + 2 * H, mask=gmask, other=0.0).to(tl.float32)
    g_d = tl.load(g_ptr + g_off + 3 * H, mask=gmask, other=0.0).to(tl.float32)
    g_e = tl.load(g_ptr + g_off + 4 * H, mask=gmask, other=0.0).to(tl.float32)
    a1 = tl.load(alpha_ptr).to(tl.float32)
    a2 = tl.load(alpha_ptr + 1).to(tl.float32)
    a3 = tl.load(alpha_ptr + 2).to(tl.float32)
    owed = tl.zeros((BLOCK_J, HP), tl.float32)
    dg_a = tl.zeros((HP, HP), tl.float32)
    dg_b = tl.zeros((HP, HP), tl.float32)
    dg_c = tl.zeros((HP, HP), tl.float32)
    dg_d = tl.zeros((HP, HP), tl.float32)
    dg_e = tl.zeros((HP, HP), tl.float32)
    da1 = tl.zeros((BLOCK_J, HP), tl.float32)
    da2 = tl.zeros((BLOCK_J, HP), tl.float32)
    da3 = tl.zeros((BLOCK_J, HP), tl.float32)
    for i in range(T):
        row = (pid_b * T + T - 1 - i).to(tl.int64)
        base = p_ptr + row * 4 * D + src
        a = tl.load(base, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(base + D, mask=mask, other=0.0).to(tl.float32)
        c = tl.load(base + 2 * D, mask=mask, other=0.0).to(tl.float32)
        d = tl.load(base + 3 * D, mask=mask, other=0.0).to(tl.float32)
        e = tl.load(e_ptr + row * D + src, mask=mask, other=0.0).to(tl.float32)
        gy = tl.load(gy_ptr + row * D + dst, mask=mask, other=0.0).to(tl.float32)
        gp = _head_mix(a, g_a) + _head_mix(b, g_b) + _head_mix(c, g_c) + _head_mix(d, g_d) + _head_mix(e, g_e)
        dgp = gy * e  # (BLOCK_J, HP): gradient of g's pre-activation Σ_q v_q G_qᵀ
        da = gy * (b + a3 * e + d) + _head_mix_t(dgp, g_a)
        db = gy * (a + a1 + c + e) + _head_mix_t(dgp, g_b)
        dc = gy * (b + e) + _head_mix_t(dgp, g_c)
        dd = gy * (a2 + a) + _head_mix_t(dgp, g_d)
        owed += gy * (a3 * a + b + c + gp) + _head_mix_t(dgp, g_e)
        holder = c == e
        dc += tl.where(holder, owed, 0.0)
        owed = tl.where(holder, 0.0, owed)
        out = dp_ptr + row * 4 * D + src
        tl.store(out, da.to(dp_ptr.dtype.element_ty), mask=mask)
        tl.store(out + D, db.to(dp_ptr.dtype.element_ty), mask=mask)
        tl.store(out + 2 * D, dc.to(dp_ptr.dtype.element_ty), mask=mask)
        tl.store(out + 3 * D, dd.to(dp_ptr.dtype.element_ty), mask=mask)
        dg_a += tl.sum(dgp[:, :, None] * a[:, None, :], axis=0)  # dG_q[h, h'] += Σ_j dgp[j, h] v_q[j, h']
        dg_b += tl.sum(dgp[:, :, None] * b[:, None, :], axis=0)
        dg_c += tl.sum(dgp[:, :, None] * c[:, None, :], axis=0)
        dg_d += tl.sum(dgp[:, :, None] * d[:, None, :], axis=0)
        dg_e += tl.sum(dgp[:, :, None] * e[:, None, :], axis=0)
        da1 += gy * b
        da2 += gy * d
        da3 += gy * a * e
    part = pid_b * tl.num_programs(1) + pid_j
    dg_out = dg_part_ptr + part * 5 * H * H + g_off
    tl.store(dg_out, dg_a, mask=gmask)
    tl.store(dg_out + H, dg_b, mask=gmask)
    tl.store(dg_out + 2 * H, dg_c, mask=gmask)
    tl.store(dg_out + 3 * H, dg_d, mask=gmask)
    tl.store(dg_out + 4 * H, dg_e, mask=gmask)
    tl.store(dalpha_part_ptr + part * 3, tl.sum(tl.sum(da1, axis=1), axis=0))
    tl.store(dalpha_part_ptr + part * 3 + 1, tl.sum(tl.sum(da2, axis=1), axis=0))
    tl.store(dalpha_part_ptr + part * 3 + 2, tl.sum(tl.sum(da3, axis=1), axis=0))


def _layout(p: torch.Tensor, g_weight: torch.Tensor, alpha: torch.Tensor, heads: int) -> tuple[int, ...]:
    """Check the operands; (B, T, D, C, HP, BLOCK_J) of the launch."""
    for name, x in (("p", p), ("g_weight", g_weight), ("alpha", alpha)):
        if x.dtype not in DTYPES:
            raise TypeError(f"maxstate: {name} must be float32, float16 or bfloat16, found {x.dtype}")
        if x.device != p.device:
            raise ValueError(f"maxstate: {name} is on {x.device}, p on {p.device}")
    if p.dim() != 3 or p.shape[2] % (4 * heads):
        raise ValueError(f"maxstate: p must be (B, T, 4D) with D divisible by heads = {heads}, "
                         f"found {tuple(p.shape)}")
    if g_weight.shape != (heads, 5 * heads) or alpha.shape != (3,):
        raise ValueError(f"maxstate: g_weight must be ({heads}, {5 * heads}) and alpha (3,), "
                         f"found {tuple(g_weight.shape)} and {tuple(alpha.shape)}")
    bsz, t, d4 = p.shape
    d = d4 // 4
    c = d // heads
    hp = triton.next_power_of_2(heads)
    block_j = max(1, min(triton.next_power_of_2(c), 4096 // (hp * hp), 64))  # BLOCK_J·HP² products per head mix
    return bsz, t, d, c, hp, block_j


def maxstate_forward(p: torch.Tensor, g_weight: torch.Tensor, alpha: torch.Tensor, heads: int,
                     save_e: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launch the forward kernel: y (B, T, D) in p's dtype, and e = cummax(c) (B, T, D) when ``save_e``."""
    bsz, t, d, c, hp, block_j = _layout(p, g_weight, alpha, heads)
    p, g_weight, alpha = p.contiguous(), g_weight.contiguous(), alpha.contiguous()
    y = torch.empty(bsz, t, d, dtype=p.dtype, device=p.device)
    e = torch.empty(bsz, t, d, dtype=p.dtype, device=p.device) if save_e else y  # y: an unused placeholder
    _maxstate_fwd_kernel[(bsz, triton.cdiv(c, block_j))](p, g_weight, alpha, y, e, t, d, c, heads,
                                                         SAVE_E=save_e, BLOCK_J=block_j, HP=hp)
    return y, (e if save_e else None)


def maxstate_backward(p: torch.Tensor, g_weight: torch.Tensor, alpha: torch.Tensor, heads: int, e: torch.Tensor,
                      grad_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the backward kernel: dp (B, T, 4D), dG (H, 5H), dα (3,), each in its operand's dtype."""
    bsz, t, d, c, hp, block_j = _layout(p, g_weight, alpha, heads)
    if grad_y.shape != (bsz, t, d) or e.shape != (bsz, t, d):
        raise ValueError(f"maxstate: grad_y and e must be {(bsz, t, d)}, found {tuple(grad_y.shape)}, "
                         f"{tuple(e.shape)}")
    p, g_weight, alpha, e, grad_y = (x.contiguous() for x in (p, g_weight, alpha, e, grad_y))
    grid = (bsz, triton.cdiv(c, block_j))
    dp = torch.empty_like(p)
    dg_part = torch.empty(grid[0] * grid[1], heads, 5 * heads, dtype=torch.float32, device=p.device)
    dalpha_part = torch.empty(grid[0] * grid[1], 3, dtype=torch.float32, device=p.device)
    _maxstate_bwd_kernel[grid](p, g_weight, alpha, e, grad_y, dp, dg_part, dalpha_part, t, d, c, heads,
                               BLOCK_J=block_j, HP=hp)
    return dp, dg_part.sum(0).to(g_weight.dtype), dalpha_part.sum(0).to(alpha.dtype)


class MaxStateFunction(torch.autograd.Function):
    """y = maxstate_combine(p, G, α) (``nas.kernels.maxstate``), with gradients for p, G and α."""

    @staticmethod
    def forward(ctx, p: torch.Tensor, g_weight: torch.Tensor, alpha: torch.Tensor, heads: int) -> torch.Tensor:
        y, e = maxstate_forward(p, g_weight, alpha, heads, save_e=any(ctx.needs_input_grad[:3]))
        ctx.heads = heads
        ctx.save_for_backward(p, g_weight, alpha, e)
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        p, g_weight, alpha, e = ctx.saved_tensors
        dp, dg, dalpha = maxstate_backward(p, g_weight, alpha, ctx.heads, e, grad_y)
        return dp, dg, dalpha, None
