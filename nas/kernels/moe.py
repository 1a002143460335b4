"""Grouped matrix product over expert segments: one launch for all experts of a mixture.

Rows of x are grouped by expert (``nas.spaces.moe`` sorts the routed
assignments by expert id); segment i holds ``counts[i]`` consecutive rows::

    y[o_i : o_i + counts[i]] = x[o_i : o_i + counts[i]] @ w[i]ᵀ      o_i = counts[0] + … + counts[i-1]

x (S, K), w (E, N, K) (expert i's ``nn.Linear`` weight), y (S, N); float32
accumulation, x's dtype out. Gradients: grad_x = grad_y @ w[i] per segment
and grad_w[i] = grad_y[segment]ᵀ @ x[segment] (zero for an empty segment).
"""

from __future__ import annotations

import torch

from nas.kernels import backend


def grouped_matmul_reference(x: torch.Tensor, w: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """The module's docstring in PyTorch, one product per non-empty segment: (S, K), (E, N, K) -> (S, N)."""
    parts = [x.new_zeros(0, w.shape[1])]
    for i, seg in enumerate(x.split(counts)):
        if len(seg):
            parts.append(seg @ w[i].t())
    return torch.cat(parts)


def grouped_matmul(x: torch.Tensor, w: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """y = x @ w[i]ᵀ on each segment i of ``counts`` rows: the Triton grouped kernel where
    ``nas.kernels.backend`` says so, else ``grouped_matmul_reference``."""
    if backend(x, w) == "triton":
        from nas.kernels._moe_triton import GroupedMatmulFunction

        return GroupedMatmulFunction.apply(x, w, counts)
    return grouped_matmul_reference(x, w, counts)
