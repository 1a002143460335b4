"""Learnable activation families (registered in ``ACTIVATIONS``).

Each factory takes the layer width and returns a module that maps a tensor of
any shape (…, width) elementwise to the same shape, in float32 or bfloat16.
Every instance owns its few parameters. ``per_neuron=False`` (the space's
``activation_scope: layer``, the default): one set shared by all the layer's
units, each parameter a scalar (or a vector of coefficients). ``per_neuron=True``
(``activation_scope: neuron``): one set per unit, each parameter with a
trailing dimension of size width, so width × the per-layer count;
``neuron_scope(factory)`` is the width -> module factory of that form. They are
stored and read once, so they count as params and weight bytes; the
activation itself is fused into the layer before it and moves no activation
bytes.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from nas.spaces.base import ACTIVATIONS, Cost


class _LearnableActivation(nn.Module):
    """Base of the learnable activations: a few parameters shared by the layer's units (or one set per unit)."""

    def nas_cost(self, dtype_bytes: int) -> Cost:
        n = sum(p.numel() for p in self.parameters())
        return Cost(params=n, weight_bytes=n * dtype_bytes)


def neuron_scope(act):
    """The factory ``width -> act(width, per_neuron=True)``: a learnable activation with one parameter set per unit."""

    def factory(width: int) -> nn.Module:
        return act(width, per_neuron=True)

    return factory


def _shape(width: int, per_neuron: bool, *lead: int) -> tuple[int, ...]:
    """A parameter's shape: ``lead`` (coefficients) for the layer, ``(*lead, width)`` with one column per unit."""
    return (*lead, width) if per_neuron else lead


