"""Structured forms of a block's W1 and W2 (registered in ``WEIGHTS``; the space key ``weights``).

Each form is a bias-free linear map (…, d_in) -> (…, d_out) with fewer stored
values than the dense d_out×d_in matrix, written once here and copied into an
exported model.py as it is (torch and math only):

- ``lowrank`` (``LowRankLinear``): W = U V, V (rank, d_in) then U (d_out, rank);
  1 ≤ rank ≤ min(d_in, d_out).
- ``circulant`` (``CirculantLinear``): W tiled with c×c circulant blocks,
  c = min(d_in, d_out), each block one stored vector of c values, applied by
  FFT in O(c log c). A width that c does not divide is padded: the input with
  zeros to the next multiple of c, the output cut back to d_out (so one of the
  two sides is a single block and W holds ⌈max/c⌉ vectors).
- ``monarch`` (``MonarchLinear``): W = L P R, R and L block-diagonal with
  ``blocks`` blocks each and P a fixed permutation (a transpose) between them
  (Dao et al., "Monarch", 2022); ``blocks`` must divide d_in and d_out, no padding.

``StructuredPair`` is the block's ``W2 act(W1 ·)`` with the two layers in one of
these forms (the dense form stays ``HourglassBlock``'s own pair). Each module
reports its cost (``nas_cost``, the rules of ``nas.spaces.cost``): every stored
value is read once; a factored layer (lowrank, monarch) is two layers in a row,
each reading its input and writing its output once (the rank-wide or m-wide
middle vector is written and read back); a circulant layer reads its input and
writes its output once (its FFTs run on that one vector, like a fused norm).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.spaces.base import WEIGHTS, Cost, Linear, cost_of


class LowRankLinear(nn.Module):
    """y = x Vᵀ Uᵀ: the rank-``rank`` matrix W = U V, (…, d_in) -> (…, rank) -> (…, d_out), no biases.

    ``v`` (rank, d_in) and ``u`` (d_out, rank) are two bias-free ``Linear``
    layers with PyTorch's default initialisation; 1 ≤ rank ≤ min(d_in, d_out)
    (a larger rank stores more than the dense matrix and spans no more).
    rank·(d_in + d_out) parameters instead of d_in·d_out.
    """

    def __init__(self, d_in: int, d_out: int, rank: int):
        super().__init__()
        if not 1 <= rank <= min(d_in, d_out):
            raise ValueError(f"a low-rank {d_in} -> {d_out} layer needs 1 <= rank <= {min(d_in, d_out)} "
                             f"(the narrower width), not {rank}")
        self.v = Linear(d_in, rank)  # V (rank, d_in)
        self.u = Linear(rank, d_out)  # U (d_out, rank)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, d_in) -> (…, d_out)
        return self.u(self.v(x))  # (…, d_in) -> (…, rank) -> (…, d_out)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        return self.v.nas_cost(dtype_bytes) + self.u.nas_cost(dtype_bytes)


class CirculantLinear(nn.Module):
    """y = W x, W a grid of c×c circulant blocks, c = min(d_in, d_out), applied by FFT: (…, d_in) -> (…, d_out).

    The input is padded with zeros to p·c, p = ⌈d_in/c⌉, and cut into p
    vectors x_j of c; output block i (of q = ⌈d_out/c⌉) is
    y_i = Σ_j C(w_ij) x_j, C(w)[r, s] = w[(r − s) mod c] (a circular
    convolution: rfft(y_i) = Σ_j rfft(w_ij)·rfft(x_j)), and the q·c outputs
    are cut back to d_out. ``weight`` (q, p, c) holds the blocks' first
    columns w_ij: q·p·c parameters (one of q, p is 1), initialised
    U(−1/√(p·c), 1/√(p·c)) as a dense layer of fan-in p·c would be.
    Computed in at least float32 (torch.fft has no CPU bfloat16), returned in
    x's dtype.
    """

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.c = min(d_in, d_out)
        self.p, self.q = -(-d_in // self.c), -(-d_out // self.c)  # input and output blocks
        self.weight = nn.Parameter(torch.empty(self.q, self.p, self.c))  # w_ij (q, p, c)
        bound = 1 / math.sqrt(self.p * self.c)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, d_in) -> (…, d_out)
        dtype = torch.promote_types(x.dtype, torch.float32)
        lead = x.shape[:-1]
        blocks = F.pad(x.to(dtype), (0, self.p * self.c - self.d_in)).reshape(*lead, self.p, self.c)  # (…, p, c)
        xf = torch.fft.rfft(blocks, dim=-1)  # (…, p, c//2 + 1)
        wf = torch.fft.rfft(self.weight.to(dtype), dim=-1)  # (q, p, c//2 + 1)
        yf = torch.einsum("...pf,qpf->...qf", xf, wf)  # (…, q, c//2 + 1): Σ_j over the input blocks
        y = torch.fft.irfft(yf, n=self.c, dim=-1)  # (…, q, c)
        return y.reshape(*lead, self.q * self.c)[..., : self.d_out].to(x.dtype)  # (…, d_out)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        n = self.weight.numel()
        return Cost(params=n, weight_bytes=n * dtype_bytes, act_bytes=(self.d_in + self.d_out) * dtype_bytes)


class MonarchLinear(nn.Module):
    """y = L P R x: two block-diagonal factors with a fixed permutation between them, (…, d_in) -> (…, d_out).

    b = ``blocks`` divides d_in and d_out; m = min(d_in, d_out) is the middle
    width. R (b blocks of m/b × d_in/b) maps input chunk i to middle chunk i;
    P is the transpose of the middle vector seen as b × m/b (entry j of
    chunk i goes to position j·b + i), so each chunk L reads takes an equal
    share of every chunk R wrote; L (b blocks of d_out/b × m/b) maps middle
    chunk i to output chunk i. Every output depends on every input when
    b² ≤ m (the Monarch matrices of Dao et al. 2022 take b = √n); with a
    larger b each output sees only some input chunks. m·(d_in + d_out)/b
    parameters; each factor initialised as a dense layer of its blocks'
    fan-in would be.
    """

    def __init__(self, d_in: int, d_out: int, blocks: int):
        super().__init__()
        if blocks < 1 or d_in % blocks or d_out % blocks:
            raise ValueError(f"a monarch {d_in} -> {d_out} layer needs a number of blocks that divides both widths, "
                             f"not {blocks}")
        self.d_in, self.d_out, self.blocks = d_in, d_out, blocks
        self.m = min(d_in, d_out)
        self.r = nn.Parameter(torch.empty(blocks, self.m // blocks, d_in // blocks))  # R (b, m/b, d_in/b)
        self.l = nn.Parameter(torch.empty(blocks, d_out // blocks, self.m // blocks))  # L (b, d_out/b, m/b)
        nn.init.uniform_(self.r, -1 / math.sqrt(d_in // blocks), 1 / math.sqrt(d_in // blocks))
        nn.init.uniform_(self.l, -1 / math.sqrt(self.m // blocks), 1 / math.sqrt(self.m // blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, d_in) -> (…, d_out)
        lead, b = x.shape[:-1], self.blocks
        h = x.reshape(-1, b, self.d_in // b).transpose(0, 1)  # (b, N, d_in/b): chunk i of every sample
        h = torch.bmm(h, self.r.transpose(1, 2))  # (b, N, m/b): R's block i on chunk i
        h = h.permute(1, 2, 0).reshape(-1, self.m)  # (N, m): P, entry j of chunk i to position j·b + i
        h = h.reshape(-1, b, self.m // b).transpose(0, 1)  # (b, N, m/b)
        h = torch.bmm(h, self.l.transpose(1, 2))  # (b, N, d_out/b): L's block i on chunk i
        return h.transpose(0, 1).reshape(*lead, self.d_out)  # (…, d_out)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        n = self.r.numel() + self.l.numel()
        return Cost(params=n, weight_bytes=n * dtype_bytes,
                    act_bytes=(self.d_in + self.m) * dtype_bytes + (self.m + self.d_out) * dtype_bytes)


class StructuredPair(nn.Module):
    """W2 act(W1 x) with W1 (d_z -> d_h) and W2 (d_h -> d_z) in a structured form: (N, d_z) -> (N, d_z).

    The three modules are given, made in the order they run (the plan builds
    ``w1=LowRankLinear(D_Z, D_H, RANK), act=relu(D_H), w2=LowRankLinear(D_H, D_Z, RANK)``
    and the like): a block's ``ffn``, or an expert of a mixture of experts.
    """

    def __init__(self, w1: nn.Module, act: nn.Module, w2: nn.Module):
        super().__init__()
        self.w1, self.act, self.w2 = w1, act, w2

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_z)
        return self.w2(self.act(self.w1(x)))  # (N, d_z) -> (N, d_h) -> (N, d_z)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        return self.w1.nas_cost(dtype_bytes) + cost_of(self.act, dtype_bytes) + self.w2.nas_cost(dtype_bytes)


WEIGHTS.register("lowrank")(LowRankLinear)
WEIGHTS.register("circulant")(CirculantLinear)
WEIGHTS.register("monarch")(MonarchLinear)
