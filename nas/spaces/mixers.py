"""Token mixers (registered in ``MIXERS``): the input cut into tokens, mixed, pooled.

A mixer candidate (``mixer`` other than ``none``) is, for a sample x of
``in_shape`` arriving flattened as (B, d_in)::

    t = tokens(x)                                  # (B, T, F), see ``nas.spaces.stages.token_grid``
    h = embed(t) [+ pos]                           # (B, T, D): the spec's lift applied to every token
    for i in 1..depth:
        h = h + mix(norm(h))                       # across tokens: token_mlp | maxstate | attention |
                                                   #   linear_attention | conv
        h = HourglassBlock(h)                      # across features, every token alike (its own residual)
    logits = W_out mean_T(h)                       # (B, d_out)

The model width D reuses the lift's settings: ``embed`` is the spec's lift
from F token features to D = ``lift_width`` (``learned``: a bias-free
Linear(F, D); ``fixed_random``: a seeded N(0, 1/F) matrix, not stored), and
with ``lift: none`` there is no embedding and D = F. The channel block is the
flat path's own ``HourglassBlock(D, hidden_width, activation, norm, ffn)``
run on the tokens flattened to (B·T, D), so FPE, mixtures of experts and
activations compose with every mixer.

Costs follow ``nas.spaces.cost``, for one sample = all T tokens: weights that
every token shares are read once, activations move T times. Each mixer class
says whether the net adds a learned position table before it (``positions``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.kernels.maxstate import maxstate_combine, maxstate_combine_reference
from nas.spaces.base import MIXERS, Cost, Linear, cost_of
from nas.spaces.blocks import early_exit, every_head
from nas.spaces.stages import token_grid

MIXERS.register("none")(None)  # the flat path: nas.spaces.blocks.HourglassMLP


# -------------------------------------------------------------------- tokens
class Tokens(nn.Module):
    """(B, d_in) -> (B, T, F): the flattened sample cut as ``token_grid`` says (a view and a copy, no weights)."""

    def __init__(self, in_shape: tuple, patch: int, d_in: int):
        super().__init__()
        self.shape = tuple(in_shape) or (d_in,)
        self.patch = patch
        self.n_tokens, self.features = token_grid(self.shape, patch, d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.patch and len(self.shape) in (2, 3):
            (h, w), c, p = self.shape[:2], (self.shape[2:] or (1,))[0], self.patch
            x = x.reshape(b, h // p, p, w // p, p, c).transpose(2, 3)  # (B, H/P, W/P, P, P, C)
        return x.reshape(b, self.n_tokens, self.features)


def _heads(d: int, heads: int = 0) -> int:
    """Heads of a width-d mixer: ``heads`` where given (mixer_heads; it must divide d), else d/64 when 64 divides
    d (head size 64), else 4 when 4 divides d, else 1."""
    if heads:
        if d % heads:
            raise ValueError(f"{heads} heads do not divide the mixer's width {d}")
        return heads
    if d % 64 == 0:
        return d // 64
    return 4 if d % 4 == 0 else 1


def _per_token(cost: Cost, n_tokens: int) -> Cost:
    """A per-token cost run on T tokens: the shared weights read once, the activations T times."""
    return Cost(cost.params, cost.weight_bytes, cost.act_bytes * n_tokens)


# -------------------------------------------------------------------- mixers
class TokenMLP(nn.Module):
    """MLP-Mixer's token mixing: every feature channel through an MLP over the T tokens.

    (B, T, D) -> (B, T, D): y = (W2 gelu(W1 hᵀ))ᵀ with W1: T -> 2T, W2: 2T -> T,
    bias-free, shared by the D channels (token-hidden width 2T).
    Cost: 4T² weights; per channel the two layers move T + 2T + 2T + T values.
    """

    positions = True  # the net adds a learned position table (T, D) to the embedded tokens

    def __init__(self, n_tokens: int, d: int):
        super().__init__()
        self.n_tokens, self.d = n_tokens, d
        self.w1 = Linear(n_tokens, 2 * n_tokens)
        self.w2 = Linear(2 * n_tokens, n_tokens)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h.transpose(1, 2)  # (B, D, T)
        return self.w2(F.gelu(self.w1(h))).transpose(1, 2)  # (B, T, D)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        return _per_token(self.w1.nas_cost(dtype_bytes) + self.w2.nas_cost(dtype_bytes), self.d)


class MaxState(nn.Module):
    """MaxStateSuper (dfytensor/OpenASH ``open_ash.py``): a running maximum in place of softmax attention.

    (B, T, D) -> (B, T, D), causal, O(T) time and memory::

        a, b, c, d = split(W h)                    # W: D -> 4D, bias-free; each (B, T, D) in H heads of D/H
        e = cummax(c) along T                      # e_t = max_{s ≤ t} c_s
        g = G(cat_heads[a, b, c, d, e]) * e        # G: 5H -> H, bias-free, mixes the heads per position and channel
        y = a·b + α1·b + α2·d + a·(α3·e + d) + b·(c + e) + c·e + g     # α1..α3 learnable, init 0.5

    As in the reference, there is no output projection and the output
    channels come out channel-major (D/H, H): a fixed permutation.
    Cost: 4D² + 5H² + 3 weights; W moves (D + 4D) per token, the fused scan
    and combination read a, b, c, d and write y: 5D per token.
    """

    positions = False  # the running maximum is causal, so order-aware: no position table

    def __init__(self, n_tokens: int, d: int, heads: int = 0):
        super().__init__()
        self.n_tokens, self.d, self.heads = n_tokens, d, _heads(d, heads)
        self.w = Linear(d, 4 * d)
        self.g = Linear(5 * self.heads, self.heads)
        self.alpha = nn.Parameter(torch.full((3,), 0.5))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        return maxstate_combine_reference(self.w(h), self.g.weight, self.alpha, self.heads)  # W h: (B, T, 4D)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        n = self.g.in_features * self.g.out_features + self.alpha.numel()
        combine = Cost(params=n, weight_bytes=n * dtype_bytes, act_bytes=5 * self.d * self.n_tokens * dtype_bytes)
        return _per_token(self.w.nas_cost(dtype_bytes), self.n_tokens) + combine


class NasMaxState(MaxState):
    """nas's maxstate mixer: the scan and combination as one fused Triton kernel where
    ``nas.kernels.backend`` says so, else the PyTorch reference (``nas.kernels.maxstate``)."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        return maxstate_combine(self.w(h), self.g.weight, self.alpha, self.heads)


