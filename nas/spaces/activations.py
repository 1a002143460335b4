"""Learnable activation families (registered in ``ACTIVATIONS``).

Each factory takes the layer width and returns a module that maps a tensor of
any shape (…, width) elementwise to the same shape, in float32 or bfloat16.
Every instance owns its few parameters ("per-layer": shared by all the
layer's units). They are stored and read once, so they count as params and
weight bytes; the activation itself is fused into the layer before it and
moves no activation bytes.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from nas.spaces.blocks import ACTIVATIONS, Cost


class _LearnableActivation(nn.Module):
    """Base of the learnable activations: a few parameters shared by the layer's units, elementwise."""

    def nas_cost(self, dtype_bytes: int) -> Cost:
        n = sum(p.numel() for p in self.parameters())
        return Cost(params=n, weight_bytes=n * dtype_bytes)


class PReLU(_LearnableActivation):
    """y = x for x ≥ 0, a·x otherwise; one learnable slope a per layer (init 0.25, as PyTorch's PReLU)."""

    def __init__(self, width: int):
        super().__init__()
        self.slope = nn.Parameter(torch.full((), 0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, width) -> (…, width)
        return torch.where(x >= 0, x, self.slope.to(x.dtype) * x)


class Swish(_LearnableActivation):
    """y = x·sigmoid(β·x) with one learnable β per layer (init 1: SiLU)."""

    def __init__(self, width: int):
        super().__init__()
        self.beta = nn.Parameter(torch.ones(()))

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
    coefficients per layer, initialised to the least-squares fit of GELU
    (``rational_init``). Evaluated by Horner's rule in float32 (x^5 loses too
    much in bfloat16) and cast back to the input's dtype.
    """

    def __init__(self, width: int):
        super().__init__()
        self.numerator = nn.Parameter(torch.empty(RATIONAL_P + 1))  # a_0..a_5
        self.denominator = nn.Parameter(torch.empty(RATIONAL_Q))  # b_1..b_4
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        a, b = rational_init()
        self.numerator.copy_(torch.tensor(a, device=self.numerator.device))
        self.denominator.copy_(torch.tensor(b, device=self.denominator.device))

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


PWL_KNOTS, PWL_REACH = 9, 3.0  # 8 segments on [-3, 3]


class PiecewiseLinear(_LearnableActivation):
    """A learnable piecewise-linear function on the fixed knots t_0..t_8 = linspace(-3, 3, 9).

    Learnable: the values v_i = y(t_i) and the two outer slopes s_l, s_r.
    Inside [-3, 3] y interpolates linearly between neighbouring knots; below
    it y = v_0 + s_l (x − t_0), above it y = v_8 + s_r (x − t_8). Initialised
    to ReLU exactly (0 is a knot): v_i = max(t_i, 0), s_l = 0, s_r = 1.
    Computed in float32 and cast back to the input's dtype. 11 parameters.
    """

    def __init__(self, width: int):
        super().__init__()
        self.step = 2 * PWL_REACH / (PWL_KNOTS - 1)
        self.values = nn.Parameter(torch.empty(PWL_KNOTS))
        self.slopes = nn.Parameter(torch.empty(2))  # s_l, s_r
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.values.copy_(torch.linspace(-PWL_REACH, PWL_REACH, PWL_KNOTS).clamp(min=0))
        self.slopes.copy_(torch.tensor([0.0, 1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, width) -> (…, width)
        xf = x.float()
        v, s = self.values.float(), self.slopes.float()
        u = (xf + PWL_REACH) / self.step  # position in segments from t_0
        i = u.floor().clamp(0, PWL_KNOTS - 2).long()  # the segment (…, width), in 0..7
        v0, v1 = v[i], v[i + 1]
        inside = v0 + (u - i) * (v1 - v0)
        below = v[0] + s[0] * (xf + PWL_REACH)
        above = v[-1] + s[1] * (xf - PWL_REACH)
        y = torch.where(xf < -PWL_REACH, below, torch.where(xf > PWL_REACH, above, inside))
        return y.to(x.dtype)


ACTIVATIONS.register("prelu")(PReLU)
ACTIVATIONS.register("swish")(Swish)
ACTIVATIONS.register("rational")(Rational)
ACTIVATIONS.register("pwl")(PiecewiseLinear)
