"""The block vocabulary: lifts, norms, activations, the residual hourglass block.

Every module that moves bytes at inference reports them through
``nas_cost(dtype_bytes) -> Cost``; ``nas.spaces.cost`` states the model and
sums it. Shapes are for a batch of B samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from nas.spaces.registry import Registry


@dataclass(frozen=True)
class Cost:
    """What one module must keep and move for a single-sample forward pass."""

    params: int = 0  # stored parameters a deployed model keeps (non-zeros)
    weight_bytes: int = 0  # bytes of stored tensors read once (weights, norm statistics, indices)
    act_bytes: int = 0  # bytes of activations read and written

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(
            self.params + other.params,
            self.weight_bytes + other.weight_bytes,
            self.act_bytes + other.act_bytes,
        )


ACTIVATIONS: Registry = Registry("activation")  # name -> factory(width) -> nn.Module
NORMS: Registry = Registry("norm")  # name -> factory(width) -> nn.Module
LIFTS: Registry = Registry("lift")  # name -> factory(d_in, d_z, seed) -> nn.Module | None
MIXERS: Registry = Registry("mixer")  # name -> factory(spec) -> nn.Module (see nas.spaces.mixers)


# ----------------------------------------------------------------- activations
ACTIVATIONS.register("relu")(lambda width: nn.ReLU())
ACTIVATIONS.register("gelu")(lambda width: nn.GELU())
ACTIVATIONS.register("silu")(lambda width: nn.SiLU())
ACTIVATIONS.register("tanh")(lambda width: nn.Tanh())


# ----------------------------------------------------------------------- norms
class BatchNorm(nn.BatchNorm1d):
    """BatchNorm without affine parameters, as in the hourglass paper's code.

    Its running mean and variance are not parameters but an inference pass
    reads them (or a copy folded into the next layer): 2·d floats.
    """

    def __init__(self, width: int):
        super().__init__(width, affine=False)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        return Cost(weight_bytes=2 * self.num_features * dtype_bytes)


class LayerNorm(nn.LayerNorm):
    """LayerNorm without affine parameters (the same family as ``BatchNorm``)."""

    def __init__(self, width: int):
        super().__init__(width, elementwise_affine=False)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        return Cost()


NORMS.register("batchnorm")(BatchNorm)
NORMS.register("layernorm")(LayerNorm)
NORMS.register("none")(lambda width: nn.Identity())


# ----------------------------------------------------------------------- lifts
class FixedRandomLift(nn.Module):
    """z = x Rᵀ with R ~ N(0, 1/d_in), seeded and never trained.

    R is a non-persistent buffer: it is not saved with the weights but
    regenerated from ``seed``, so it costs no stored parameters. It is drawn
    from torch's Gaussian generator, which no kernel can evaluate entry by
    entry, so an inference pass still reads R from memory: its d_z·d_in
    entries count as weight bytes. The ``hashed`` lift (``nas.spaces.lifts``)
    is the variant whose kernel generates R inside the product (0 bytes).
    """

    def __init__(self, d_in: int, d_z: int, seed: int):
        super().__init__()
        self.d_in, self.d_z, self.seed = d_in, d_z, seed
        self.register_buffer("weight", torch.empty(d_z, d_in), persistent=False)
        self.regenerate()

    @torch.no_grad()
    def regenerate(self) -> None:
        if self.weight.device.type == "meta":
            return
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        r = torch.randn(self.d_z, self.d_in, generator=gen) / math.sqrt(self.d_in)
        self.weight.copy_(r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_z)
        return x @ self.weight.t()

    def nas_cost(self, dtype_bytes: int) -> Cost:  # no stored parameters, but R is read once
        return Cost(weight_bytes=self.d_z * self.d_in * dtype_bytes, act_bytes=(self.d_in + self.d_z) * dtype_bytes)


class Linear(nn.Linear):
    """A bias-free linear layer (the paper's W_in, W1, W2, W_out) that reports its cost."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__(d_in, d_out, bias=False)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        n = self.in_features * self.out_features
        return Cost(
            params=n,
            weight_bytes=n * dtype_bytes,
            act_bytes=(self.in_features + self.out_features) * dtype_bytes,
        )


LIFTS.register("fixed_random")(FixedRandomLift)
LIFTS.register("learned")(lambda d_in, d_z, seed: Linear(d_in, d_z))
LIFTS.register("none")(lambda d_in, d_z, seed: None)


# ----------------------------------------------------------------------- block
class HourglassBlock(nn.Module):
    """h + W2 act(W1 norm(h)): the residual block of the hourglass paper.

    With d_h < d_z it is the hourglass (wide-narrow-wide) block; with the lift
    ``none`` and d_h > d_z = d_in it is the conventional MLP block.

    ``ffn`` replaces ``W2 act(W1 ·)`` by another module mapping (N, d_z) to
    (N, d_z): an FPE layer pair, a mixture of experts (``nas.spaces.builder.make_ffn``).
    Without it the block keeps the attributes ``w1``, ``act``, ``w2``.
    """

    def __init__(self, d_z: int, d_h: int, activation: str, norm: str, ffn: nn.Module | None = None):
        super().__init__()
        self.d_z = d_z
        self.norm = NORMS.get(norm)(d_z)
        if ffn is None:
            self.w1 = Linear(d_z, d_h)
            self.act = ACTIVATIONS.get(activation)(d_h)
            self.w2 = Linear(d_h, d_z)
        else:
            self.ffn = ffn

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_z)
        if hasattr(self, "ffn"):
            return h + self.ffn(self.norm(h))
        return h + self.w2(self.act(self.w1(self.norm(h))))

    def nas_cost(self, dtype_bytes: int) -> Cost:
        skip = Cost(act_bytes=self.d_z * dtype_bytes)  # the residual add reads h once more
        if hasattr(self, "ffn"):
            return _cost_of(self.norm, dtype_bytes) + _cost_of(self.ffn, dtype_bytes) + skip
        return _cost_of(self.norm, dtype_bytes) + self.w1.nas_cost(dtype_bytes) + self.w2.nas_cost(
            dtype_bytes
        ) + _cost_of(self.act, dtype_bytes) + skip


def _cost_of(module: nn.Module, dtype_bytes: int) -> Cost:
    """Elementwise modules without a ``nas_cost`` are fused into a neighbour: free."""
    if hasattr(module, "nas_cost"):
        return module.nas_cost(dtype_bytes)
    if any(True for _ in module.parameters()):
        raise TypeError(f"{type(module).__name__} has parameters but no nas_cost()")
    return Cost()


# the rest of the vocabulary registers itself on import
from nas.spaces import activations, fpe, lifts, mixers, moe  # noqa: E402,F401