class Attention(nn.Module):
    """Softmax multi-head self-attention, bidirectional (the baseline the cheap mixers replace).

    (B, T, D) -> (B, T, D): q, k, v = split(W_qkv h) in H heads (``_heads``);
    y = W_o softmax(q kᵀ / √(D/H)) v, bias-free (``scaled_dot_product_attention``).
    Cost: 4D² weights; W_qkv moves D + 3D and W_o 2D per token; q kᵀ reads q, k
    and writes the H·T² scores, which softmax·v reads back with v before writing
    the T·D output: the H·T² score matrix is written once and read once, the
    term that grows quadratically in T.
    """

    positions = True  # without a position table attention cannot tell the tokens apart

    def __init__(self, n_tokens: int, d: int, heads: int = 0):
        super().__init__()
        self.n_tokens, self.d, self.heads = n_tokens, d, _heads(d, heads)
        self.qkv = Linear(d, 3 * d)
        self.out = Linear(d, d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        bsz, t, d = h.shape
        q, k, v = self.qkv(h).view(bsz, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, T, D/H)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, D/H)
        return self.out(y.transpose(1, 2).reshape(bsz, t, d))

    def nas_cost(self, dtype_bytes: int) -> Cost:
        t, d = self.n_tokens, self.d
        scores = (2 * t * d + self.heads * t * t) + (self.heads * t * t + 2 * t * d)  # q kᵀ, then softmax·v
        return (_per_token(self.qkv.nas_cost(dtype_bytes) + self.out.nas_cost(dtype_bytes), t)
                + Cost(act_bytes=scores * dtype_bytes))


