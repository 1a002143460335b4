"""The maxstate mixer's scan and combination (``nas.spaces.mixers.MaxState`` after its projection W).

For p = W h (B, T, 4D), read in H heads of C = D/H channels as
p[b, t, q·D + h·C + j] = v_q[b, t, j, h] (q = 0..3 for a, b, c, d)::

    e_t = max_{s ≤ t} c_s                                   # the running maximum along T (torch.cummax)
    g   = (Σ_q v_q G_qᵀ + e G_eᵀ) ⊙ e                       # G (H, 5H) = [G_a G_b G_c G_d G_e], mixing the heads
    y   = a·b + α1·b + α2·d + a·(α3·e + d) + b·(c + e) + c·e + g
    out[b, t, j·H + h] = y[b, t, j, h]                      # (B, T, D), channels major

The gradient of the running maximum goes to the position that holds it,
the last one on ties, as ``torch.cummax``'s own backward does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nas.kernels import backend


def maxstate_combine_reference(p: torch.Tensor, g_weight: torch.Tensor, alpha: torch.Tensor,
                               heads: int) -> torch.Tensor:
    """The module's docstring in PyTorch: p (B, T, 4D), G (H, 5H), α (3,) -> (B, T, D), p's dtype."""
    bsz, t, d4 = p.shape
    d = d4 // 4
    x = p.view(bsz, t, 4, heads, d // heads).transpose(-1, -2)  # (B, T, 4, C, H)
    a, b, c, dd = x.unbind(2)  # each (B, T, C, H)
    e = torch.cummax(c, dim=1).values
    g = F.linear(torch.cat([a, b, c, dd, e], dim=-1), g_weight) * e
    a1, a2, a3 = alpha
    y = a * b + a1 * b + a2 * dd + a * (a3 * e + dd) + b * (c + e) + c * e + g
    return y.reshape(bsz, t, d)


def maxstate_combine(p: torch.Tensor, g_weight: torch.Tensor, alpha: torch.Tensor, heads: int) -> torch.Tensor:
    """p (B, T, 4D), G (H, 5H), α (3,) -> (B, T, D): the fused Triton scan where
    ``nas.kernels.backend`` says so, else ``maxstate_combine_reference``."""
    if backend(p, g_weight, alpha) == "triton":
        from nas.kernels._maxstate_triton import MaxStateFunction

        return MaxStateFunction.apply(p, g_weight, alpha, heads)
    return maxstate_combine_reference(p, g_weight, alpha, heads)
