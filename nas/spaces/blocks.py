"""The block vocabulary: lifts, norms, activations, the residual hourglass block and the flat model.

Every block is written once, as a portable class or function: its code uses only torch and math, so
``nas export`` copies its source into the exported model.py (``nas.exporter.portable``). Blocks take
factories, not names (timm's ``act_layer``): the registries turn a space file's names into factories
and ``nas.spaces.builder`` wires them. What only nas needs stays out of the copies: every module reports
its cost through ``nas_cost(dtype_bytes) -> Cost`` (``nas.spaces.cost`` states the model and sums it;
``nas_*`` members are cut from copied source), and a block with a Triton kernel has a training subclass
(``Nas...``) that dispatches to it. Shapes are for a batch of B samples.
"""

from __future__ import annotations

import math
import torch
from torch import nn

from nas.spaces.base import (ACTIVATIONS, CONNECTIONS, LIFTS, MIXERS, NORMS, WEIGHTS, Cost,  # noqa: F401 (re-exported)
                             Linear, cost_of)


# ----------------------------------------------------------------- activations
def relu(width: int) -> nn.Module:
    """ReLU. Every activation is built from its layer's width; these four have no parameters and ignore it."""
    return nn.ReLU()


def gelu(width: int) -> nn.Module:
    """The exact (erf) GELU."""
    return nn.GELU()


def silu(width: int) -> nn.Module:
    """SiLU, x·sigmoid(x)."""
    return nn.SiLU()


def tanh(width: int) -> nn.Module:
    """tanh."""
    return nn.Tanh()


ACTIVATIONS.register("relu")(relu)
ACTIVATIONS.register("gelu")(gelu)
ACTIVATIONS.register("silu")(silu)
ACTIVATIONS.register("tanh")(tanh)


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


def no_norm(width: int) -> nn.Module:
    """No norm: the block reads h itself."""
    return nn.Identity()


NORMS.register("batchnorm")(BatchNorm)
NORMS.register("layernorm")(LayerNorm)
NORMS.register("none")(no_norm)


# ----------------------------------------------------------------------- lifts
class FixedRandomLift(nn.Module):
    """z = x Rᵀ with R ~ N(0, 1/d_in), seeded and never trained.

    R is a non-persistent buffer: it is not saved with the weights but
    regenerated from ``seed``, so it costs no stored parameters. It is drawn
    from torch's Gaussian generator, which no kernel can evaluate entry by
    entry, so an inference pass still reads R from memory: its d_z·d_in
    entries count as weight bytes. The ``hashed`` lift (``nas.spaces.lifts``)
    is the variant whose kernel generates R inside the product (0 bytes).
    ``seed=None``: R is a persistent buffer read from the weights instead
    (``nas export --store-lift``).
    """

    def __init__(self, d_in: int, d_z: int, seed: int | None):
        super().__init__()
        self.d_in, self.d_z, self.seed = d_in, d_z, seed
        self.register_buffer("weight", torch.empty(d_z, d_in), persistent=seed is None)  # R (d_z, d_in)
        self.regenerate()

    @torch.no_grad()
    def regenerate(self) -> None:
        if self.seed is None or self.weight.device.type == "meta":
            return
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        r = torch.randn(self.d_z, self.d_in, generator=gen) / math.sqrt(self.d_in)
        self.weight.copy_(r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_z)
        return x @ self.weight.t()

    def nas_cost(self, dtype_bytes: int) -> Cost:  # no stored parameters, but R is read once
        return Cost(weight_bytes=self.d_z * self.d_in * dtype_bytes, act_bytes=(self.d_in + self.d_z) * dtype_bytes)


LIFTS.register("fixed_random")(FixedRandomLift)
LIFTS.register("learned")(Linear)
LIFTS.register("none")(None)
WEIGHTS.register("dense")(Linear)


