"""What every block family builds on: ``Cost``, the bias-free ``Linear``, the registries and ``cost_of``.

The families (``blocks``, ``activations``, ``fpe``, ``lifts``, ``mixers``, ``moe``, ``structured``) import
this module and register their entries in its registries; ``nas.spaces.vocabulary`` imports them all, in
order, so a registry is complete once it has been imported. Imports run one way: base <- the families <-
vocabulary <- the builder and the schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from nas.spaces import hooks
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
LIFTS: Registry = Registry("lift")  # name -> factory(d_in, d_z[, seed]) -> nn.Module (seed: SEEDED_LIFTS), or None
# name -> class(n_tokens, d[, kernel]) with a bool ``positions``, or None (nas.spaces.mixers)
MIXERS: Registry = Registry("mixer")
WEIGHTS: Registry = Registry("weight form")  # name -> class(d_in, d_out[, int: WEIGHT_KEYS]) (nas.spaces.structured)
CONNECTIONS: Registry = Registry("connection pattern")  # name -> class(depth, d_z) of the blocks' extra inputs, or None


class Linear(nn.Linear):
    """A bias-free linear layer: the paper's W_in (the ``learned`` lift), W1, W2 and W_out."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__(d_in, d_out, bias=False)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        n = self.in_features * self.out_features
        return Cost(
            params=n,
            weight_bytes=n * dtype_bytes,
            act_bytes=(self.in_features + self.out_features) * dtype_bytes,
        )


def cost_of(module: nn.Module, dtype_bytes: int) -> Cost:
    """The module's ``nas_cost`` (``nas.spaces.hooks.NasHooks``); elementwise modules without one are fused
    into a neighbour: free."""
    if hooks.has(module, "nas_cost"):
        return module.nas_cost(dtype_bytes)
    if any(True for _ in module.parameters()):
        raise TypeError(f"{type(module).__name__} has parameters but no nas_cost()")
    return Cost()
