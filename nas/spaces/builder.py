"""ArchSpec -> nn.Module."""

from __future__ import annotations

import torch
from torch import nn

from nas.spaces.arch import ArchSpec
from nas.spaces.blocks import LIFTS, Cost, HourglassBlock, Linear, _cost_of


class HourglassMLP(nn.Module):
    """lift -> depth × HourglassBlock -> head, as in the hourglass paper.

    x (B, d_in) -> z (B, d_z) -> ... -> logits (B, d_out). With ``lift: none``
    d_z = d_in and this is the paper's conventional residual MLP.
    """

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        d_z = spec.d_z
        self.lift = LIFTS.get(spec.lift)(spec.d_in, d_z, spec.lift_seed)
        self.blocks = nn.ModuleList(
            HourglassBlock(d_z, spec.hidden_width, spec.activation, spec.norm) for _ in range(spec.depth)
        )
        self.head = Linear(d_z, spec.d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_out)
        h = self.lift(x) if self.lift is not None else x  # (B, d_z)
        for block in self.blocks:
            h = block(h)
        return self.head(h)

    def nas_cost(self, dtype_bytes: int = 4) -> Cost:
        total = _cost_of(self.lift, dtype_bytes) if self.lift is not None else Cost()
        for block in self.blocks:
            total = total + block.nas_cost(dtype_bytes)
        return total + self.head.nas_cost(dtype_bytes)


def build(spec: ArchSpec) -> HourglassMLP:
    """Build the candidate ``spec`` describes (on the current default device)."""
    return HourglassMLP(spec)