# ----------------------------------------------------------------------- block
class HourglassBlock(nn.Module):
    """h + W2 act(W1 norm(h)): the residual block of the hourglass paper, no biases.

    With d_h < d_z it is the hourglass (wide-narrow-wide) block; with no lift
    and d_h > d_z = d_in it is the conventional MLP block. ``norm`` and ``act``
    are factories of a width. ``ffn``, a module mapping (N, d_z) to (N, d_z),
    replaces ``W2 act(W1 ·)``: an FPE pair, a mixture of experts. Without it
    the block has the attributes ``w1``, ``act``, ``w2``.
    """

    def __init__(self, d_z: int, d_h: int, norm, act=None, ffn: nn.Module | None = None):
        super().__init__()
        self.d_z = d_z
        self.norm = norm(d_z)
        if ffn is None:
            self.w1 = Linear(d_z, d_h)
            self.act = act(d_h)
            self.w2 = Linear(d_h, d_z)
        else:
            self.ffn = ffn

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_z)
        if hasattr(self, "ffn"):
            return h + self.ffn(self.norm(h))
        return h + self.w2(self.act(self.w1(self.norm(h))))  # (N, d_z) -> (N, d_h) -> (N, d_z)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        skip = Cost(act_bytes=self.d_z * dtype_bytes)  # the residual add reads h once more
        if hasattr(self, "ffn"):
            return cost_of(self.norm, dtype_bytes) + cost_of(self.ffn, dtype_bytes) + skip
        return cost_of(self.norm, dtype_bytes) + self.w1.nas_cost(dtype_bytes) + self.w2.nas_cost(
            dtype_bytes
        ) + cost_of(self.act, dtype_bytes) + skip


