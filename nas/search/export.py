"""``nas export``: one candidate of a study as a standalone PyTorch module.

``export_candidate`` picks a candidate of a study (``--trial N``, or
``--pick METRIC`` / ``--pick knee``) and ``export_model`` writes a folder
that needs only PyTorch:

- ``model.py``: readable classes for exactly the blocks the architecture uses,
  a safetensors reader and ``load(directory)``; no ``nas`` import;
- ``weights.safetensors``: the trained tensors (a fixed random lift is
  regenerated from its seed, or stored with ``store_lift=True``);
- ``arch.json``: the ArchSpec, the task, the training settings, the measured
  objectives and where the candidate came from;
- ``README.md``: a model card.

``model.py`` is generated from a fixed set of snippets; the only varying parts
are integer literals of the ArchSpec (checked to be ints) and choices among the
snippets by block name (checked against the registries and the snippet
tables). No string a user wrote ever reaches the code. Every export is checked
before it is put in place: the exported model's outputs must equal
(``torch.equal``) nas's own model's on random inputs, and
``torch.export.export`` is tried on it. The folder is written next to
``out_dir`` under a temporary name and renamed into place at the end, so a
failed export leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
import types
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from nas.errors import NasInputError

FORMAT = "nas-export/1"
KNEE = "knee"
CHECK_BATCH = 16  # random inputs the export-time equality check runs

# -------------------------------------------------------------- the snippets
# Each snippet mirrors a nas module op for op (nas/spaces/blocks.py, activations.py, lifts.py, fpe.py, moe.py,
# mixers.py and the PyTorch reference paths in nas/kernels/), so the state dict keys match and the outputs are
# the same bits. A registry name without an entry in these tables cannot be exported.

_PRELU = '''

class PReLU(nn.Module):
    """y = x for x >= 0, a x otherwise: one learnable slope a for the whole layer."""

    def __init__(self):
        super().__init__()
        self.slope = nn.Parameter(torch.zeros(()))  # a, filled by load()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., width) -> (..., width)
        return torch.where(x >= 0, x, self.slope.to(x.dtype) * x)
'''

_SWISH = '''

class Swish(nn.Module):
    """y = x sigmoid(beta x): one learnable beta for the whole layer."""

    def __init__(self):
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(()))  # beta, filled by load()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., width) -> (..., width)
        return x * torch.sigmoid(self.beta.to(x.dtype) * x)
'''

_RATIONAL = '''

class Rational(nn.Module):
    """A learnable Pade activation: y = P(x) / (1 + |b_1 x + ... + b_4 x^4|), P(x) = a_0 + a_1 x + ... + a_5 x^5.

    Ten coefficients for the whole layer; evaluated by Horner's rule in float32.
    """

    def __init__(self):
        super().__init__()
        self.numerator = nn.Parameter(torch.zeros(6))  # a_0..a_5, filled by load()
        self.denominator = nn.Parameter(torch.zeros(4))  # b_1..b_4, filled by load()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., width) -> (..., width)
        xf = x.float()
        a, b = self.numerator.float(), self.denominator.float()
        p = a[-1]
        for coef in a.flip(0)[1:]:  # Horner: (((a_5 x + a_4) x + a_3) x + ...) x + a_0
            p = p * xf + coef
        q = b[-1]
        for coef in b.flip(0)[1:]:  # (((b_4 x + b_3) x + b_2) x + b_1) x
            q = q * xf + coef
        return (p / (1 + (q * xf).abs())).to(x.dtype)
'''

_PWL = '''

PWL_KNOTS, PWL_REACH = 9, 3.0  # the fixed knots t_0..t_8 = linspace(-3, 3, 9)


class PiecewiseLinear(nn.Module):
    """A learnable piecewise-linear function on the knots t_0..t_8: 11 numbers for the whole layer.

    Inside [-3, 3] y interpolates linearly between the values v_i = y(t_i);
    below it y = v_0 + s_l (x - t_0), above it y = v_8 + s_r (x - t_8). In float32.
    """

    def __init__(self):
        super().__init__()
        self.step = 2 * PWL_REACH / (PWL_KNOTS - 1)
        self.values = nn.Parameter(torch.zeros(PWL_KNOTS))  # v_0..v_8, filled by load()
        self.slopes = nn.Parameter(torch.zeros(2))  # s_l, s_r, filled by load()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., width) -> (..., width)
        xf = x.float()
        v, s = self.values.float(), self.slopes.float()
        u = (xf + PWL_REACH) / self.step  # position in segments from t_0
        i = u.floor().clamp(0, PWL_KNOTS - 2).long()  # the segment, in 0..7
        v0, v1 = v[i], v[i + 1]
        inside = v0 + (u - i) * (v1 - v0)
        below = v[0] + s[0] * (xf + PWL_REACH)
        above = v[-1] + s[1] * (xf - PWL_REACH)
        y = torch.where(xf < -PWL_REACH, below, torch.where(xf > PWL_REACH, above, inside))
        return y.to(x.dtype)
'''

ACTIVATION_CODE = {  # name -> (the module, its name in words, the class it needs)
    "relu": ("nn.ReLU()", "relu", None),
    "gelu": ('nn.GELU()  # the exact (erf) GELU, approximate="none"', "gelu", None),
    "silu": ("nn.SiLU()", "silu", None),
    "tanh": ("nn.Tanh()", "tanh", None),
    "prelu": ("PReLU()", "prelu", _PRELU),
    "swish": ("Swish()", "swish", _SWISH),
    "rational": ("Rational()", "rational", _RATIONAL),
    "pwl": ("PiecewiseLinear()", "pwl", _PWL),
}
ACTIVATION_WORDS = {  # how the model card describes a learnable activation
    "prelu": "PReLU (one learnable negative slope per layer)",
    "swish": "Swish x·sigmoid(βx) (one learnable β per layer)",
    "rational": "a rational (Padé) activation P(x)/(1 + |Q(x)|) of degrees 5 and 4 (10 learnable coefficients "
                "per layer)",
    "pwl": "a piecewise-linear activation on 9 fixed knots in [-3, 3] (11 learnable values and slopes per layer)",
}

NORM_CODE = {
    "batchnorm": "nn.BatchNorm1d(d_z, affine=False)  # running mean and variance from training, no affine",
    "layernorm": "nn.LayerNorm(d_z, elementwise_affine=False)  # no affine",
    "none": None,  # no norm: the block reads h directly
}

_FIXED_LIFT = '''

class FixedRandomLift(nn.Module):
    """z = x R^T with R ~ N(0, 1/d_in): seeded and never trained.

    R is not stored: it is regenerated from its seed with PyTorch's CPU
    generator, exactly as nas does (nas.spaces.blocks.FixedRandomLift).
    """

    def __init__(self, d_in: int, d_z: int, seed: int):
        super().__init__()
        self.d_in, self.d_z, self.seed = d_in, d_z, seed
        gen = torch.Generator(device="cpu").manual_seed(seed)
        r = torch.randn(d_z, d_in, generator=gen, device="cpu") / math.sqrt(d_in)  # (d_z, d_in)
        self.register_buffer("weight", r, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_z)
        return x @ self.weight.t()
'''

_STORED_LIFT = '''

class FixedRandomLift(nn.Module):
    """z = x R^T with R ~ N(0, 1/d_in): seeded and never trained.

    Exported with --store-lift: R is read from weights.safetensors
    ("{lift_attr}.weight") instead of being regenerated from its seed.
    """

    def __init__(self, d_in: int, d_z: int):
        super().__init__()
        self.d_in, self.d_z = d_in, d_z
        self.register_buffer("weight", torch.zeros(d_z, d_in))  # (d_z, d_in), filled by load()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_z)
        return x @ self.weight.t()
'''

_LEARNED_LIFT = '''

class LearnedLift(nn.Linear):
    """z = W_in x: a trained, bias-free linear layer."""

    def __init__(self, d_in: int, d_z: int):
        super().__init__(d_in, d_z, bias=False)  # weight: (d_z, d_in)
'''

_HADAMARD_LIFT = '''

def fwht(x: torch.Tensor) -> torch.Tensor:
    """The unnormalised fast Walsh-Hadamard transform over the last axis: (..., n) -> (..., n), n a power of two."""
    shape, n = x.shape, x.shape[-1]
    h = 1
    while h < n:
        pairs = x.reshape(-1, n // (2 * h), 2, h)  # (M, blocks, 2, h): entries i and i + h of each block of 2h
        a, b = pairs[:, :, 0], pairs[:, :, 1]
        x = torch.stack((a + b, a - b), dim=2)
        h *= 2
    return x.reshape(shape)


class HadamardLift(nn.Module):
    """z = (1/sqrt(d_in)) S H_n D pad(x): a seeded structured random lift, never trained.

    n = the next power of two >= max(d_in, d_z); pad(x) appends n - d_in
    zeros; D = diag of n random signs; H_n the Walsh-Hadamard matrix (fwht);
    S keeps a random subset of d_z of the n coordinates. The signs and the
    subset are not stored: they are regenerated from the seed with PyTorch's
    CPU generator, exactly as nas does (nas.spaces.lifts.HadamardLift).
    Computed in float32.
    """

    def __init__(self, d_in: int, d_z: int, seed: int):
        super().__init__()
        self.d_in, self.d_z, self.seed = d_in, d_z, seed
        self.n = 1 << (max(d_in, d_z) - 1).bit_length()
        self.scale = 1 / math.sqrt(d_in)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        signs = torch.randint(0, 2, (self.n,), generator=gen, device="cpu") * 2 - 1
        keep = torch.randperm(self.n, generator=gen, device="cpu")[:d_z].sort().values
        self.register_buffer("signs", signs.float(), persistent=False)  # (n,) +-1
        self.register_buffer("keep", keep, persistent=False)  # (d_z,) indices

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_z)
        padded = F.pad(x.float(), (0, self.n - self.d_in)) * self.signs.float()  # (B, n)
        return (fwht(padded).index_select(-1, self.keep) * self.scale).to(x.dtype)  # (B, d_z)
'''

_HASHED_LIFT = '''

MASK32 = 0xFFFFFFFF


def _mul32(a: torch.Tensor, c: int) -> torch.Tensor:
    """a c mod 2^32 for int64 a in [0, 2^32) and a constant c < 2^32, without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (a * lo + (((a * hi) & 0xFFFF) << 16)) & MASK32