class LinearAttention(nn.Module):
    """Kernelised (linear) multi-head self-attention, bidirectional, O(T) (Katharopoulos et al. 2020).

    (B, T, D) -> (B, T, D): q, k, v = split(W_qkv h) in H heads (``_heads``), as ``Attention``;
    softmax(q kᵀ) is replaced by the feature map φ(x) = elu(x) + 1 (positive), so every token i reads::

        y_i = φ(q_i)ᵀ S / (φ(q_i)ᵀ z + eps)       S = Σ_j φ(k_j) v_jᵀ  (D/H × D/H),  z = Σ_j φ(k_j)  (D/H)

    per head, then W_o, bias-free. Both sums run over all T tokens of the sample, so the state S, z is
    built once and read by every token: no T×T matrix. φ > 0 keeps the normaliser positive, and ``eps``
    keeps it from reaching 0 where φ(q)·φ(k) underflows (q or k below about -100 in float32): the
    output is then 0, not 0/0. Unlike softmax, nothing is shifted by a maximum: activations of
    magnitude near 1e12 would overflow float32's sums (a norm before the mixer keeps them O(1)).
    Cost: 4D² weights; W_qkv moves D + 3D and W_o 2D per token; building S and z reads φ(k), v and
    writes H·(D/H)² + D values, then reading them back with φ(q) writes the T·D output: linear in T
    (the state is (D/H)² per head, independent of T).
    """

    positions = True  # a sum over all tokens cannot tell them apart without a position table
    eps = 1e-6  # added to the normaliser

    def __init__(self, n_tokens: int, d: int, heads: int = 0):
        super().__init__()
        self.n_tokens, self.d, self.heads = n_tokens, d, _heads(d, heads)
        self.qkv = Linear(d, 3 * d)
        self.out = Linear(d, d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        bsz, t, d = h.shape
        q, k, v = self.qkv(h).view(bsz, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, T, D/H)
        q, k = F.elu(q) + 1, F.elu(k) + 1
        state = k.transpose(2, 3) @ v  # S: (B, H, D/H, D/H)
        norm = q @ k.sum(dim=2).unsqueeze(3)  # φ(q_i)ᵀ z: (B, H, T, 1)
        y = (q @ state) / (norm + self.eps)  # (B, H, T, D/H)
        return self.out(y.transpose(1, 2).reshape(bsz, t, d))

    def nas_cost(self, dtype_bytes: int) -> Cost:
        t, d = self.n_tokens, self.d
        state = d * d // self.heads + d  # S (H heads of (D/H)²) and z (H·D/H)
        mixing = (2 * t * d + state) + (t * d + state + t * d)  # S, z from φ(k), v; then φ(q) against them
        return (_per_token(self.qkv.nas_cost(dtype_bytes) + self.out.nas_cost(dtype_bytes), t)
                + Cost(act_bytes=mixing * dtype_bytes))


class TokenConv(nn.Module):
    """A depthwise 1-D convolution over the tokens: every channel its own kernel of ``kernel`` taps.

    (B, T, D) -> (B, T, D): y_{t,c} = Σ_{j=-r..r} w_{c,j} h_{t+j,c}, r = (kernel - 1)/2, with zeros
    beyond the ends ('same' padding, so the kernel size must be odd), bias-free. A token sees its r
    neighbours on each side; stacked layers widen the view by 2r each. Taps beyond the T - 1
    neighbours (kernel > 2T - 1) only ever read padding, but are stored all the same.
    Cost: D·kernel weights; it reads the T·D input and writes the T·D output.
    """

    positions = False  # a convolution sees the order of its neighbours: no position table

    def __init__(self, n_tokens: int, d: int, kernel: int = 3):
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"the conv mixer's kernel size must be odd and at least 1, found {kernel}")
        self.n_tokens, self.d, self.kernel = n_tokens, d, kernel
        self.conv = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d, bias=False)  # weight (D, 1, kernel)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(h.transpose(1, 2)).transpose(1, 2)  # (B, D, T) -> (B, T, D)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        n = self.d * self.kernel
        return Cost(params=n, weight_bytes=n * dtype_bytes, act_bytes=2 * self.n_tokens * self.d * dtype_bytes)


