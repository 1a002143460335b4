"""What a candidate is made of: the ordered stages of its forward pass, from its ArchSpec.

The one description of an architecture: ``nas.spaces.builder.plan`` builds
the model from it, and every rendering of an architecture reads it: the
one-line text of ``nas show`` and the dashboard's table
(``nas.search.format.describe_arch``), the dashboard's block diagram
(``nas.dashboard.data.block_diagram``), and the sentence and paragraphs of an
export's docstring and model card (``nas.exporter.card``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Union

from nas.spaces.arch import SEEDED_LIFTS, ArchSpec
from nas.spaces.blocks import MIXERS
from nas.spaces.mixers import token_grid


@dataclass(frozen=True)
class TokenStage:
    """The flattened sample (B, d_in) cut into ``n_tokens`` tokens of ``features`` each (``token_grid``)."""

    d_in: int
    in_shape: tuple[int, ...]
    patch: int  # features per token: P×P patches of an image, P consecutive features; 0: the first axis
    n_tokens: int  # T; 0 where the task is unknown (an ArchSpec made from a space file's values alone)
    features: int  # F


@dataclass(frozen=True)
class LiftStage:
    """z = lift(x), d_in -> d_out, on every token after a ``TokenStage``; ``name`` none: no lift, d_out = d_in."""

    name: str  # its LIFTS name
    d_in: int
    d_out: int
    seed: int | None  # a seeded lift's seed (SEEDED_LIFTS), else None


@dataclass(frozen=True)
class BlockStage:
    """``depth`` residual blocks h + W2 act(W1 norm(h)) at width d_z, each after a token mixer, if any."""

    depth: int
    d_z: int
    d_h: int
    norm: str
    activation: str
    mixer: str = "none"  # its MIXERS name; none: the flat path
    positions: bool = False  # a learned position table is added to the embedded tokens before the first layer
    fpe_alpha: int = 1  # FPE children of each hidden neuron; 1: dense
    fpe_split: str = "random"
    experts: int = 1  # W2 act(W1 ·) pairs behind a router; 1: one pair
    top_k: int = 1  # experts each sample uses

    @property
    def hourglass(self) -> bool:
        """Wide-narrow-wide: the bottleneck is narrower than the residual stream."""
        return self.d_h < self.d_z


@dataclass(frozen=True)
class PoolStage:
    """The mean over the tokens: (B, T, D) -> (B, D)."""

    n_tokens: int
    d: int


@dataclass(frozen=True)
class HeadStage:
    """logits = W_out h: d_in -> d_out."""

    d_in: int
    d_out: int


Stage = Union[TokenStage, LiftStage, BlockStage, PoolStage, HeadStage]


def from_values(values: Mapping[str, Any]) -> ArchSpec:
    """An ArchSpec from its JSON or from a candidate's values in a space file (other keys ignored; d_in and
    d_out 0 where the task is not given)."""
    names = {f.name for f in dataclasses.fields(ArchSpec)}
    return ArchSpec(**{"d_in": 0, "d_out": 0, **{k: v for k, v in values.items() if k in names}})


def stages(arch: ArchSpec | Mapping[str, Any]) -> list[Stage]:
    """The stages of ``arch`` (an ArchSpec, its JSON, or a space file's values) in the order they run:
    [TokenStage], LiftStage, BlockStage, [PoolStage], HeadStage; the bracketed ones for a token mixer."""
    spec = arch if isinstance(arch, ArchSpec) else from_values(arch)
    out: list[Stage] = []
    width = spec.d_in
    if spec.mixer != "none":
        n_tokens, width = token_grid(spec.in_shape, spec.patch, spec.d_in) if spec.d_in else (0, 0)
        out.append(TokenStage(spec.d_in, spec.in_shape, spec.patch, n_tokens, width))
    d_z = spec.lift_width if spec.lift != "none" else width
    out.append(LiftStage(spec.lift, width, d_z, spec.lift_seed if spec.lift in SEEDED_LIFTS else None))
    mixer = MIXERS.get(spec.mixer)
    out.append(BlockStage(spec.depth, d_z, spec.hidden_width, spec.norm, spec.activation, spec.mixer,
                          bool(mixer is not None and mixer.positions), spec.fpe_alpha, spec.fpe_split,
                          spec.moe_experts, spec.moe_top_k))
    if spec.mixer != "none":
        out.append(PoolStage(out[0].n_tokens, d_z))
    out.append(HeadStage(d_z, spec.d_out))
    return out


def stage(parts: list[Stage], kind: type) -> Any:
    """The stage of type ``kind`` in ``parts``, or None."""
    return next((s for s in parts if isinstance(s, kind)), None)