class PReLU(_LearnableActivation):
    """y = x for x ≥ 0, a·x otherwise; one learnable slope a per layer or per unit (init 0.25, as PyTorch's PReLU)."""

    def __init__(self, width: int, per_neuron: bool = False):
        super().__init__()
        self.slope = nn.Parameter(torch.full(_shape(width, per_neuron), 0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, width) -> (…, width)
        return torch.where(x >= 0, x, self.slope.to(x.dtype) * x)


class Swish(_LearnableActivation):
    """y = x·sigmoid(β·x) with one learnable β per layer or per unit (init 1: SiLU)."""

    def __init__(self, width: int, per_neuron: bool = False):
        super().__init__()
        self.beta = nn.Parameter(torch.ones(_shape(width, per_neuron)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, width) -> (…, width)
        return x * torch.sigmoid(self.beta.to(x.dtype) * x)


RATIONAL_P, RATIONAL_Q = 5, 4  # degrees of the numerator and the denominator


@functools.lru_cache(maxsize=None)
def rational_init(target: str = "gelu", reach: float = 5.0, points: int = 1001) -> tuple[tuple[float, ...], ...]:
    """Coefficients (a_0..a_5), (b_1..b_4) with P(x)/(1 + Σ b_k x^k) ≈ target(x) on [-reach, reach].

    The linear least-squares fit of Padé activation units: minimise
    Σ_x (P(x) − f(x)·Σ_k b_k x^k − f(x))² over a grid, a linear problem in
    (a, b). Fitted on [-5, 5] rather than [-3, 3] the GELU fit's denominator
    polynomial stays ≥ 0 everywhere, so the safe form 1 + |Σ b_k x^k| equals
    it; the largest error on [-3, 3] is below 0.006. Computed once, in float64 on
    the CPU, and cached.
    """
    x = torch.linspace(-reach, reach, points, dtype=torch.float64, device="cpu")
    y = {"gelu": F.gelu, "relu": torch.relu}[target](x)
    powers = x[:, None] ** torch.arange(RATIONAL_P + 1, dtype=torch.float64, device="cpu")  # (points, 6): 1, x, …, x^5
    design = torch.cat([powers, -y[:, None] * powers[:, 1 : RATIONAL_Q + 1]], dim=1)  # (points, 10)
    coef = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
    return tuple(coef[: RATIONAL_P + 1].tolist()), tuple(coef[RATIONAL_P + 1 :].tolist())


class Rational(_LearnableActivation):
    """A learnable Padé activation: y = P(x) / (1 + |b_1 x + … + b_4 x^4|), P(x) = a_0 + a_1 x + … + a_5 x^5.

    The "safe" denominator is ≥ 1, so there are no poles. Ten learnable
    coefficients per layer (per unit: (6, width) and (4, width), a column
    each), initialised to the least-squares fit of GELU (``rational_init``).
    Evaluated by Horner's rule in float32 (x^5 loses too much in bfloat16) and
    cast back to the input's dtype.
    """

    def __init__(self, width: int, per_neuron: bool = False):
        super().__init__()
        self.numerator = nn.Parameter(torch.empty(_shape(width, per_neuron, RATIONAL_P + 1)))  # a_0..a_5
        self.denominator = nn.Parameter(torch.empty(_shape(width, per_neuron, RATIONAL_Q)))  # b_1..b_4
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        a, b = rational_init()
        self.numerator.copy_(_columns(a, self.numerator))
        self.denominator.copy_(_columns(b, self.denominator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, width) -> (…, width)
        xf = x.float()
        a, b = self.numerator.float(), self.denominator.float()
        p = a[-1]
        for coef in a.flip(0)[1:]:  # Horner: (((a_5 x + a_4) x + a_3) x + …) x + a_0
            p = p * xf + coef
        q = b[-1]
        for coef in b.flip(0)[1:]:  # (((b_4 x + b_3) x + b_2) x + b_1) x
            q = q * xf + coef
        return (p / (1 + (q * xf).abs())).to(x.dtype)


def _columns(values, like: torch.Tensor) -> torch.Tensor:
    """``values`` as a tensor shaped like ``like``: as is, or repeated in every unit's column."""
    t = torch.as_tensor(values, dtype=like.dtype, device=like.device)
    return t if like.dim() == 1 else t[:, None].expand_as(like)


PWL_KNOTS, PWL_REACH = 9, 3.0  # 8 segments on [-3, 3]


class PiecewiseLinear(_LearnableActivation):
    """A learnable piecewise-linear function on the fixed knots t_0..t_8 = linspace(-3, 3, 9).

    Learnable: the values v_i = y(t_i) and the two outer slopes s_l, s_r.
    Inside [-3, 3] y interpolates linearly between neighbouring knots; below
    it y = v_0 + s_l (x − t_0), above it y = v_8 + s_r (x − t_8). Initialised
    to ReLU exactly (0 is a knot): v_i = max(t_i, 0), s_l = 0, s_r = 1.
    Computed in float32 and cast back to the input's dtype. 11 parameters per
    layer; per unit ``values`` (9, width) and ``slopes`` (2, width).
    """

    def __init__(self, width: int, per_neuron: bool = False):
        super().__init__()
        self.step = 2 * PWL_REACH / (PWL_KNOTS - 1)
        self.values = nn.Parameter(torch.empty(_shape(width, per_neuron, PWL_KNOTS)))
        self.slopes = nn.Parameter(torch.empty(_shape(width, per_neuron, 2)))  # s_l, s_r
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.values.copy_(_columns(torch.linspace(-PWL_REACH, PWL_REACH, PWL_KNOTS).clamp(min=0), self.values))
        self.slopes.copy_(_columns([0.0, 1.0], self.slopes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, width) -> (…, width)
        xf = x.float()
        v, s = self.values.float(), self.slopes.float()
        u = (xf + PWL_REACH) / self.step  # position in segments from t_0
        i = u.floor().clamp(0, PWL_KNOTS - 2).long()  # the segment (…, width), in 0..7
        if v.dim() == 1:
            v0, v1 = v[i], v[i + 1]
        else:  # one column per unit: unit j reads column j
            unit = torch.arange(v.shape[1], device=v.device)
            v0, v1 = v[i, unit], v[i + 1, unit]
        inside = v0 + (u - i) * (v1 - v0)
        below = v[0] + s[0] * (xf + PWL_REACH)
        above = v[-1] + s[1] * (xf - PWL_REACH)
        y = torch.where(xf < -PWL_REACH, below, torch.where(xf > PWL_REACH, above, inside))
        return y.to(x.dtype)


PWL_MIN_GAP = 1e-3  # the least distance between neighbouring knots of pwl_knots


class PiecewiseLinearKnots(_LearnableActivation):
    """A learnable piecewise-linear function whose 9 knots t_0 < … < t_8 are learnable too (``pwl``: fixed knots).

    The knots: t_0 = ``start`` and t_j = t_{j-1} + max(0.75·(elu(g_j) + 1), 0.001)
    for j = 1..8 (``gaps`` g_1..g_8; elu(g) + 1 is exp(g) for g ≤ 0, 1 + g
    above, so a gap neither vanishes nor overflows), so they stay sorted, each
    at least 0.001 after the one before, whatever the training does (no sort
    in the forward pass). Learnable as well: the values v_j = y(t_j) and the two outer
    slopes s_l, s_r. Between neighbouring knots y interpolates linearly,
    y = v_j + k_j (x − t_j) with k_j = (v_{j+1} − v_j) / (t_{j+1} − t_j) (the
    gap itself as the divisor: never below 0.001, even where float32 rounds
    far-off knots together); below
    t_0 y = v_0 + s_l (x − t_0), above t_8 y = v_8 + s_r (x − t_8).
    Initialised to ReLU exactly: t_0 = −3, g = 0 (the knots linspace(−3, 3, 9),
    0 among them), v_j = max(t_j, 0), s_l = 0, s_r = 1. Computed in float32
    and cast back to the input's dtype. 20 parameters per layer (1 + 8 + 9 +
    2); per unit each has a trailing dimension of size width.
    """

    def __init__(self, width: int, per_neuron: bool = False):
        super().__init__()
        self.start = nn.Parameter(torch.empty(_shape(width, per_neuron)))  # t_0
        self.gaps = nn.Parameter(torch.empty(_shape(width, per_neuron, PWL_KNOTS - 1)))  # g_1..g_8
        self.values = nn.Parameter(torch.empty(_shape(width, per_neuron, PWL_KNOTS)))
        self.slopes = nn.Parameter(torch.empty(_shape(width, per_neuron, 2)))  # s_l, s_r
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.start.fill_(-PWL_REACH)
        self.gaps.zero_()
        self.values.copy_(_columns(torch.linspace(-PWL_REACH, PWL_REACH, PWL_KNOTS).clamp(min=0), self.values))
        self.slopes.copy_(_columns([0.0, 1.0], self.slopes))

    def knots_and_gaps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """t_0..t_8, (9,) or (9, width), and the 8 gaps t_{j+1} − t_j (each ≥ 0.001), in float32."""
        step = 2 * PWL_REACH / (PWL_KNOTS - 1)
        gaps = (step * (F.elu(self.gaps.float()) + 1)).clamp(min=PWL_MIN_GAP)
        t0 = self.start.float()
        return torch.cat([t0.unsqueeze(0), t0 + gaps.cumsum(0)]), gaps

    def knots(self) -> torch.Tensor:
        """t_0..t_8, (9,) or (9, width), in float32: sorted, neighbours 0.001 apart or more."""
        return self.knots_and_gaps()[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, width) -> (…, width)
        xf = x.float()
        (t, gaps), v, s = self.knots_and_gaps(), self.values.float(), self.slopes.float()
        k = (v[1:] - v[:-1]) / gaps  # the 8 segments' slopes
        inner = t[1:-1]  # t_1..t_7: segment j holds t_j ≤ x < t_{j+1} (segment 0 also x < t_0, 7 also x ≥ t_8)
        if t.dim() == 1:
            i = torch.searchsorted(inner.contiguous(), xf.contiguous(), right=True)  # (…, width), in 0..7
            t_i, v_i, k_i = t[i], v[i], k[i]
        else:  # one column per unit: unit j's knots are column j
            rows = xf.reshape(-1, xf.shape[-1]).t().contiguous()  # (width, N)
            i = torch.searchsorted(inner.t().contiguous(), rows, right=True).t().reshape(xf.shape)
            unit = torch.arange(t.shape[1], device=t.device)
            t_i, v_i, k_i = t[i, unit], v[i, unit], k[i, unit]
        inside = v_i + k_i * (xf - t_i)
        below = v[0] + s[0] * (xf - t[0])
        above = v[-1] + s[1] * (xf - t[-1])
        y = torch.where(xf < t[0], below, torch.where(xf > t[-1], above, inside))
        return y.to(x.dtype)


class Mix(_LearnableActivation):
    """A learned mixture of the fixed activations: y = w_0 relu(x) + w_1 gelu(x) + w_2 silu(x) + w_3 tanh(x).

    w = softmax of 4 learnable logits, per layer (4,) or per unit (4, width);
    the logits start equal (0), so the mixture starts as the mean of the four
    (w = 0.25 each). GELU is the exact (erf) one. Computed in float32 and cast
    back to the input's dtype. 4 parameters per layer.
    """

    def __init__(self, width: int, per_neuron: bool = False):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(_shape(width, per_neuron, 4)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, width) -> (…, width)
        xf = x.float()
        w = torch.softmax(self.logits.float(), dim=0)
        y = w[0] * torch.relu(xf) + w[1] * F.gelu(xf) + w[2] * F.silu(xf) + w[3] * torch.tanh(xf)
        return y.to(x.dtype)


ACTIVATIONS.register("prelu")(PReLU)
ACTIVATIONS.register("swish")(Swish)
ACTIVATIONS.register("rational")(Rational)
ACTIVATIONS.register("pwl")(PiecewiseLinear)
ACTIVATIONS.register("pwl_knots")(PiecewiseLinearKnots)
ACTIVATIONS.register("mix")(Mix)