# -------------------------------------------------------------------- the net
class MixerLayer(nn.Module):
    """h + mix(norm(h)), then the channel block on every token: (B, T, D) -> (B, T, D)."""

    def __init__(self, mix: nn.Module, block: nn.Module, n_tokens: int, d: int, norm):
        super().__init__()
        self.n_tokens, self.d = n_tokens, d
        self.norm = norm(d)
        self.mix = mix
        self.block = block

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        bsz, t, d = h.shape
        h = h + self.mix(self.norm(h.reshape(bsz * t, d)).view(bsz, t, d))
        return self.block(h.reshape(bsz * t, d)).view(bsz, t, d)  # every token alike: (B·T, D)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        t = self.n_tokens
        skip = Cost(act_bytes=t * self.d * dtype_bytes)  # the residual add reads h once more
        return (_per_token(cost_of(self.norm, dtype_bytes), t) + self.mix.nas_cost(dtype_bytes) + skip
                + _per_token(self.block.nas_cost(dtype_bytes), t))


class SamOutLayer(nn.Module):
    """SamOut's layer around a mixer (the seed's MaxStateSuper/SamOut): (B, T, D) -> (B, T, D),

        m = mix(h);  f = W2 (W1 m ⊙ relu(W_g m));  out = LayerNorm(α f + (1 − α) h)

    W1, W_g: D -> ``hidden``, W2: hidden -> D, bias-free, on every token; α one learned scalar (0.5 at start);
    LayerNorm with its affine weight and bias (SamOut's ``nn.LayerNorm``), after the blend (post-norm).
    Cost: the three matrices per token, the norm's 2D parameters, α; the blend reads h once more."""

    def __init__(self, mix: nn.Module, n_tokens: int, d: int, hidden: int):
        super().__init__()
        self.n_tokens, self.d = n_tokens, d
        self.mix = mix
        self.w1, self.wg, self.w2 = Linear(d, hidden), Linear(d, hidden), Linear(hidden, d)
        self.alpha = nn.Parameter(torch.tensor(0.5))
        self.norm = nn.LayerNorm(d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        bsz, t, d = h.shape
        m = self.mix(h).reshape(bsz * t, d)
        f = self.w2(self.w1(m) * F.relu(self.wg(m)))
        return self.norm(self.alpha * f + (1 - self.alpha) * h.reshape(bsz * t, d)).view(bsz, t, d)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        t, d = self.n_tokens, self.d
        ffn = self.w1.nas_cost(dtype_bytes) + self.wg.nas_cost(dtype_bytes) + self.w2.nas_cost(dtype_bytes)
        norm = Cost(params=2 * d + 1, weight_bytes=(2 * d + 1) * dtype_bytes)  # γ, β and α, read once
        skip = Cost(act_bytes=t * d * dtype_bytes)  # the blend reads h once more
        return self.mix.nas_cost(dtype_bytes) + _per_token(ffn, t) + norm + skip


class MixerNet(nn.Module):
    """tokens -> embed [+ positions] -> depth × MixerLayer -> mean over tokens -> head: (B, d_in) -> (B, d_out).

    ``embed``: the lift applied to every token (F -> d), or None (d = F).
    ``mixer``: the mixer's class, built as ``mixer(T, d)`` in every layer
    (``mixer(T, d, kernel)`` where ``kernel`` is given: the conv mixer's size);
    where its ``positions`` says so, the net adds a learned position table
    (T, d) (initialised N(0, 0.02²)). ``block()`` makes one channel block.
    ``norm`` is a factory of a width. The net pools by the mean over the T
    tokens (for ``maxstate`` the last token alone would see the rest only
    through the running maximum). ``gates``: a ``DenseGates`` giving every
    layer the gated (B, T, D) streams of the earlier layers (z_0 the embedded
    tokens), or None.

    ``samout``: each layer is SamOut's (``SamOutLayer``, feed-forward width ``hidden``) instead of
    ``MixerLayer`` with ``block``.

    ``exits`` k ≥ 1: early exit, as ``HourglassMLP``'s: an exit head (d -> d_out,
    bias-free) reads the mean over the tokens after every k-th layer before the
    last; ``all_logits`` gives every head's logits, eval-mode ``forward`` leaves
    at the first head sure enough (``early_exit``).
    """

    def __init__(self, in_shape: tuple, patch: int, d_in: int, embed: nn.Module | None, d: int, mixer, norm,
                 block, depth: int, d_out: int, kernel: int = 0, exits: int = 0, exit_threshold: float = 1.0,
                 gates: nn.Module | None = None, heads: int = 0, samout: bool = False, hidden: int = 0):
        super().__init__()
        self.tokens = Tokens(in_shape, patch, d_in)
        t = self.tokens.n_tokens
        self.n_tokens, self.d = t, d
        self.embed = embed
        self.pos = nn.Parameter(torch.randn(t, d) * 0.02) if mixer.positions else None
        sizes = (kernel,) if kernel else ()
        given = {"heads": heads} if heads else {}  # mixer_heads; else the mixer's default for its width
        if samout:  # SamOut's layer, its gated feed-forward of width ``hidden`` (``block`` unused)
            self.layers = nn.ModuleList(SamOutLayer(mixer(t, d, *sizes, **given), t, d, hidden) for _ in range(depth))
        else:
            self.layers = nn.ModuleList(MixerLayer(mixer(t, d, *sizes, **given), block(), t, d, norm)
                                        for _ in range(depth))
        self.head = Linear(d, d_out)
        self.exits, self.exit_threshold = exits, exit_threshold
        self.exit_heads = nn.ModuleList(Linear(d, d_out) for _ in range((depth - 1) // exits if exits else 0))
        self.gates = gates

    def embedded(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, T, D)
        h = self.tokens(x)  # (B, T, F)
        if self.embed is not None:  # lifts (and their kernels) take 2-D input: (B·T, F) -> (B·T, D)
            h = self.embed(h.reshape(-1, self.tokens.features)).view(x.shape[0], self.n_tokens, self.d)
        if self.pos is not None:
            h = h + self.pos
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_out)
        if len(self.exit_heads) and not self.training:
            return self.exit_forward(x)[0]
        return self.all_logits(x, exits=False)[-1]

    def all_logits(self, x: torch.Tensor, exits: bool = True) -> list[torch.Tensor]:
        """Every head's logits for every sample: the exit heads' in order, then the final head's; each (B, d_out).
        ``exits=False``: the final head's alone."""
        return every_head(self.embedded(x), self.layers, self.exit_heads if exits else (), self.exits, self.head,
                          pool=True, gates=self.gates)

    def exit_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The early-exit inference: (logits (B, d_out) of the head each sample left at, that head's index (B,):
        j for exit head j, len(exit_heads) for the final head)."""
        return early_exit(self.embedded(x), self.layers, self.exit_heads, self.exits, self.exit_threshold,
                          self.head, pool=True, gates=self.gates)

    def nas_cost(self, dtype_bytes: int = 4) -> Cost:
        """The embedding per token (the position add fused into it), the layers, the mean (reads T·D, writes D), the
        head; with exits the worst case: every exit head (each after its own mean) as well."""
        return self.nas_exit_costs(dtype_bytes)[-1]

    def nas_exit_costs(self, dtype_bytes: int = 4) -> list[Cost]:
        """The cost of a sample leaving at each head (the last entry: the final head, the whole model)."""
        t, d = self.n_tokens, self.d
        total = _per_token(cost_of(self.embed, dtype_bytes), t) if self.embed is not None else Cost()
        if self.pos is not None:
            total = total + Cost(params=t * d, weight_bytes=t * d * dtype_bytes)
        pool = Cost(act_bytes=(t * d + d) * dtype_bytes)
        out = []
        for i, layer in enumerate(self.layers):
            total = total + layer.nas_cost(dtype_bytes)
            if self.gates is not None:  # each connection reads an earlier stream of T tokens; its gate once
                total = total + _per_token(self.gates.nas_cost(dtype_bytes, block=i), t)
            if self.exits and (i + 1) % self.exits == 0 and (i + 1) // self.exits <= len(self.exit_heads):
                total = total + pool + self.exit_heads[(i + 1) // self.exits - 1].nas_cost(dtype_bytes)
                out.append(total)
        return out + [total + pool + self.head.nas_cost(dtype_bytes)]


MIXERS.register("token_mlp")(TokenMLP)
MIXERS.register("maxstate")(NasMaxState)
MIXERS.register("attention")(Attention)
MIXERS.register("linear_attention")(LinearAttention)
MIXERS.register("conv")(TokenConv)