class OutputBlock(nn.Module):
    """The output layer ``W2 act(W1 norm(h) + b1) + b2``: no skip, d_z -> d_h -> d_out, with a hidden and an
    output bias (``head: w2``; at depth 1 without a lift, the FPE paper's one-hidden-layer network). ``ffn``
    (an FPE pair mapping d_z to d_out, with its own b1) replaces ``W2 act(W1 · + b1)``."""

    def __init__(self, d_z: int, d_h: int, d_out: int, norm, act=None, ffn: nn.Module | None = None):
        super().__init__()
        self.norm = norm(d_z)
        if ffn is None:
            self.w1 = Linear(d_z, d_h)
            self.b1 = nn.Parameter(torch.zeros(d_h))
            self.act = act(d_h)
            self.w2 = Linear(d_h, d_out)
        else:
            self.ffn = ffn
        self.b2 = nn.Parameter(torch.zeros(d_out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_out)
        if hasattr(self, "ffn"):
            return self.ffn(self.norm(h)) + self.b2
        return self.w2(self.act(self.w1(self.norm(h)) + self.b1)) + self.b2

    def nas_cost(self, dtype_bytes: int) -> Cost:
        biases = self.b2.numel() + (0 if hasattr(self, "ffn") else self.b1.numel())  # added where they are read
        own = Cost(params=biases, weight_bytes=biases * dtype_bytes)
        if hasattr(self, "ffn"):
            return cost_of(self.norm, dtype_bytes) + cost_of(self.ffn, dtype_bytes) + own
        return (cost_of(self.norm, dtype_bytes) + self.w1.nas_cost(dtype_bytes) + self.w2.nas_cost(dtype_bytes)
                + cost_of(self.act, dtype_bytes) + own)


# ----------------------------------------------------------------- connections
GATE_PENALTY = 1e-3  # the default weight λ of the L1 penalty on the gates (the space key gate_penalty)
GATE_THRESHOLD = 0.01  # a gate that ends training with |g| below this is pruned before the model is scored


class DenseGates(nn.Module):
    """Gated cross-layer connections: every block may read every earlier stream through a learned scalar gate.

    With z_0 the stream entering the first block (the lift's output) and z_i
    the stream after block i (a plain tensor, as in the residual model), block
    i+1 (i = 0..depth-1) reads, instead of z_i alone::

        u_i = z_i + sum_{j < i} g[i, j] * z_j        z_{i+1} = block_{i+1}(u_i)

    (each block keeps its own residual: z_{i+1} = u_i + W2 act(W1 norm(u_i))).
    So block 1 has no extra input and block i+1 has i: depth·(depth-1)/2
    gates in all, stored in ``gate`` in the order (1,0), (2,0), (2,1), (3,0), ...
    They start at 0, where the model is exactly the residual one. ``keep``
    (a persistent bool buffer, saved with the weights) marks the connections
    still present: a pruned one has its gate set to 0 and is skipped, so it
    reads nothing. ``width``: the values of the stream per token (d_z).
    """

    def __init__(self, depth: int, width: int):
        super().__init__()
        self.depth, self.width = depth, width
        n = depth * (depth - 1) // 2
        self.gate = nn.Parameter(torch.zeros(n))  # draws no random numbers: the blocks' initialisation is unchanged
        self.register_buffer("keep", torch.ones(n, dtype=torch.bool))
        self.relink([True] * n)

    def relink(self, keep: list | None = None) -> None:
        """Set ``links``, the connections ``forward`` runs (block i -> [(j, gate index)], a plain list: static
        for torch.export), from ``keep`` (default: the buffer)."""
        keep = self.keep.tolist() if keep is None else keep
        self.links = [[(j, i * (i - 1) // 2 + j) for j in range(i) if keep[i * (i - 1) // 2 + j]]
                      for i in range(self.depth)]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.keep.device.type != "meta":
            self.relink()

    def forward(self, i: int, streams: list) -> torch.Tensor:
        """u_i, the input of block i+1, from ``streams`` = [z_0, ..., z_i] (any shape, all alike)."""
        u = streams[i]
        for j, k in self.links[i]:
            u = u + self.gate[k] * streams[j]
        return u

    def nas_penalty(self) -> torch.Tensor:
        """λ · the L1 norm of the kept gates (pruned ones are 0 already): λ is the candidate's ``gate_penalty``,
        which training sets as ``nas_weight`` (GATE_PENALTY where it did not)."""
        return getattr(self, "nas_weight", GATE_PENALTY) * self.gate.abs().sum()

    @torch.no_grad()
    def nas_prune(self, threshold: float = GATE_THRESHOLD) -> int:
        """Remove the connections whose gate is below ``threshold`` in magnitude (gate set to 0, ``keep`` False);
        return how many are kept."""
        self.keep &= self.gate.abs() >= threshold
        self.gate.masked_fill_(~self.keep, 0.0)
        self.relink()
        return int(self.keep.sum())

    def nas_kept(self) -> int:
        return sum(len(row) for row in self.links)

    def nas_cost(self, dtype_bytes: int, block: int | None = None) -> Cost:
        """Per kept connection: its gate (1 param, read once) and one read of the earlier stream (width values);
        the multiply-add is fused into the add that forms u_i, which writes nothing more. ``block`` i: only the
        connections into block i+1 (an early exit's prefix sums them block by block)."""
        n = self.nas_kept() if block is None else len(self.links[block])
        return Cost(params=n, weight_bytes=n * dtype_bytes, act_bytes=n * self.width * dtype_bytes)


CONNECTIONS.register("residual")(None)
CONNECTIONS.register("gated_dense")(DenseGates)


class HourglassMLP(nn.Module):
    """lift -> depth × block -> head, as in the hourglass paper: x (B, d_in) -> z (B, d_z) -> logits (B, d_out).

    ``lift``: the lift module (d_in -> d_z), or None: d_z = d_in and this is
    the paper's conventional residual MLP. ``block()`` makes one residual
    block (d_z -> d_z), called ``depth`` times. ``gates``: a ``DenseGates``
    giving every block the gated streams of the earlier ones, or None (each
    block reads the stream after the one before it alone).

    ``head=False``: no output head, the stream after the last block is the output (d_z = d_out: the paper's
    conventional network without W_in and W_out). ``last()``: the last block is this one instead (an
    ``OutputBlock``, d_z -> d_out; with ``head=False``: ``head: w2``).

    ``exits`` k ≥ 1: early exit. A bias-free exit head d_z -> d_out reads the
    residual stream after every k-th block before the last (blocks k, 2k, ...;
    (depth - 1) // k heads). ``all_logits`` gives every head's logits (the
    exit heads', then the final head's: training's joint loss); in eval mode
    ``forward`` is the early-exit inference (``early_exit``): a sample leaves
    at the first exit head whose top softmax probability reaches
    ``exit_threshold``, the final head answers the rest. In training mode
    ``forward`` gives the final head's logits.
    """

    def __init__(self, lift: nn.Module | None, block, depth: int, d_z: int, d_out: int, exits: int = 0,
                 exit_threshold: float = 1.0, gates: nn.Module | None = None, head: bool = True, last=None):
        super().__init__()
        self.lift = lift
        self.blocks = nn.ModuleList([*(block() for _ in range(depth - (last is not None))),
                                     *([last()] if last is not None else [])])
        self.head = Linear(d_z, d_out) if head else nn.Identity()  # no head: the stream (d_z = d_out) is the output
        self.exits, self.exit_threshold = exits, exit_threshold
        self.exit_heads = nn.ModuleList(Linear(d_z, d_out) for _ in range((depth - 1) // exits if exits else 0))
        self.gates = gates

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_out)
        if len(self.exit_heads) and not self.training:
            return self.exit_forward(x)[0]
        return self.all_logits(x, exits=False)[-1]

    def all_logits(self, x: torch.Tensor, exits: bool = True) -> list[torch.Tensor]:
        """Every head's logits for every sample: the exit heads' in order, then the final head's; each (B, d_out).
        ``exits=False``: the final head's alone."""
        h = self.lift(x) if self.lift is not None else x  # (B, d_z)
        return every_head(h, self.blocks, self.exit_heads if exits else (), self.exits, self.head, pool=False,
                          gates=self.gates)

    def exit_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The early-exit inference: (logits (B, d_out) of the head each sample left at, that head's index (B,):
        j for exit head j, len(exit_heads) for the final head)."""
        h = self.lift(x) if self.lift is not None else x  # (B, d_z)
        return early_exit(h, self.blocks, self.exit_heads, self.exits, self.exit_threshold, self.head, pool=False,
                          gates=self.gates)

    def nas_cost(self, dtype_bytes: int = 4) -> Cost:
        """The worst case: every block, every exit head (a sample that leaves at none), the final head."""
        return self.nas_exit_costs(dtype_bytes)[-1]

    def nas_exit_costs(self, dtype_bytes: int = 4) -> list[Cost]:
        """The cost of a sample leaving at each head: the lift, the blocks before it (with the gated connections
        into them), the exit heads it evaluated on the way and its own; the last entry (the final head) is the
        whole model."""
        total = cost_of(self.lift, dtype_bytes) if self.lift is not None else Cost()
        out = []
        for i, block in enumerate(self.blocks):
            total = total + block.nas_cost(dtype_bytes)
            if self.gates is not None:
                total = total + self.gates.nas_cost(dtype_bytes, block=i)
            if self.exits and (i + 1) % self.exits == 0 and (i + 1) // self.exits <= len(self.exit_heads):
                total = total + self.exit_heads[(i + 1) // self.exits - 1].nas_cost(dtype_bytes)
                out.append(total)
        return out + [total + cost_of(self.head, dtype_bytes)]


def every_head(h: torch.Tensor, layers, heads, every: int, head: nn.Module, pool: bool,
               gates: nn.Module | None = None) -> list[torch.Tensor]:
    """Run ``layers`` on h (B, ...), each reading the gated earlier streams where ``gates`` (a ``DenseGates``)
    is given, and return every head's logits for every sample: ``heads[j]`` after layer (j + 1)·``every``, then
    ``head`` after the last; each (B, d_out). ``pool``: a head reads the mean over the tokens (B, T, D) -> (B, D).
    """
    streams = [h]  # z_0, z_1, ...: the stream after each layer (kept only for the gates)
    out = []
    for i, layer in enumerate(layers):
        if gates is not None:
            h = gates(i, streams)  # z_i plus the gated earlier streams
        h = layer(h)
        if gates is not None:
            streams.append(h)
        j = (i + 1) // every - 1 if every else -1
        if every and (i + 1) % every == 0 and j < len(heads):
            out.append(heads[j](h.mean(dim=1) if pool else h))
    return out + [head(h.mean(dim=1) if pool else h)]


def early_exit(h: torch.Tensor, layers, heads, every: int, threshold: float, head: nn.Module,
               pool: bool, gates: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``layers`` on h (B, ...) and leave early: after every ``every``-th layer with an exit head
    (``heads[j]`` after layer (j + 1)·every), the samples whose top softmax probability reaches ``threshold``
    take that head's logits and stop; the rest go on (the batch shrinks, and with it the earlier streams
    ``gates``, a ``DenseGates`` or None, reads), and ``head`` answers those left after the last layer.
    ``pool``: a head reads the mean over the tokens (B, T, D) -> (B, D). Returns (logits (B, d_out), the
    index of the head each sample left at (B,): j, or len(heads) for ``head``).
    """
    n = h.shape[0]
    alive = torch.arange(n, device=h.device)  # the samples still running, by their row in the batch
    where = torch.full((n,), len(heads), dtype=torch.long, device=h.device)
    streams = [h]  # the stream before the first layer and after each one (read only by the gates)
    out = None
    for i, layer in enumerate(layers):
        if gates is not None:
            h = gates(i, streams)
        h = layer(h)
        if gates is not None:
            streams.append(h)
        j = (i + 1) // every - 1
        if (i + 1) % every or j >= len(heads):
            continue
        logits = heads[j](h.mean(dim=1) if pool else h)  # (b, d_out)
        if out is None:
            out = logits.new_empty(n, logits.shape[1])
        leave = torch.softmax(logits, dim=1).amax(dim=1) >= threshold  # (b,)
        out[alive[leave]] = logits[leave]
        where[alive[leave]] = j
        stay = ~leave
        h, alive = h[stay], alive[stay]
        if gates is not None:
            streams = [s[stay] for s in streams]
        if alive.numel() == 0:
            return out, where
    logits = head(h.mean(dim=1) if pool else h)
    if out is None:
        return logits, where
    out[alive] = logits
    return out, where