def _fmix32(h: torch.Tensor) -> torch.Tensor:  # murmur3's finaliser, on int64 tensors holding uint32 values
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def _fmix32_int(h: int) -> int:  # the same on a Python int
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK32
    return h ^ (h >> 16)


def hashed_signs(seed: int, d_z: int, d_in: int) -> torch.Tensor:
    """S (d_z, d_in) float32 of +-1, a pure function of (seed, row, column) (nas.kernels.lift):

    key = fmix32((seed mod 2^32) ^ fmix32((seed >> 32 mod 2^32) ^ 0x5BD1E995))
    row(i) = fmix32(key ^ (i 0x9E3779B9)); S[i, j] = +1 if fmix32(row(i) ^ (j 0x85EBCA77)) < 2^31 else -1
    (32-bit unsigned arithmetic, here in int64 tensors), hashed about 2^20 entries at a time.
    """
    j = _mul32(torch.arange(d_in, dtype=torch.int64), 0x85EBCA77)  # (d_in,)
    key = _fmix32_int((seed & MASK32) ^ _fmix32_int(((seed >> 32) & MASK32) ^ 0x5BD1E995))
    step, parts = max(1, (1 << 20) // max(d_in, 1)), []
    for start in range(0, d_z, step):
        i = torch.arange(start, min(start + step, d_z), dtype=torch.int64)
        row = _fmix32(key ^ _mul32(i, 0x9E3779B9))  # (rows,)
        h = _fmix32(row[:, None] ^ j[None, :])  # (rows, d_in)
        parts.append(1.0 - 2.0 * (h >> 31).to(torch.float32))
    return torch.cat(parts)


class HashedLift(nn.Module):
    """z = x R^T, R = S/sqrt(d_in) with +-1 entries hashed from (seed, row, column): seeded and never trained.

    S is not stored: it is hashed from the seed with integer arithmetic, exactly
    as nas does (nas.spaces.lifts.HashedLift). Computed in float32.
    """

    def __init__(self, d_in: int, d_z: int, seed: int):
        super().__init__()
        self.d_in, self.d_z, self.seed = d_in, d_z, seed
        self.register_buffer("signs", hashed_signs(seed, d_z, d_in), persistent=False)  # S (d_z, d_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_z)
        y = x.reshape(-1, self.d_in).float() @ self.signs.t()  # (B, d_z)
        return (y * (1 / math.sqrt(self.d_in))).to(x.dtype).reshape(*x.shape[:-1], self.d_z)
'''

# name -> (the class, its snippet, whether it is regenerated from LIFT_SEED); none: no lift
LIFT_CODE = {
    "fixed_random": ("FixedRandomLift", _FIXED_LIFT, True),
    "learned": ("LearnedLift", _LEARNED_LIFT, False),
    "none": None,
    "hadamard": ("HadamardLift", _HADAMARD_LIFT, True),
    "hashed": ("HashedLift", _HASHED_LIFT, True),
}
STORABLE_LIFTS = ("fixed_random",)  # --store-lift writes these lifts' matrix into weights.safetensors

_FPE = '''

class FPEPair(nn.Module):
    """W2 act(W1 x) after Fixed Parameter Expansion: FPE_ALPHA children per hidden neuron.

    w1 (alpha d_h, d_z) and w2 (d_z, alpha d_h) are used as w1 * mask1 and
    w2 * mask2: the fixed 0/1 masks training chose (weights.safetensors) keep
    d_h (d_z + d_z) non-zero weights, as many as the dense pair's.
    """

    def __init__(self, d_z: int, d_h: int, alpha: int):
        super().__init__()
        self.w1 = nn.Parameter(torch.zeros(alpha * d_h, d_z))  # filled by load()
        self.act = {act_code}
        self.w2 = nn.Parameter(torch.zeros(d_z, alpha * d_h))  # filled by load()
        self.register_buffer("mask1", torch.zeros(alpha * d_h, d_z))  # 0/1, filled by load()
        self.register_buffer("mask2", torch.zeros(d_z, alpha * d_h))  # 0/1, filled by load()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, alpha d_h) -> (N, d_z)
        return self.act(x @ (self.w1 * self.mask1).t()) @ (self.w2 * self.mask2).t()
'''

_DENSE_EXPERT = '''

class DenseExpert(nn.Module):
    """W2 act(W1 x): one expert, (N, d_z) -> (N, d_h) -> (N, d_z), no biases."""

    def __init__(self, d_z: int, d_h: int):
        super().__init__()
        self.w1 = nn.Linear(d_z, d_h, bias=False)  # weight: (d_h, d_z)
        self.act = {act_code}
        self.w2 = nn.Linear(d_h, d_z, bias=False)  # weight: (d_z, d_h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_z)
        return self.w2(self.act(self.w1(x)))
'''

_MOE = '''

class MixtureOfExperts(nn.Module):
    """y = sum over the top-k experts e of x of g_e(x) expert_e(x): (N, d_z) -> (N, d_z).

    Router: p = softmax(x R) in float32, R a bias-free Linear(d_z, E). Each
    sample goes to the k experts of largest p; its gates are those
    probabilities renormalised over the chosen k (top-1: the raw probability).
    The samples are grouped by expert, each expert runs once on its group and
    the gated outputs are added back in expert order (nas.spaces.moe.MixtureOfExperts).
    """

    def __init__(self, d_z: int, d_h: int, experts: int, top_k: int):
        super().__init__()
        self.num_experts, self.top_k = experts, top_k
        self.router = nn.Linear(d_z, experts, bias=False)  # weight: (E, d_z)
        self.experts = nn.ModuleList({expert_code} for _ in range(experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_z)
        n = x.shape[0]
        probs = self.router(x).float().softmax(dim=-1)  # (N, E)
        top, chosen = probs.topk(self.top_k, dim=-1)  # (N, k), (N, k)
        gates = top if self.top_k == 1 else top / top.sum(dim=-1, keepdim=True)
        expert_of = chosen.reshape(-1)  # (N k,) the expert of each assignment
        order = expert_of.argsort(stable=True)  # assignments grouped by expert
        token_of = torch.arange(n, device=x.device).repeat_interleave(self.top_k)[order]  # (N k,)
        gate_of = gates.reshape(-1)[order].to(x.dtype)  # (N k,)
        counts = torch.bincount(expert_of, minlength=self.num_experts)  # (E,)
        out = torch.zeros_like(x)
        start = 0
        for expert, count in zip(self.experts, counts.tolist()):
            if count:
                tokens = token_of[start : start + count]  # (count,)
                y = expert(x.index_select(0, tokens)) * gate_of[start : start + count, None]  # (count, d_z)
                out.index_put_((tokens,), y, accumulate=True)  # added into (N, d_z)
            start += count
        return out
'''

_BLOCK = '''

class HourglassBlock(nn.Module):
    """h + W2 {act_name}(W1 {norm_expr}): the residual block, no biases.

    d_z -> d_h -> d_z; here d_z = {d_z} and d_h = {d_h} ({shape_word}).
    """

    def __init__(self, d_z: int, d_h: int):
        super().__init__()
{norm_line}        self.w1 = nn.Linear(d_z, d_h, bias=False)  # weight: (d_h, d_z)
        self.act = {act_code}
        self.w2 = nn.Linear(d_h, d_z, bias=False)  # weight: (d_z, d_h)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_z)
        return h + self.w2(self.act(self.w1({norm_call})))  # (N, d_z) -> (N, d_h) -> (N, d_z)
'''

_FFN_BLOCK = '''

class HourglassBlock(nn.Module):
    """h + ffn({norm_expr}): the residual block, its W2 {act_name}(W1 .) {ffn_words}.

    d_z = {d_z}, d_h = {d_h} ({shape_word}).
    """

    def __init__(self, d_z: int, d_h: int):
        super().__init__()
{norm_line}        self.ffn = {ffn_code}

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_z)
        return h + self.ffn({norm_call})
'''

_MODEL = '''

class HourglassMLP(nn.Module):
    """lift -> DEPTH x HourglassBlock -> head: x (B, D_IN) -> (B, D_OUT)."""

    def __init__(self):
        super().__init__()
{lift_line}        self.blocks = nn.ModuleList(HourglassBlock(D_Z, D_H) for _ in range(DEPTH))  # (B, {d_z}) each
        self.head = nn.Linear(D_Z, D_OUT, bias=False)  # W_out: (B, {d_z}) -> (B, {d_out})

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, {d_in}) -> (B, {d_out})
        h = {lift_call}  # {lift_comment}(B, {d_z})
        for block in self.blocks:
            h = block(h)  # (B, {d_z})
        return self.head(h)  # (B, {d_out})
