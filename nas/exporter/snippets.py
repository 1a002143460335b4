"""The Python text of every exportable block, one snippet each, and the tables that choose them.

Each snippet mirrors a nas module op for op (nas/spaces/blocks.py, activations.py, lifts.py, fpe.py, moe.py,
mixers.py and the PyTorch reference paths in nas/kernels/), so the state dict keys match and the outputs are the
same bits. This is the second copy of every block that the one-source issue removes: model.py is to be made
from nas's own torch-only classes instead. Over 500 lines for that reason only.
"""

from __future__ import annotations



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
