"""What a candidate is made of: the ordered stages of its forward pass, from its ArchSpec, and their words.

The one description of an architecture: ``nas.spaces.builder.plan`` builds
the model from its stages, and every rendering of an architecture reads them:
``summary``, the one line of ``nas show`` and the dashboard's table;
``describe``, the sentence of an export's docstring and model card (which also
words each block, ``nas.exporter.card``); the dashboard's block diagram
(``nas.dashboard.data.block_diagram``). Needs no torch (``nas show`` imports
it without).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Union

from nas.spaces.arch import HEADED_MIXERS, SEEDED_LIFTS, WEIGHT_KEYS, ArchSpec


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
    kernel: int = 0  # the conv mixer's kernel size over the tokens; 0: a mixer without one
    fpe_alpha: int = 1  # FPE children of each hidden neuron; 1: dense
    fpe_split: str = "random"
    experts: int = 1  # W2 act(W1 ·) pairs behind a router; 1: one pair
    top_k: int = 1  # experts each sample uses
    weights: str = "dense"  # the form of W1 and W2 (a WEIGHTS name)
    weights_arg: int = 0  # the int the form reads (lowrank: rank, monarch: blocks); 0 for dense and circulant
    activation_scope: str = "layer"  # a learnable activation's parameters: per layer | per neuron
    connections: str = "residual"  # residual | gated_dense: every block also reads the earlier streams, gated
    heads: int = 0  # a mixer with heads: how many (mixer_heads); 0: the mixer's default for its width
    layer: str = "nas"  # the layer around a mixer: nas | samout (mixer_layer)

    @property
    def gated_connections(self) -> int:
        """The gated cross-layer connections (gated_dense): block i reads i - 1 earlier streams, depth·(depth-1)/2."""
        return self.depth * (self.depth - 1) // 2 if self.connections == "gated_dense" else 0

    @property
    def hourglass(self) -> bool:
        """Wide-narrow-wide: the bottleneck is narrower than the residual stream."""
        return self.d_h < self.d_z

    def check_weights(self) -> None:
        """ValueError naming the space keys where W1 and W2 cannot take the block's weight form: a rank outside
        [1, min(d_z, d_h)], monarch blocks that do not divide d_z and d_h, a structured form with FPE."""
        if self.weights == "dense":
            return
        if self.fpe_alpha > 1:
            raise ValueError(f"weights {self.weights} does not compose with FPE (fpe_alpha {self.fpe_alpha}): FPE "
                             "expands and prunes a dense W1 and W2; use fpe_alpha 1 with a structured form")
        narrow = min(self.d_z, self.d_h)
        if self.weights == "lowrank" and not 1 <= self.weights_arg <= narrow:
            raise ValueError(f"rank {self.weights_arg} of the lowrank W1 (d_z -> d_h) and W2 must be in "
                             f"[1, min(d_z, d_h)] = [1, {narrow}] (d_z {self.d_z}, hidden_width {self.d_h})")
        if self.weights == "monarch" and (self.weights_arg < 1 or self.d_z % self.weights_arg
                                          or self.d_h % self.weights_arg):
            raise ValueError(f"monarch_blocks {self.weights_arg} must divide both widths of W1 and W2: d_z "
                             f"{self.d_z} and hidden_width {self.d_h}")


@dataclass(frozen=True)
class PoolStage:
    """The mean over the tokens: (B, T, D) -> (B, D)."""

    n_tokens: int
    d: int


@dataclass(frozen=True)
class HeadStage:
    """logits = W_out h: d_in -> d_out; with ``exits`` k ≥ 1, also an exit head after every k-th block before the
    last (``n_exits`` of them), where a sample whose top softmax probability reaches ``threshold`` leaves."""

    d_in: int
    d_out: int
    exits: int = 0  # k; 0: the final head alone
    n_exits: int = 0  # (depth - 1) // k exit heads
    threshold: float = 0.9
    output: str = "linear"  # the head key: linear (W_out) | none (the stream) | w2 (the last block's W2, no skip)

    @property
    def linear(self) -> bool:
        return self.output == "linear"

    @property
    def w2(self) -> bool:
        return self.output == "w2"


Stage = Union[TokenStage, LiftStage, BlockStage, PoolStage, HeadStage]


def token_grid(in_shape: tuple, patch: int, d_in: int) -> tuple[int, int]:
    """(T, F): how many tokens of how many features a sample of ``in_shape`` is cut into.

    - (H, W) and patch P ≥ 1: non-overlapping P×P patches, T = (H/P)(W/P), F = P²;
    - (H, W, C) (a colour image, channels last) and patch P ≥ 1: P×P×C patches, T = (H/P)(W/P), F = P²C;
    - (n,) and patch P ≥ 1: consecutive chunks, T = n/P, F = P;
    - patch 0: the input's own tokens, its first axis: an image's H rows of W
      pixels, a sequence's S steps of F features (more axes flattened into F).

    An empty ``in_shape`` means a flat vector (d_in,). Raises ``ValueError``
    naming ``in_shape`` and ``patch`` when the shape does not divide.
    """
    shape = tuple(in_shape) or (d_in,)
    where = f"in_shape {shape} with patch {patch}"
    if math.prod(shape) != d_in:
        raise ValueError(f"{where}: in_shape holds {math.prod(shape)} features but the input has d_in = {d_in}")
    if patch < 0:
        raise ValueError(f"{where}: patch must be at least 0")
    if patch == 0:
        if len(shape) < 2:
            raise ValueError(f"{where}: a flat vector has no tokens of its own; give patch ≥ 1 "
                             "(features per token, dividing the vector's length)")
        return shape[0], math.prod(shape[1:])
    if len(shape) == 1:
        if shape[0] % patch:
            raise ValueError(f"{where}: {patch} does not divide the vector's length {shape[0]}")
        return shape[0] // patch, patch
    if len(shape) in (2, 3):
        h, w = shape[:2]
        if h % patch or w % patch:
            raise ValueError(f"{where}: {patch}×{patch} patches do not tile a {h}×{w} image")
        return (h // patch) * (w // patch), patch * patch * (shape[2] if len(shape) == 3 else 1)
    raise ValueError(f"{where}: patches cut 1-D, 2-D or (H, W, C) samples only; use patch 0 (tokens along the "
                     "first axis)")


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
    kernel = 0
    if spec.mixer == "conv":
        kernel = spec.mixer_kernel
        if type(kernel) is not int or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"mixer_kernel {kernel!r}: the conv mixer's kernel size must be an odd integer ≥ 1 "
                             "(its 'same' padding puts (k - 1)/2 zeros on each side)")
    if spec.mixer != "none":
        n_tokens, width = token_grid(spec.in_shape, spec.patch, spec.d_in) if spec.d_in else (0, 0)
        out.append(TokenStage(spec.d_in, spec.in_shape, spec.patch, n_tokens, width))
    d_z = spec.lift_width if spec.lift != "none" else width
    heads = spec.mixer_heads if spec.mixer in HEADED_MIXERS else 0
    if heads:
        if type(heads) is not int or heads < 1:
            raise ValueError(f"mixer_heads {heads!r}: a number of heads must be a whole number ≥ 1 (0: the default)")
        if d_z and d_z % heads:
            raise ValueError(f"mixer_heads {heads} does not divide the mixer's width d_z = {d_z}")
    layer = spec.mixer_layer if spec.mixer != "none" else "nas"
    if layer == "samout":
        _plain_only(spec, "mixer_layer samout: SamOut's layer has its own gated feed-forward, not nas's block, so it",
                    "fpe_alpha", "moe_experts", "weights", "connections")
    out.append(LiftStage(spec.lift, width, d_z, spec.lift_seed if spec.lift in SEEDED_LIFTS else None))
    key = WEIGHT_KEYS.get(spec.weights)
    out.append(BlockStage(spec.depth, d_z, spec.hidden_width, spec.norm, spec.activation, spec.mixer, kernel,
                          spec.fpe_alpha, spec.fpe_split, spec.moe_experts, spec.moe_top_k, spec.weights,
                          getattr(spec, key) if key else 0, spec.activation_scope, spec.connections, heads, layer))
    if spec.mixer != "none":
        out.append(PoolStage(out[0].n_tokens, d_z))
    if spec.exits and spec.head != "linear":
        raise ValueError(f"head {spec.head}: no head reads the stream, so there are no heads to exit at; exits "
                         "needs head linear")
    if spec.exits:
        if type(spec.exits) is not int or spec.exits < 0:
            raise ValueError(f"exits {spec.exits!r}: an exit head after every k-th block needs an integer k ≥ 0")
        if type(spec.exit_threshold) not in (int, float) or not 0 < spec.exit_threshold <= 1:
            raise ValueError(f"exit_threshold {spec.exit_threshold!r}: a top softmax probability in (0, 1]")
        out.append(HeadStage(d_z, spec.d_out, spec.exits, (spec.depth - 1) // spec.exits, float(spec.exit_threshold)))
    elif spec.head == "none":
        if spec.mixer != "none" or (spec.d_out and d_z != spec.d_out):
            raise ValueError(f"head none: the residual stream is the output, so it needs the flat MLP (mixer none, "
                             f"found {spec.mixer}) and d_z = d_out (d_z {d_z}, d_out {spec.d_out}: lift none on an "
                             "image task whose input and output sizes agree, or lift_width = d_out)")
        out.append(HeadStage(d_z, spec.d_out, output="none"))
    elif spec.head == "w2":
        _plain_only(spec, "head w2: the last block is the output layer (W2 act(W1 h + b1) + b2), which",
                    "mixer", "moe_experts", "weights", "connections")
        out.append(HeadStage(d_z, spec.d_out, output="w2"))
    else:
        out.append(HeadStage(d_z, spec.d_out))
    return out


_PLAIN = {"mixer": "none", "fpe_alpha": 1, "moe_experts": 1, "weights": "dense", "connections": "residual"}


def _plain_only(spec: ArchSpec, what: str, *keys: str) -> None:
    """ValueError ``what`` does not compose with ..., where any of ``keys`` is set away from its plain value."""
    other = [f"{k} {getattr(spec, k)}" for k in keys if getattr(spec, k) != _PLAIN[k]]
    if other:
        raise ValueError(f"{what} does not compose with {', '.join(other)}")


def stage(parts: list[Stage], kind: type) -> Any:
    """The stage of type ``kind`` in ``parts``, or None."""
    return next((s for s in parts if isinstance(s, kind)), None)


# ------------------------------------------------------------------ in words
def summary(arch: ArchSpec | Mapping[str, Any]) -> str:
    """One line, e.g. 'maxstate/p4 learned 64 | 32×2 gelu layernorm · moe 4 top-2 · fpe α2 random'."""
    parts = stages(arch)
    tokens, lift, b = stage(parts, TokenStage), stage(parts, LiftStage), stage(parts, BlockStage)
    head = f"{lift.name} {lift.d_out}" if lift.name != "none" else "conventional"
    if tokens is not None:
        mixer = f"{b.mixer} k{b.kernel}" if b.kernel else (f"{b.mixer} h{b.heads}" if b.heads else b.mixer)
        head = f"{mixer}/p{tokens.patch} " + (head if lift.name != "none" else "tokens")
    text = f"{head} | {b.d_h}×{b.depth} {activation_words(b)} {b.norm}"
    if b.weights != "dense":
        text += f" · {weights_words(b, short=True)}"
    if b.experts > 1:
        text += f" · moe {b.experts} top-{b.top_k}"
    if b.fpe_alpha > 1:
        text += f" · fpe α{b.fpe_alpha} {b.fpe_split}"
    head = stage(parts, HeadStage)
    if head.exits:
        text += f" · exits /{head.exits} p≥{head.threshold:.3g}"
    if head.w2:
        text += " · w2 out"
    elif not head.linear:
        text += " · no head"
    if b.connections != "residual":
        text += f" · {b.connections}"
    if b.layer != "nas":
        text += f" · {b.layer} layer"
    return text


def activation_words(b: BlockStage) -> str:
    """The activation: 'prelu', or 'prelu per neuron' where each unit has its own parameters."""
    return f"{b.activation} per neuron" if b.activation_scope == "neuron" else b.activation


def weights_words(b: BlockStage, short: bool = False) -> str:
    """The form of W1 and W2: 'lowrank r8' / 'low-rank W1 and W2 (rank 8)'; 'dense' for the dense pair."""
    if short:
        return {"lowrank": f"lowrank r{b.weights_arg}", "monarch": f"monarch {b.weights_arg} blocks"}.get(
            b.weights, b.weights)
    return {"dense": "dense", "lowrank": f"low-rank W1 and W2 (rank {b.weights_arg})",
            "circulant": "block-circulant W1 and W2 (by FFT)",
            "monarch": f"monarch W1 and W2 ({b.weights_arg} blocks)"}.get(b.weights, f"{b.weights} W1 and W2")


MIXER_TITLES = {"token_mlp": "Token-MLP mixer", "maxstate": "MaxState mixer", "attention": "Attention",
                "linear_attention": "Linear-attention", "conv": "Convolutional mixer"}
LIFT_TITLES = {"fixed_random": "fixed random", "hadamard": "Hadamard", "hashed": "hashed ±1"}


def kind(arch: ArchSpec | Mapping[str, Any]) -> str:
    """The family in a few words: 'Hourglass MLP', 'Conventional residual MLP', 'MaxState mixer net', ..."""
    parts = stages(arch)
    b = stage(parts, BlockStage)
    if b.mixer != "none":
        return f"{MIXER_TITLES.get(b.mixer, b.mixer)} net"
    if stage(parts, LiftStage).name == "none":
        return "Conventional residual MLP"  # the paper's baseline: d_z = d_in
    return "Hourglass MLP" if b.hourglass else "Residual MLP"


def describe(arch: ArchSpec | Mapping[str, Any], stored_lift: bool = False) -> str:
    """One sentence, stage by stage; ``stored_lift``: a fixed random lift stored in the weights (an export's)."""
    parts = stages(arch)
    mixed = stage(parts, TokenStage) is not None
    return "; ".join(_phrase(s, stored_lift, mixed) for s in parts)


def _phrase(s: Stage, stored: bool, mixed: bool) -> str:
    if isinstance(s, TokenStage):
        grid = "x".join(str(n) for n in s.in_shape) if s.in_shape else str(s.d_in)
        how = (f"{s.patch}x{s.patch} patches" if s.patch and len(s.in_shape) == 2 else
               f"{s.patch}x{s.patch}x{s.in_shape[2]} patches" if s.patch and len(s.in_shape) == 3 else
               f"chunks of {s.patch}" if s.patch else "its first axis")
        return f"{s.n_tokens} tokens of {s.features} features ({grid} input cut into {how})"
    if isinstance(s, LiftStage):
        if s.name == "none":
            return f"no lift (d_z = {'F' if mixed else 'd_in'} = {s.d_in})"
        how = {"fixed_random": f" (seed {s.seed}, {'stored' if stored else 'regenerated from its seed'})",
               "hadamard": f" (seeded signs and subset, regenerated from seed {s.seed})",
               "hashed": f" (hashed from seed {s.seed})"}.get(s.name, "" if s.seed is None else f" (seed {s.seed})")
        return f"{LIFT_TITLES.get(s.name, s.name)} lift {s.d_in} -> {s.d_out}{how}{' per token' if mixed else ''}"
    if isinstance(s, BlockStage):
        ffn = f", mixture of {s.experts} {'FPE ' if s.fpe_alpha > 1 else ''}experts top-{s.top_k}" \
            if s.experts > 1 else ""
        if s.fpe_alpha > 1:
            ffn += f", FPE alpha {s.fpe_alpha} ({s.fpe_split} split)"
        if s.weights != "dense":
            ffn += f", {weights_words(s)}"
        norm = "no norm" if s.norm == "none" else s.norm
        block = f"residual block {s.d_z} -> {s.d_h} -> {s.d_z} ({norm}, {activation_words(s)}{ffn})"
        gates = (f", each {'block' if s.mixer == 'none' else 'layer'} also reading every earlier stream through a "
                 f"learned gate ({s.gated_connections} gated connections before pruning)") if s.gated_connections \
            else ""
        if s.mixer == "none":
            return f"{s.depth} x {block}{gates}"
        mixer = f"{s.mixer} (kernel {s.kernel})" if s.kernel else (f"{s.mixer} ({s.heads} heads)" if s.heads
                                                                      else s.mixer)
        return f"{s.depth} x ({mixer} across the tokens, then {block} on every token){gates}"
    if isinstance(s, PoolStage):
        return "mean over the tokens"
    if s.exits:  # HeadStage with early exit
        return (f"head {s.d_in} -> {s.d_out}, and {s.n_exits} exit head{'s' if s.n_exits > 1 else ''} "
                f"{s.d_in} -> {s.d_out} after every {s.exits} block{'s' if s.exits > 1 else ''} (a sample leaves "
                f"at the first whose top softmax probability reaches {s.threshold:g})")
    if s.w2:
        return f"no head: the last block's W2 is the output layer ({s.d_out} outputs, no skip)"
    if not s.linear:
        return f"no head: the {s.d_in}-wide stream is the output"
    return f"head {s.d_in} -> {s.d_out}"  # HeadStage
