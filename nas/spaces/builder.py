"""ArchSpec -> nn.Module."""

from __future__ import annotations

import torch
from torch import nn

from nas.spaces.arch import ArchSpec
from nas.spaces.blocks import LIFTS, MIXERS, Cost, HourglassBlock, Linear, _cost_of


def make_ffn(spec: ArchSpec, d_z: int, fresh: bool) -> nn.Module | None:
    """The block's ``W2 act(W1 ·)`` part when the spec changes it; None for the plain dense pair.

    FPE (``fpe_alpha > 1``) replaces the pair by an FPE layer pair; a mixture
    of experts (``moe_experts > 1``) puts ``moe_experts`` such pairs (dense or
    FPE) behind a router. ``fresh``: the model is about to be trained from
    scratch, so an FPE pair starts dense and expands during training;
    otherwise it is built in its deployed, expanded form.
    """
    from nas.spaces.fpe import FPEPair
    from nas.spaces.moe import MixtureOfExperts

    def one() -> nn.Module | None:
        if spec.fpe_alpha > 1:
            return FPEPair(d_z, spec.hidden_width, spec.activation, spec.fpe_alpha, spec.fpe_split, spec.fpe_at,
                           expanded=not fresh)
        return None

    if spec.moe_experts > 1:
        return MixtureOfExperts(d_z, spec.hidden_width, spec.activation, spec.moe_experts, spec.moe_top_k,
                                make_expert=one)
    return one()


class HourglassMLP(nn.Module):
    """lift -> depth × HourglassBlock -> head, as in the hourglass paper.

    x (B, d_in) -> z (B, d_z) -> ... -> logits (B, d_out). With ``lift: none``
    d_z = d_in and this is the paper's conventional residual MLP.
    """

    def __init__(self, spec: ArchSpec, fresh: bool = False):
        super().__init__()
        self.spec = spec
        d_z = spec.d_z
        self.lift = LIFTS.get(spec.lift)(spec.d_in, d_z, spec.lift_seed)
        self.blocks = nn.ModuleList(
            HourglassBlock(d_z, spec.hidden_width, spec.activation, spec.norm, make_ffn(spec, d_z, fresh))
            for _ in range(spec.depth)
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


def build(spec: ArchSpec, fresh: bool = False) -> nn.Module:
    """Build the candidate ``spec`` describes (on the current default device).

    ``fresh=True`` builds it to be trained from scratch (an FPE layer starts
    dense); the default builds the deployed structure, which trained weights
    load into and whose cost the objectives count.
    """
    if spec.mixer != "none":
        return MIXERS.get(spec.mixer)(spec, fresh)
    return HourglassMLP(spec, fresh)