'''

_PATCHES = '''

class Tokens(nn.Module):
    """(B, D_IN) -> (B, N_TOKENS, FEATURES): the IN_SHAPE image cut into PATCH x PATCH patches, row by row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, (h, w), p = x.shape[0], IN_SHAPE, PATCH
        x = x.reshape(b, h // p, p, w // p, p).transpose(2, 3)  # (B, H/P, W/P, P, P)
        return x.reshape(b, N_TOKENS, FEATURES)
'''

_TOKENS = '''

class Tokens(nn.Module):
    """(B, D_IN) -> (B, N_TOKENS, FEATURES): {how}."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], N_TOKENS, FEATURES)
'''

_TOKEN_MLP = '''

class TokenMLP(nn.Module):
    """MLP-Mixer's token mixing: y = (W2 gelu(W1 h^T))^T, every channel through an MLP over the tokens.

    (B, T, D) -> (B, T, D); W1: T -> 2T, W2: 2T -> T, bias-free, shared by the D channels.
    """

    def __init__(self, n_tokens: int, d: int):
        super().__init__()
        self.w1 = nn.Linear(n_tokens, 2 * n_tokens, bias=False)
        self.w2 = nn.Linear(2 * n_tokens, n_tokens, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h.transpose(1, 2)  # (B, D, T)
        return self.w2(F.gelu(self.w1(h))).transpose(1, 2)  # (B, T, D)
'''

_MAXSTATE = '''

class MaxState(nn.Module):
    """A running maximum along the tokens in place of attention (MaxStateSuper): (B, T, D) -> (B, T, D), causal.

    a, b, c, d = split(W h) in H heads of D/H channels (W: D -> 4D, bias-free);
    e = cummax(c) along T; g = G(cat_heads[a, b, c, d, e]) * e (G: 5H -> H, bias-free);
    y = a b + alpha1 b + alpha2 d + a (alpha3 e + d) + b (c + e) + c e + g, channels out (D/H, H)-major
    (nas.kernels.maxstate's reference).
    """

    def __init__(self, n_tokens: int, d: int):
        super().__init__()
        self.heads = HEADS
        self.w = nn.Linear(d, 4 * d, bias=False)
        self.g = nn.Linear(5 * self.heads, self.heads, bias=False)
        self.alpha = nn.Parameter(torch.zeros(3))  # alpha1..alpha3, filled by load()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        p = self.w(h)  # (B, T, 4D)
        bsz, t, d4 = p.shape
        d = d4 // 4
        x = p.view(bsz, t, 4, self.heads, d // self.heads).transpose(-1, -2)  # (B, T, 4, D/H, H)
        a, b, c, dd = x.unbind(2)  # each (B, T, D/H, H)
        e = torch.cummax(c, dim=1).values
        g = F.linear(torch.cat([a, b, c, dd, e], dim=-1), self.g.weight) * e
        a1, a2, a3 = self.alpha
        y = a * b + a1 * b + a2 * dd + a * (a3 * e + dd) + b * (c + e) + c * e + g
        return y.reshape(bsz, t, d)
'''

_ATTENTION = '''

class Attention(nn.Module):
    """Softmax multi-head self-attention, bidirectional: y = W_o softmax(q k^T / sqrt(D/H)) v, bias-free.

    (B, T, D) -> (B, T, D); q, k, v = split(W_qkv h) in HEADS heads.
    """

    def __init__(self, n_tokens: int, d: int):
        super().__init__()
        self.heads = HEADS
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        bsz, t, d = h.shape
        q, k, v = self.qkv(h).view(bsz, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, T, D/H)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, D/H)
        return self.out(y.transpose(1, 2).reshape(bsz, t, d))
'''

# name -> (the class, its snippet, whether the net adds a learned position table); none: the flat path
MIXER_CODE = {
    "none": None,
    "token_mlp": ("TokenMLP", _TOKEN_MLP, True),
    "maxstate": ("MaxState", _MAXSTATE, False),
    "attention": ("Attention", _ATTENTION, True),
}
MIXER_WORDS = {
    "token_mlp": "MLP-Mixer token mixing (every channel through a bias-free MLP T -> 2T -> T over the tokens, GELU)",
    "maxstate": "maxstate mixing (a causal running maximum along the tokens in place of attention, combined "
                "elementwise and across heads; no position table: the running maximum is order-aware)",
    "attention": "softmax multi-head self-attention (bidirectional, bias-free)",
}

_MIXER_LAYER = '''

class MixerLayer(nn.Module):
    """h + {mixer}(norm(h)) across the tokens, then the channel block on every token: (B, T, D) -> (B, T, D)."""

    def __init__(self, n_tokens: int, d_z: int, d_h: int):
        super().__init__()
{norm_line}        self.mix = {mixer}(n_tokens, d_z)
        self.block = HourglassBlock(d_z, d_h)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        bsz, t, d = h.shape
        h = h + self.mix({norm_call}.view(bsz, t, d))
        return self.block(h.reshape(bsz * t, d)).view(bsz, t, d)  # every token alike: (B T, D)
'''

_MIXER_NET = '''

class MixerNet(nn.Module):
    """tokens -> embed{pos_words} -> DEPTH x MixerLayer -> mean over tokens -> head: x (B, D_IN) -> (B, D_OUT)."""

    def __init__(self):
        super().__init__()
        self.tokens = Tokens()
{embed_line}{pos_line}        self.layers = nn.ModuleList(MixerLayer(N_TOKENS, D_Z, D_H) for _ in range(DEPTH))
        self.head = nn.Linear(D_Z, D_OUT, bias=False)  # W_out: (B, {d_z}) -> (B, {d_out})

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, {d_in}) -> (B, {d_out})
        h = self.tokens(x)  # (B, {t}, {f})
{embed_call}{pos_call}        for layer in self.layers:
            h = layer(h)  # (B, {t}, {d_z})
        return self.head(h.mean(dim=1))  # (B, {d_z}) -> (B, {d_out})
'''

_READER_AND_LOAD = '''

# ------------------------------------------------------------ loading
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path) -> dict:
    """The tensors of a .safetensors file, read without the safetensors package and without pickle.

    The format: an 8-byte little-endian header length N; N bytes of JSON
    {name: {"dtype", "shape", "data_offsets": [begin, end]}} (and an optional
    "__metadata__"); then the tensors' raw little-endian bytes, offsets
    counted from the end of the header.
    """
    if memoryview(b"\\x01\\x00").cast("H")[0] != 1:
        raise RuntimeError("read_safetensors: this reader needs a little-endian machine")
    path = pathlib.Path(path)
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if n < 2 or 8 + n > len(data):
        raise ValueError(f"{path}: not a safetensors file (bad header length)")
    header = json.loads(data[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']}, which this reader does not read")
        shape = [int(s) for s in info["shape"]]
        begin, end = (int(o) for o in info["data_offsets"])
        numel = math.prod(shape)
        if end - begin != numel * dtype.itemsize or begin < 0 or base + end > len(data):
            raise ValueError(f"{path}: tensor {name!r}: its data offsets do not fit its shape or the file")
        if numel == 0:
            tensors[name] = torch.zeros(shape, dtype=dtype)
            continue
        raw = bytearray(data[base + begin:base + end])  # a copy: aligned and writable
        tensors[name] = torch.frombuffer(raw, dtype=dtype).reshape(shape)
    return tensors


def load(directory=None) -> {model_class}:
    """The exported model with its trained weights, in eval mode.

    ``directory``: the folder holding arch.json and weights.safetensors
    (default: the folder of this file).
    """
    directory = pathlib.Path(__file__).resolve().parent if directory is None else pathlib.Path(directory)
    arch = json.loads((directory / "arch.json").read_text())
    given = arch.get("arch") or {}
    if {key: given.get(key) for key in ARCH} != ARCH:
        raise ValueError(f"{directory / 'arch.json'} describes another architecture than this model.py ({ARCH_ID})")
    net = {model_class}()
    net.load_state_dict(read_safetensors(directory / "weights.safetensors"), strict=True)
    return net.eval()
'''


# ------------------------------------------------------------ validation
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_HEX = re.compile(r"[0-9a-f]{16}\Z")
_SPEC_FIELDS = ("d_in", "d_out", "lift", "lift_width", "hidden_width", "depth", "activation", "norm", "lift_seed",
                "fpe_alpha", "fpe_split", "fpe_at", "moe_experts", "moe_top_k", "mixer", "patch", "in_shape")
_TRAINING_ONLY = ("fpe_at",)  # in arch.json but not in model.py: the trained model's forward pass does not read it


@dataclass(frozen=True)
class _Parts:
    """The ArchSpec, checked: ints that are ints, names from the fixed snippet tables."""

    d_in: int
    d_out: int
    d_z: int  # the width the blocks run at: the lift's width, or the token features F of a mixer without a lift
    d_h: int
    depth: int
    seed: int
    lift: str
    activation: str
    norm: str
    fpe_alpha: int
    fpe_split: str
    moe_experts: int
    moe_top_k: int
    mixer: str
    patch: int
    in_shape: tuple[int, ...]
    n_tokens: int  # T, 0 on the flat path
    features: int  # F, the features of a token (the lift's input); d_in on the flat path
    heads: int  # of the maxstate and attention mixers, else 0
    arch_id: str
    arch: dict[str, Any]  # ArchSpec.to_json(), of the checked values only


def _int(name: str, value: Any, low: int, high: int = 2**31 - 1) -> int:
    if type(value) is not int or not low <= value <= high:
        raise NasInputError(f"cannot export: ArchSpec.{name} must be an int in [{low}, {high}], found {value!r}")
    return value


def _name(kind: str, value: Any, registry, snippets: Mapping[str, Any]) -> str:
    if not isinstance(value, str) or value not in registry:
        raise NasInputError(f"cannot export: {registry.unknown_message(value)}")
    if value not in snippets or not _NAME.match(value):
        raise NasInputError(
            f"cannot export {kind} {value!r}: nas export has no code for it yet (it knows "
            f"{', '.join(snippets)}); add it to nas/search/export.py"
        )
    return next(k for k in snippets if k == value)  # the table's own string, not the caller's


def check_spec(spec) -> _Parts:
    """Check every value of ``spec`` that reaches the generated code; NasInputError otherwise."""
    from nas.spaces import ACTIVATIONS, LIFTS, NORMS, ArchSpec
    from nas.spaces.blocks import MIXERS
    from nas.spaces.fpe import SPLITS
    from nas.spaces.mixers import _heads, token_grid

    if not isinstance(spec, ArchSpec):
        raise NasInputError(f"cannot export: expected an ArchSpec, found {type(spec).__name__}")
    unknown = [f.name for f in dataclasses.fields(spec) if f.name not in _SPEC_FIELDS]
    if unknown:
        raise NasInputError(
            f"cannot export: ArchSpec has fields nas export does not know yet ({', '.join(unknown)}); "
            "add them to nas/search/export.py"
        )
    lift = _name("lift", spec.lift, LIFTS, LIFT_CODE)
    activation = _name("activation", spec.activation, ACTIVATIONS, ACTIVATION_CODE)
    norm = _name("norm", spec.norm, NORMS, NORM_CODE)
    mixer = _name("mixer", spec.mixer, MIXERS, MIXER_CODE)
    if spec.fpe_split not in SPLITS:
        raise NasInputError(f"cannot export: unknown FPE split {spec.fpe_split!r}; expected one of "
                            f"{', '.join(SPLITS)}")
    split = next(s for s in SPLITS if s == spec.fpe_split)
    at = spec.fpe_at
    if type(at) not in (int, float) or not 0 <= at < 1:
        raise NasInputError(f"cannot export: ArchSpec.fpe_at must be a number in [0, 1), found {at!r}")
    d_in = _int("d_in", spec.d_in, 1)
    d_out = _int("d_out", spec.d_out, 1)
    d_z = _int("lift_width", spec.lift_width, 1)
    d_h = _int("hidden_width", spec.hidden_width, 1)
    depth = _int("depth", spec.depth, 1, 10_000)
    seed = _int("lift_seed", spec.lift_seed, 0, 2**63 - 1)
    alpha = _int("fpe_alpha", spec.fpe_alpha, 1, 1024)
    experts = _int("moe_experts", spec.moe_experts, 1, 1024)
    top_k = _int("moe_top_k", spec.moe_top_k, 1, experts)
    patch = _int("patch", spec.patch, 0)
    in_shape = tuple(_int(f"in_shape[{i}]", s, 1) for i, s in enumerate(spec.in_shape))
    if lift == "none" and d_z != d_in:
        raise NasInputError(f"cannot export: lift none needs lift_width == d_in, found {d_z} and {d_in}")
    n_tokens, features, heads = 0, d_in, 0
    if mixer != "none":
        try:
            n_tokens, features = token_grid(in_shape, patch, d_in)
        except ValueError as exc:
            raise NasInputError(f"cannot export: {exc}") from None
        if lift == "none":
            d_z = features  # no embedding: the tokens' own features are the width
        heads = _heads(d_z) if mixer in ("maxstate", "attention") else 0
    arch = {"d_in": d_in, "d_out": d_out, "lift": lift, "lift_width": spec.lift_width, "hidden_width": d_h,
            "depth": depth, "activation": activation, "norm": norm, "lift_seed": seed, "fpe_alpha": alpha,
            "fpe_split": split, "fpe_at": at, "moe_experts": experts, "moe_top_k": top_k, "mixer": mixer,
            "patch": patch, "in_shape": list(in_shape)}
    if arch != spec.to_json():
        raise NasInputError("cannot export: the ArchSpec does not round-trip through its checked values")
    arch_id = spec.arch_id
    if not _HEX.match(arch_id):
        raise NasInputError(f"cannot export: unexpected arch_id {arch_id!r}")
    return _Parts(d_in, d_out, d_z, d_h, depth, seed, lift, activation, norm, alpha, split, experts, top_k, mixer,
                  patch, in_shape, n_tokens, features, heads, arch_id, arch)


# ------------------------------------------------------------ the source
def _py_literal(value: Any) -> str:
    """An int, a checked name, or a list of ints as Python source (nothing else is accepted)."""
    if type(value) is int:
        return str(value)
    if isinstance(value, str) and (_NAME.match(value) or _HEX.match(value)):
        return f'"{value}"'
    if type(value) in (list, tuple) and all(type(v) is int for v in value):
        inner = ", ".join(str(v) for v in value) + ("," if type(value) is tuple and len(value) == 1 else "")
        return f"[{inner}]" if type(value) is list else f"({inner})"
    raise TypeError(f"not a literal the export writes: {value!r}")


def _kind(p: _Parts) -> str:
    if p.mixer != "none":
        return {"token_mlp": "Token-MLP mixer", "maxstate": "MaxState mixer", "attention": "Attention"}[p.mixer]
    if p.lift == "none":
        return "Conventional residual"  # the paper's baseline: d_z = d_in
    return "Hourglass" if p.d_h < p.d_z else "Residual"


def _lift_words(p: _Parts, store_lift: bool, d_in: int) -> str:
    if p.lift == "fixed_random":
        how = "stored" if store_lift else "regenerated from its seed"
        return f"fixed random lift {d_in} -> {p.d_z} (seed {p.seed}, {how})"
    if p.lift == "hadamard":
        return f"Hadamard lift {d_in} -> {p.d_z} (seeded signs and subset, regenerated from seed {p.seed})"
    if p.lift == "hashed":
        return f"hashed ±1 lift {d_in} -> {p.d_z} (hashed from seed {p.seed})"
    if p.lift == "learned":
        return f"learned lift {d_in} -> {p.d_z}"
    return f"no lift (d_z = {'F' if p.mixer != 'none' else 'd_in'} = {d_in})"


def describe(p: _Parts, store_lift: bool = False) -> str:
    """One line: the architecture in words (for the card and the module docstring)."""
    norm = "no norm" if p.norm == "none" else p.norm
    ffn = ""
    if p.moe_experts > 1:
        ffn = f", mixture of {p.moe_experts} {'FPE ' if p.fpe_alpha > 1 else ''}experts top-{p.moe_top_k}"
    if p.fpe_alpha > 1:
        ffn += f", FPE alpha {p.fpe_alpha} ({p.fpe_split} split)"
    block = f"residual block {p.d_z} -> {p.d_h} -> {p.d_z} ({norm}, {p.activation}{ffn})"
    if p.mixer == "none":
        return f"{_lift_words(p, store_lift, p.d_in)}; {p.depth} x {block}; head {p.d_z} -> {p.d_out}"
    grid = "x".join(str(s) for s in p.in_shape) if p.in_shape else str(p.d_in)
    tokens = f"{p.patch}x{p.patch} patches" if p.patch and len(p.in_shape) == 2 else \
        (f"chunks of {p.patch}" if p.patch else "its first axis")
    return (f"{p.n_tokens} tokens of {p.features} features ({grid} input cut into {tokens}); "
            f"{_lift_words(p, store_lift, p.features)} per token; {p.depth} x ({p.mixer} across the tokens, then "
            f"{block} on every token); mean over the tokens; head {p.d_z} -> {p.d_out}")


def _norm_call(p: _Parts, arg: str) -> str:
    return arg if p.norm == "none" else f"self.norm({arg})"


def _lift_ctor(p: _Parts, stored: bool, d_in: str) -> str:
    cls, _, seeded = LIFT_CODE[p.lift]
    return f"{cls}({d_in}, D_Z{', LIFT_SEED' if seeded and not stored else ''})"


def model_source(p: _Parts, store_lift: bool = False) -> str:
    """The text of model.py for the checked architecture ``p``."""
    lit = _py_literal
    stored = store_lift and p.lift in STORABLE_LIFTS
    mixed = p.mixer != "none"
    shape_word = "an hourglass: d_h < d_z" if p.d_h < p.d_z else "a conventional block: d_h >= d_z"
    if mixed:
        title = f"{_kind(p)} net"
        flow = ("    x (B, D_IN) -> N_TOKENS tokens (B, T, FEATURES) -> embed -> h (B, T, D_Z) -> DEPTH x "
                "(h = h + mix(norm(h)); h = h + W2 act(W1 norm(h)) on every token) -> W_out mean_T(h) (B, D_OUT)")
    else:
        title = {"Hourglass": "An hourglass MLP", "Residual": "A residual MLP"}.get(_kind(p),
                                                                                     "A conventional residual MLP")
        flow = "    x (B, D_IN) -> lift -> h (B, D_Z) -> DEPTH x (h = h + W2 act(W1 norm(h))) -> W_out h (B, D_OUT)"
    functional = p.lift == "hadamard" or mixed
    lines = [
        f'"""{title} exported by nas (arch {p.arch_id}): standalone, it needs only PyTorch.',
        "",
        f"    {describe(p, store_lift)}",
        "",
        flow,
        "",
        "``load(directory)`` reads arch.json and weights.safetensors from the folder",
        "and returns the model in eval mode. Generated by ``nas export``: the",
        "classes mirror nas's modules op for op, so the outputs equal nas's bit for",
        "bit on the same device and dtype.",
        '"""',
        "",
        "import json",
        "import math",
        "import pathlib",
        "",
        "import torch",
        *(["import torch.nn.functional as F"] if functional else []),
        "from torch import nn",
        "",
        f"D_IN = {lit(p.d_in)}  # input features",
    ]
    if mixed:
        lines += [
            f"IN_SHAPE = {lit(p.in_shape)}  # the shape of one sample",
            f"PATCH = {lit(p.patch)}  # {'features per token' if p.patch else '0: the tokens are the first axis'}",
            f"N_TOKENS = {lit(p.n_tokens)}  # T",
            f"FEATURES = {lit(p.features)}  # F, features per token",
        ]
    lines += [
        f"D_Z = {lit(p.d_z)}  # width of the residual stream",
        f"D_H = {lit(p.d_h)}  # hidden (bottleneck) width of each block",
        f"DEPTH = {lit(p.depth)}  # {'mixer layers' if mixed else 'residual blocks'}",
        f"D_OUT = {lit(p.d_out)}  # outputs",
    ]
    if p.heads:
        lines.append(f"HEADS = {lit(p.heads)}  # heads of the mixer")
    if p.fpe_alpha > 1:
        lines.append(f"FPE_ALPHA = {lit(p.fpe_alpha)}  # FPE children per hidden neuron")
    if p.moe_experts > 1:
        lines.append(f"EXPERTS = {lit(p.moe_experts)}  # experts of each block's mixture")
        lines.append(f"TOP_K = {lit(p.moe_top_k)}  # experts each sample uses")
    if LIFT_CODE[p.lift] is not None and LIFT_CODE[p.lift][2] and not stored:
        lines.append(f"LIFT_SEED = {lit(p.seed)}  # seed of the {p.lift} lift")
    lines.append(f"ARCH_ID = {lit(p.arch_id)}")
    lines.append("ARCH = {  # the ArchSpec this file was generated for (less the training schedule's fpe_at); "
                 "load() checks arch.json against it")
    lines += [f'    "{key}": {lit(value)},' for key, value in p.arch.items() if key not in _TRAINING_ONLY]
    lines.append("}")
    src = "\n".join(lines) + "\n"

    lift_attr = "embed" if mixed else "lift"
    if LIFT_CODE[p.lift] is not None:
        src += _STORED_LIFT.replace("{lift_attr}", lift_attr) if stored else LIFT_CODE[p.lift][1]

    act_code, act_name, act_class = ACTIVATION_CODE[p.activation]
    if act_class is not None:
        src += act_class
    if p.fpe_alpha > 1:
        src += _FPE.replace("{act_code}", act_code)
    if p.moe_experts > 1:
        if p.fpe_alpha > 1:
            expert = "FPEPair(d_z, d_h, FPE_ALPHA)"
        else:
            src += _DENSE_EXPERT.replace("{act_code}", act_code)
            expert = "DenseExpert(d_z, d_h)"
        src += _MOE.replace("{expert_code}", expert)
    norm_code = NORM_CODE[p.norm]
    norm_line = "" if norm_code is None else f"        self.norm = {norm_code}\n"
    if p.moe_experts > 1 or p.fpe_alpha > 1:
        if p.moe_experts > 1:
            ffn_code = "MixtureOfExperts(d_z, d_h, EXPERTS, TOP_K)"
            ffn_words = (f"is a mixture of {p.moe_experts} {'FPE pairs' if p.fpe_alpha > 1 else 'dense experts'} "
                         f"(top-{p.moe_top_k})")
        else:
            ffn_code, ffn_words = "FPEPair(d_z, d_h, FPE_ALPHA)", f"expanded by FPE (alpha {p.fpe_alpha})"
        block = _FFN_BLOCK.replace("{ffn_code}", ffn_code).replace("{ffn_words}", ffn_words)
    else:
        block = _BLOCK.replace("{act_code}", act_code)
    src += (block
            .replace("{act_name}", act_name)
            .replace("{norm_expr}", "h" if norm_code is None else f"{p.norm}(h)")
            .replace("{d_z}", lit(p.d_z)).replace("{d_h}", lit(p.d_h)).replace("{shape_word}", shape_word)
            .replace("{norm_line}", norm_line)
            .replace("{norm_call}", _norm_call(p, "h")))

    if mixed:
        if p.patch and len(p.in_shape) == 2:
            src += _PATCHES
        else:
            how = (f"consecutive chunks of PATCH features" if p.patch else
                   "the sample's first axis is the tokens, the rest their features")
            src += _TOKENS.replace("{how}", how)
        mix_class, mix_code, positions = MIXER_CODE[p.mixer]
        src += mix_code
        src += (_MIXER_LAYER.replace("{mixer}", mix_class).replace("{norm_line}", norm_line)
                .replace("{norm_call}", _norm_call(p, "h.reshape(bsz * t, d)")))
        if LIFT_CODE[p.lift] is not None:
            embed_line = f"        self.embed = {_lift_ctor(p, stored, 'FEATURES')}  # every token: F -> D_Z\n"
            embed_call = ("        h = self.embed(h.reshape(-1, FEATURES)).view(x.shape[0], N_TOKENS, D_Z)"
                          f"  # (B, {p.n_tokens}, {p.d_z})\n")
        else:
            embed_line = embed_call = ""
        if positions:
            pos_line = ("        self.pos = nn.Parameter(torch.zeros(N_TOKENS, D_Z))"
                        "  # learned positions, filled by load()\n")
            pos_call, pos_words = "        h = h + self.pos\n", " + positions"
        else:
            pos_line = pos_call = pos_words = ""
        src += (_MIXER_NET.replace("{embed_line}", embed_line).replace("{embed_call}", embed_call)
                .replace("{pos_line}", pos_line).replace("{pos_call}", pos_call).replace("{pos_words}", pos_words)
                .replace("{d_in}", lit(p.d_in)).replace("{d_z}", lit(p.d_z)).replace("{d_out}", lit(p.d_out))
                .replace("{t}", lit(p.n_tokens)).replace("{f}", lit(p.features)))
        model_class = "MixerNet"
    else:
        if LIFT_CODE[p.lift] is not None:
            lift_line = f"        self.lift = {_lift_ctor(p, stored, 'D_IN')}  # (B, {{d_in}}) -> (B, {{d_z}})\n"
            lift_call, lift_comment = "self.lift(x)", ""
        else:
            lift_line = ""
            lift_call, lift_comment = "x", "no lift: the residual stream is the input itself, d_z = d_in: "
        src += (_MODEL.replace("{lift_line}", lift_line).replace("{lift_call}", lift_call)
                .replace("{lift_comment}", lift_comment)
                .replace("{d_in}", lit(p.d_in)).replace("{d_z}", lit(p.d_z)).replace("{d_out}", lit(p.d_out)))
        model_class = "HourglassMLP"
    src += _READER_AND_LOAD.replace("{model_class}", model_class)
    return src


# ------------------------------------------------------------ the export
@dataclass
class ExportMeta:
    """Where an exported candidate came from (all optional: a model built outside a study has none)."""

    study: str | None = None
    trial: int | None = None
    sampler: str | None = None
    picked_by: str | None = None  # "trial", an objective's name, or "knee"
    dataset: str | None = None
    kind: str | None = None
    train: dict[str, Any] | None = None  # TrainSpec.to_json()
    objectives: dict[str, float] = field(default_factory=dict)  # every metric nas measured
    directions: dict[str, str] = field(default_factory=dict)  # the study's objectives
    pareto: bool | None = None
    complete_trials: int | None = None
    reused_from_trial: int | None = None  # the trial whose training (and weights file) this one reused
    evaluator_version: int | None = None  # nas.evaluators.train.EVALUATOR_VERSION that scored it (1: before 2)


def export_model(spec, weights, out_dir: str | os.PathLike, meta: ExportMeta | None = None,
                 store_lift: bool = False, check_torch_export: bool = True) -> Path:
    """Write the export folder ``out_dir`` for ``spec`` with ``weights``; return its path.

    ``weights``: a safetensors file of nas's ``HourglassMLP`` state_dict (copied as
    is) or the state_dict itself. ``out_dir`` must not exist or be empty.
    """
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    import nas
    from nas.spaces import build

    p = check_spec(spec)
    meta = meta or ExportMeta()
    out = _check_out(out_dir)
    stored = bool(store_lift) and p.lift in STORABLE_LIFTS

    if isinstance(weights, Mapping):
        weights_file = None
        tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
        file_meta = {"arch_id": p.arch_id}
    else:
        weights_file = Path(weights)
        if not weights_file.is_file():
            raise NasInputError(f"weights file {weights_file} is missing")
        try:
            with safe_open(str(weights_file), framework="pt") as f:
                file_meta = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:
            raise NasInputError(f"weights file {weights_file}: not a readable safetensors file ({exc})") from None
        if file_meta.get("arch_id", p.arch_id) != p.arch_id:
            raise NasInputError(f"weights file {weights_file} holds arch {file_meta['arch_id']}, "
                                f"not this candidate's {p.arch_id}")

    with torch.device("cpu"):
        reference = build(spec)
    try:
        reference.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        where = f"weights file {weights_file}" if weights_file else "the state_dict"
        raise NasInputError(f"{where} does not fit arch {p.arch_id}: {' '.join(str(exc).split())[:500]}") from None
    reference.eval()
    if stored:
        attr = "embed" if p.mixer != "none" else "lift"
        tensors[f"{attr}.weight"] = getattr(reference, attr).weight.detach().clone()  # the regenerated R, as nas has it
        file_meta["lift"] = "stored"

    source = model_source(p, store_lift=stored)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".nas-export", dir=out.parent))
    except OSError as exc:
        raise NasInputError(f"--out {out}: cannot write there: {exc.strerror or exc}") from None
    try:
        (tmp / "model.py").write_text(source)
        if weights_file is not None and not stored:
            shutil.copyfile(weights_file, tmp / "weights.safetensors")
        else:
            save_file(tensors, str(tmp / "weights.safetensors"), metadata=file_meta)
        card = _arch_json(p, meta, stored, nas.__version__, torch.__version__)
        (tmp / "arch.json").write_text(json.dumps(card, indent=2) + "\n")
        card["checks"] = _check(tmp, source, reference, p, check_torch_export)
        (tmp / "arch.json").write_text(json.dumps(card, indent=2) + "\n")
        (tmp / "README.md").write_text(model_card(card, out.name, len(tensors),
                                                  (tmp / "weights.safetensors").stat().st_size))
        tmp.chmod(0o777 & ~_umask())
        try:
            os.rename(tmp, out)  # atomic; replaces only an empty folder
        except OSError:
            raise NasInputError(f"--out {out}: it appeared, not empty, while exporting; nothing was written")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_out(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir).expanduser()
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise NasInputError(f"--out {out}: exists and is not a folder; nas export never overwrites")
    if out.is_dir() and any(out.iterdir()):
        raise NasInputError(f"--out {out}: the folder exists and is not empty; nas export never overwrites "
                            "(choose a new folder)")
    return out.absolute()


def _arch_json(p: _Parts, meta: ExportMeta, stored: bool, nas_version: str, torch_version: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "arch_id": p.arch_id,
        "arch": p.arch,
        "task": {"dataset": meta.dataset, "kind": meta.kind, "d_in": p.d_in, "d_out": p.d_out},
        "train": meta.train,
        "objectives": meta.objectives,
        "directions": meta.directions,
        "study": meta.study,
        "trial": meta.trial,
        "sampler": meta.sampler,
        "picked_by": meta.picked_by,
        "pareto": meta.pareto,
        "complete_trials": meta.complete_trials,
        "reused_from_trial": meta.reused_from_trial,
        "evaluator_version": meta.evaluator_version,
        "lift_stored": stored,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nas_version": nas_version,
        "torch_version": torch_version,
    }


def _check(folder: Path, source: str, reference, p: _Parts, check_torch_export: bool) -> dict[str, Any]:
    """Load the export as a user would and compare it with nas's model; try torch.export on it."""
    import torch

    module = types.ModuleType("_nas_export_check")
    module.__file__ = str(folder / "model.py")
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # our generated code; no .pyc left behind
    net = module.load(folder)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(CHECK_BATCH, p.d_in, generator=gen) * torch.logspace(-2, 2, CHECK_BATCH).unsqueeze(1)
    with torch.no_grad():
        want, got = reference(x), net(x)
    if got.shape != want.shape or not torch.equal(got, want):
        diff = (got - want).abs().max().item() if got.shape == want.shape else f"shape {tuple(got.shape)}"
        raise RuntimeError(f"bug in nas export: the exported arch {p.arch_id} does not reproduce nas's outputs "
                           f"(max difference {diff})")
    checks: dict[str, Any] = {"outputs_equal_nas": True, "inputs_checked": CHECK_BATCH}
    if check_torch_export and p.moe_experts > 1:
        checks["torch_export"] = ("not supported: the mixture of experts' routing has data-dependent shapes "
                                  "(tokens per expert), which torch.export cannot trace")
    elif check_torch_export:
        try:
            ep = torch.export.export(net, (torch.randn(1, p.d_in),))
            x1 = x[:1]
            with torch.no_grad():
                diff = (ep.module()(x1) - net(x1)).abs().max().item()
            checks["torch_export"] = "ok" if diff <= 1e-5 * (1 + net(x1).abs().max().item()) else \
                f"exported, but its outputs differ by {diff:.3g}"
        except Exception as exc:  # recorded, not fatal: the module itself is fine
            checks["torch_export"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    else:
        checks["torch_export"] = "not checked"
    checks["onnx"] = "not checked"
    return checks


# ------------------------------------------------------------ the model card
def _md(text: Any) -> str:
    """A value as inline Markdown code (user strings go into the card, never into code)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def model_card(card: dict[str, Any], folder_name: str, n_tensors: int, n_bytes: int) -> str:
    from nas.search.format import human_bytes, human_count
    from nas.spaces import ArchSpec
    from nas.spaces.schema import IMAGE_KINDS

    p = check_spec(ArchSpec.from_json(card["arch"]))
    task, obj = card["task"], card["objectives"] or {}
    directions = card["directions"] or {}
    image = task.get("kind") in IMAGE_KINDS
    title = f"{_kind(p)} {'net' if p.mixer != 'none' else 'MLP'} {p.d_in} -> {p.d_z} -> {p.d_out}"
    if card["study"] is not None:
        title += f": trial {card['trial']} of study {_md(card['study'])}"
    lines = [f"# {title}", "",
             f"Exported by `nas export` (nas {card['nas_version']}, PyTorch {card['torch_version']}) on "
             f"{card['exported_at']}.", "",
             "## The model", "", "| | |", "|---|---|",
             f"| architecture | {describe(p, card['lift_stored'])} |",
             f"| arch_id | `{p.arch_id}` |"]
    if task.get("dataset"):
        lines.append(f"| trained on | {task.get('kind') or 'classification'} on {_md(task['dataset'])} "
                     f"({p.d_in} inputs, {p.d_out} outputs) |")
    else:
        lines.append(f"| task | {p.d_in} inputs, {p.d_out} outputs (not recorded) |")
    lines.append("| output | " + ("`torch.sigmoid(net(x))` is the predicted image: pixels in [0, 1], not class "
                                 "logits |" if image else "class logits (the prediction is their argmax) |"))
    train = card.get("train") or {}
    if train:
        lines.append("| training | " + ", ".join(f"{k} {_md(v)}" for k, v in train.items()) + " |")
    lines += ["", "### The blocks", ""] + [f"- {text}" for text in _blocks_in_words(p, card["lift_stored"])]
    lines += ["", "## Objectives", ""]
    if obj:
        lines += ["As nas measured them.", "", "| metric | value | in the study |", "|---|---|---|"]
        for metric in [m for m in directions if m in obj] + [m for m in obj if m not in directions]:
            value = obj[metric]
            text = _metric(metric, value, human_count, human_bytes, card.get("evaluator_version"))
            lines.append(f"| {metric} | {text} | {directions.get(metric, '-')} |")
    else:
        lines.append("None recorded (exported outside a study).")
    imp = folder_name if folder_name.isidentifier() else None
    lines += ["", "## Load it", "",
              "It needs only PyTorch: `model.py` reads `weights.safetensors` itself (no nas, no safetensors "
              "package, nothing pickled).", "", "```python", "import torch"]
    if imp:
        lines += [f"import {imp}.model as model   # from the folder that holds {imp}/",
                  f'net = model.load("{imp}")   # eval mode']
    else:
        lines += ["import importlib.util",
                  'spec = importlib.util.spec_from_file_location("model", "PATH/TO/THIS/FOLDER/model.py")',
                  "model = importlib.util.module_from_spec(spec); spec.loader.exec_module(model)",
                  'net = model.load("PATH/TO/THIS/FOLDER")   # eval mode']
    if image:
        lines += [f"pixels = torch.sigmoid(net(torch.rand(1, {p.d_in})))   # (B, {p.d_in}) -> (B, {p.d_out}) "
                  "pixels in [0, 1]", "```", ""]
    else:
        lines += [f"logits = net(torch.randn(1, {p.d_in}))   # (B, {p.d_in}) -> (B, {p.d_out})", "```", ""]
    if p.lift == "fixed_random":
        lift_attr = "embed" if p.mixer != "none" else "lift"
        lines += ["The fixed random lift is " + (
            f"stored in `weights.safetensors` (`{lift_attr}.weight`, exported with `--store-lift`)."
            if card["lift_stored"]
            else "not stored: `model.py` regenerates it from its seed with PyTorch's CPU generator, as nas does "
                 "(export with `--store-lift` to keep the matrix in the file instead)."), ""]
    lines += ["## How it was found", ""]
    if card["study"] is not None:
        picked = card["picked_by"]
        n = card.get("complete_trials")
        among = f" among the {n} complete trials" if n is not None else ""
        if picked == KNEE:
            why = ("chosen with `--pick knee`: the point of the Pareto front closest (Euclidean) to the ideal "
                   "point, each objective min-max normalised over the front")
        elif picked and picked != "trial":
            why = f"chosen with `--pick {picked}`: the best {picked} ({directions.get(picked, '?')}){among}"
        else:
            why = f"chosen with `--trial {card['trial']}`"
        lines.append(f"Study {_md(card['study'])}, trial {card['trial']}, sampler {_md(card['sampler'])}; {why}.")
        if card.get("pareto") is not None:
            lines += ["", f"On the study's Pareto front: {'yes' if card['pareto'] else 'no'}."]
        if card.get("reused_from_trial") is not None:
            lines += ["", f"nas did not train it again: it had the same architecture, training settings and task as "
                          f"trial {card['reused_from_trial']}, whose weights these are."]
    else:
        lines.append("Not recorded (exported outside a study).")
    checks = card.get("checks", {})
    te = checks.get("torch_export", "not checked")
    lines += ["", "## Checks", "",
              f"- Outputs equal to nas's own model (`torch.equal`, CPU float32) on {checks.get('inputs_checked')} "
              "random inputs: checked at export time.",
              f"- `torch.export.export(net, (torch.randn(1, {p.d_in}),))`: "
              + ("works (checked at export time)." if te == "ok" else f"{te}."),
              "- ONNX: not checked by nas (the `onnx` package is not a nas dependency). " + _onnx_words(p),
              "", "## Files", "",
              "| file | |", "|---|---|",
              "| `model.py` | the model's classes and `load()`; imports only torch, math, json, pathlib |",
              f"| `weights.safetensors` | {n_tensors} tensors, {human_bytes(n_bytes)} |",
              "| `arch.json` | the ArchSpec, task, training settings, objectives and provenance |",
              "| `README.md` | this card |", ""]
    return "\n".join(lines)


def _blocks_in_words(p: _Parts, stored: bool) -> list[str]:
    """The model card's description of each block the architecture uses, one paragraph each."""
    d_lift = p.features if p.mixer != "none" else p.d_in
    lift = {
        "fixed_random": f"a fixed random matrix R ({p.d_z} x {d_lift}, entries N(0, 1/{d_lift})), never trained; "
                        + ("stored in the weights file" if stored else
                           f"regenerated from seed {p.seed} with PyTorch's CPU generator"),
        "learned": f"a trained bias-free linear layer {d_lift} -> {p.d_z}",
        "hadamard": f"a seeded Hadamard transform: random signs, the fast Walsh-Hadamard transform and a random "
                    f"subset of {p.d_z} coordinates, scaled by 1/sqrt({d_lift}); never trained, regenerated from seed "
                    f"{p.seed} with PyTorch's CPU generator",
        "hashed": f"a ±1/sqrt({d_lift}) matrix ({p.d_z} x {d_lift}) whose entries are an integer hash of (seed "
                  f"{p.seed}, row, column); never trained, recomputed by `model.py`",
        "none": "none: the residual stream is the input itself",
    }[p.lift]
    words = [f"Lift{' (the per-token embedding)' if p.mixer != 'none' else ''}: {lift}."]
    norm = {"batchnorm": "BatchNorm without affine parameters (running statistics from training)",
            "layernorm": "LayerNorm without affine parameters", "none": "no norm"}[p.norm]
    act = ACTIVATION_WORDS.get(p.activation, p.activation)
    words.append(f"Residual blocks: h + W2 act(W1 norm(h)), {p.d_z} -> {p.d_h} -> {p.d_z}, no biases; norm: {norm}; "
                 f"activation: {act}.")
    if p.fpe_alpha > 1:
        words.append(f"Fixed Parameter Expansion (alpha {p.fpe_alpha}, {p.fpe_split} split): each hidden neuron of "
                     f"W1 was split into {p.fpe_alpha} children during training, so the hidden layer has "
                     f"{p.fpe_alpha * p.d_h} neurons; fixed 0/1 masks (`mask1`, `mask2` in the weights) keep as many "
                     "non-zero weights as the dense pair, and the forward pass uses W ⊙ mask.")
    if p.moe_experts > 1:
        kind = "an FPE pair" if p.fpe_alpha > 1 else "a dense W2 act(W1 ·) pair"
        gate = ("its router probability" if p.moe_top_k == 1 else
                f"the router probabilities renormalised over the chosen {p.moe_top_k}")
        words.append(f"Mixture of experts: each block's W2 act(W1 ·) is {p.moe_experts} experts (each {kind}) "
                     f"behind a bias-free linear router with a softmax; every sample uses its top-{p.moe_top_k} "
                     f"experts, each weighted by {gate}.")
    if p.mixer != "none":
        positions = " plus a learned position table" if MIXER_CODE[p.mixer][2] else ""
        words.append(f"Token mixing: the input is cut into {p.n_tokens} tokens of {p.features} features, each "
                     f"embedded by the lift{positions}; each of the {p.depth} layers adds "
                     f"{MIXER_WORDS[p.mixer]} of the normed tokens, then runs the residual block on every token; "
                     "the head reads the mean over the tokens.")
    return words


def _onnx_words(p: _Parts) -> str:
    if p.moe_experts > 1:
        return ("The mixture of experts routes samples with data-dependent shapes, so a traced ONNX graph would "
                "fix the routing of its example input: not expected to work as is.")
    if p.mixer == "maxstate":
        return "maxstate's running maximum (`torch.cummax`) has no standard ONNX op: not expected to work as is."
    if p.mixer != "none" or p.lift == "hadamard" or p.activation in ("rational", "pwl") or p.fpe_alpha > 1:
        return (f"`torch.onnx.export(net, (torch.randn(1, {p.d_in}),), \"model.onnx\")` is expected to work "
                "(standard ops only), but nas has not tried it.")
    return ("Every op is a standard ONNX op (MatMul, BatchNormalization / LayerNormalization, Relu / Gelu / "
            f"Sigmoid·Mul / Tanh / Where, Add), so `torch.onnx.export(net, (torch.randn(1, {p.d_in}),), "
            "\"model.onnx\")` is expected to work.")


def _metric(metric: str, value: Any, human_count, human_bytes, evaluator_version: int | None = None) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return _md(value)
    if metric == "accuracy":
        return f"{value:.4f} (test accuracy of the best-validation checkpoint)"
    if metric == "psnr" and evaluator_version == 1:
        return f"{value:.2f} dB (mean per-image test PSNR of the best-validation checkpoint; nas before version 2)"
    if metric == "psnr":
        return (f"{value:.2f} dB (test PSNR of the best-validation checkpoint: the pooled MSE's of each batch of "
                "128 images, averaged over the batches)")
    if metric == "params":
        return f"{human_count(value)} ({int(value):,} stored parameters)"
    if metric == "bandwidth":
        return f"{human_bytes(value)} moved per batch-1 inference ({int(value):,} bytes)"
    if metric == "latency_ms":
        return f"{value:.3f} ms (median batch-1 forward pass on the training device)"
    return f"{value:.6g}"


# ------------------------------------------------------------ choosing a candidate
def _evaluator_version(train_key: str | None) -> int:
    """The evaluator version a stored ``train_key`` carries (``nas.search.runner.evaluation_key``); 1 before."""
    head, sep, tail = (train_key or "").rpartition(".e")
    return int(tail) if sep and tail.isdigit() else 1


def best_by(rows: list[dict[str, Any]], metric: str, directions: Mapping[str, str]) -> dict[str, Any]:
    """The best row by ``metric``; ties broken by the other objectives in order, then the lower trial number."""
    order = [metric] + [m for m in directions if m != metric]

    def key(row):
        return tuple((-1 if directions[m] == "maximize" else 1) * row["values"][m] for m in order) + (row["number"],)

    return min(rows, key=key)


def knee(rows: list[dict[str, Any]], directions: Mapping[str, str]) -> dict[str, Any]:
    """The Pareto-front row closest to the ideal point.

    Each objective is min-max normalised over ``rows`` (the front) so that 0 is
    the front's best value and 1 its worst (an objective equal on the whole
    front counts 0); the knee is the row at the smallest Euclidean distance
    from the all-zero ideal point (ties: the lower trial number).
    """
    metrics = list(directions)
    lo = {m: min(r["values"][m] for r in rows) for m in metrics}
    hi = {m: max(r["values"][m] for r in rows) for m in metrics}

    def norm(row, m):
        if hi[m] == lo[m]:
            return 0.0
        v = row["values"][m]
        return (hi[m] - v) / (hi[m] - lo[m]) if directions[m] == "maximize" else (v - lo[m]) / (hi[m] - lo[m])

    return min(rows, key=lambda r: (math.sqrt(sum(norm(r, m) ** 2 for m in metrics)), r["number"]))


def export_candidate(storage_url: str, study: str, out_dir: str | os.PathLike, trial: int | None = None,
                     pick: str | None = None, store_lift: bool = False) -> Path:
    """Export one candidate of ``study``: ``trial`` by number, or ``pick`` (an objective or ``knee``).

    Returns the folder written. Bad input raises NasInputError with one message.
    """
    import sqlalchemy as sa

    from nas.search.models import Candidate, Run
    from nas.search.results import study_report
    from nas.search.storage import Store, redact
    from nas.spaces import ArchSpec, TrainSpec

    if (trial is None) == (pick is None):
        raise NasInputError("pass exactly one of --trial N or --pick METRIC (an objective of the study, or knee)")
    if trial is not None and (type(trial) is not int):
        raise NasInputError(f"--trial: expected a trial number, found {trial!r}")
    _check_out(out_dir)
    report = study_report(storage_url, study)  # an unknown study: an error listing the studies
    directions = report["directions"]
    complete = [t for t in report["trials"] if t["state"] == "COMPLETE" and set(t["values"]) >= set(directions)]
    if pick is not None:
        if pick not in directions and pick != KNEE:
            raise NasInputError(f"--pick {pick!r}: not an objective of study {study!r}; expected one of "
                                f"{', '.join(list(directions) + [KNEE])}")
        if not complete:
            raise NasInputError(f"study {study!r} has no complete candidate to pick from yet")
        if pick in directions:
            row = best_by(complete, pick, directions)
        else:
            row = knee([t for t in complete if t["pareto"]] or complete, directions)
    else:
        rows = {t["number"]: t for t in report["trials"]}
        if trial not in rows:
            numbers = sorted(rows)
            have = f"its trials are {numbers[0]} to {numbers[-1]}" if numbers else "it has no trials"
            raise NasInputError(f"--trial {trial}: study {study!r} has no trial {trial}; {have}")
        row = rows[trial]
        if row["state"] != "COMPLETE":
            state = {"FAIL": "failed", "PRUNED": "pruned", "RUNNING": "still running"}.get(row["state"],
                                                                                      row["state"].lower())
            why = f": {row['error']}" if row.get("error") else ""
            raise NasInputError(f"--trial {trial}: trial {trial} of study {study!r} {state}, it has no trained "
                                f"model to export{why}")
    number = row["number"]

    store = Store(storage_url, create=False)
    try:
        if not store.has_nas_tables():
            raise NasInputError(f"study {study!r} has no nas records in {redact(storage_url)}")
        with store.session() as s:
            cand = s.scalars(sa.select(Candidate).where(Candidate.study_name == study,
                                                        Candidate.trial_number == number)).first()
            if cand is None:
                raise NasInputError(f"trial {number} of study {study!r} has no nas record (made outside nas?)")
            run = s.get(Run, cand.run_id)
            original = s.get(Candidate, cand.reused_from) if cand.reused_from is not None else None
            sampler = run.sampler if run is not None else None
            reused_from = original.trial_number if original is not None and original.study_name == study else None
    finally:
        store.close()
    if not cand.weights_path:
        raise NasInputError(f"trial {number} of study {study!r} has no stored weights")
    weights = Path(cand.weights_path)
    if not weights.is_file():
        raise NasInputError(f"trial {number} of study {study!r}: its weights file {weights} is missing "
                            "(moved or deleted?)")
    try:
        spec = ArchSpec.from_json(dict(cand.arch))
    except (TypeError, ValueError) as exc:
        raise NasInputError(f"trial {number} of study {study!r}: cannot read its architecture: {exc}") from None
    try:
        train = TrainSpec.from_json(dict(cand.train)).to_json()
    except (TypeError, ValueError):
        train = dict(cand.train)
    kind, _, dataset = (cand.task_key or "").partition("|")
    meta = ExportMeta(
        study=study, trial=number, sampler=sampler, picked_by=pick if pick is not None else "trial",
        dataset=dataset or None, kind=kind or None, train=train, objectives=dict(cand.objectives or {}),
        directions=dict(directions), pareto=bool(row["pareto"]), complete_trials=len(complete),
        reused_from_trial=reused_from, evaluator_version=_evaluator_version(cand.train_key),
    )
    return export_model(spec, weights, out_dir, meta, store_lift=store_lift)
