"""Structured lifts (registered in ``LIFTS``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.kernels import backend
from nas.kernels.lift import hashed_lift, hashed_lift_reference, hashed_signs
from nas.spaces.base import LIFTS, Cost


def fwht(x: torch.Tensor) -> torch.Tensor:
    """The unnormalised fast Walsh–Hadamard transform over the last axis: (…, n) -> (…, n), n a power of two.

    y = x H_n with H_1 = [1], H_2n = [[H_n, H_n], [H_n, −H_n]] (Sylvester's
    order; H_n is symmetric, so also y = H_n x). log2(n) butterfly stages of
    n additions each: O(n log n) instead of the O(n²) product.
    """
    shape, n = x.shape, x.shape[-1]
    if n & (n - 1):
        raise ValueError(f"fwht needs a power-of-two length, not {n}")
    h = 1
    while h < n:
        pairs = x.reshape(-1, n // (2 * h), 2, h)  # (M, blocks, 2, h): entries i and i + h of each block of 2h
        a, b = pairs[:, :, 0], pairs[:, :, 1]
        x = torch.stack((a + b, a - b), dim=2)
        h *= 2
    return x.reshape(shape)


class HadamardLift(nn.Module):
    """z = (1/√d_in) · S H_n D pad(x): a seeded structured random lift, (…, d_in) -> (…, d_z).

    n = the next power of two ≥ max(d_in, d_z); pad(x) appends n − d_in zeros;
    D = diag of n random signs ±1; H_n the Walsh–Hadamard matrix (``fwht``);
    S keeps a random subset of d_z of the n coordinates. Each output is
    Σ_i ±x_i / √d_in, so, like the ``fixed_random`` lift's N(0, 1/d_in)
    rows, it has variance ‖x‖²/d_in over the random signs, and
    E‖z‖² = (d_z/d_in)·‖x‖² (exactly that when d_z = n).

    The signs and the subset are non-persistent buffers regenerated from
    ``seed`` with a CPU ``torch.Generator``: no stored matrix, no weight
    bytes, O(n log n) work. Computed in float32, returned in x's dtype.
    """

    def __init__(self, d_in: int, d_z: int, seed: int):
        super().__init__()
        self.d_in, self.d_z, self.seed = d_in, d_z, seed
        self.n = 1 << (max(d_in, d_z) - 1).bit_length()
        self.scale = 1 / math.sqrt(d_in)
        self.register_buffer("signs", torch.empty(self.n), persistent=False)  # (n,) ±1
        self.register_buffer("keep", torch.empty(d_z, dtype=torch.long), persistent=False)  # (d_z,) indices
        self.regenerate()

    @torch.no_grad()
    def regenerate(self) -> None:
        if self.signs.device.type == "meta":
            return
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        signs = torch.randint(0, 2, (self.n,), generator=gen, device="cpu") * 2 - 1
        keep = torch.randperm(self.n, generator=gen, device="cpu")[: self.d_z].sort().values
        self.signs.copy_(signs)
        self.keep.copy_(keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, d_in) -> (…, d_z)
        padded = F.pad(x.float(), (0, self.n - self.d_in)) * self.signs.float()  # (…, n)
        return (fwht(padded).index_select(-1, self.keep) * self.scale).to(x.dtype)  # (…, d_z)

    def nas_cost(self, dtype_bytes: int) -> Cost:
        return Cost(act_bytes=(self.d_in + self.d_z) * dtype_bytes)


LIFTS.register("hadamard")(HadamardLift)


class HashedLift(nn.Module):
    """z = x Rᵀ, R = S/√d_in with ±1 entries hashed from (seed, row, column): (…, d_in) -> (…, d_z).

    Like ``fixed_random`` a seeded, untrained random projection (entries of
    mean 0 and variance 1/d_in, Rademacher instead of Gaussian), but R is a
    counter-based hash (``nas.kernels.lift``) rather than a torch.Generator
    stream, so a kernel can compute any entry where it needs it. Here S is
    hashed once, at construction, into a non-persistent buffer (outside the
    state dict) and the product runs in PyTorch; nas's ``NasHashedLift``
    runs the Triton kernel on CUDA instead, which hashes R inside the product
    and never reads S. No parameters, no weight bytes.
    """

    def __init__(self, d_in: int, d_z: int, seed: int):
        super().__init__()
        self.d_in, self.d_z, self.seed = d_in, d_z, seed
        self.register_buffer("signs", torch.empty(d_z, d_in), persistent=False)  # S (d_z, d_in), ±1
        if self.signs.device.type != "meta":
            self.signs.copy_(hashed_signs(seed, range(d_z), d_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, d_in) -> (…, d_z)
        return hashed_lift_reference(x, self.seed, self.d_z, self.signs.float())

    def nas_cost(self, dtype_bytes: int) -> Cost:
        return Cost(act_bytes=(self.d_in + self.d_z) * dtype_bytes)


class NasHashedLift(HashedLift):
    """nas's hashed lift: the Triton kernel (R hashed inside the product) where ``nas.kernels.backend`` says so."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, d_in) -> (…, d_z)
        if backend(x) == "triton":
            return hashed_lift(x, self.seed, self.d_z)
        return super().forward(x)


LIFTS.register("hashed")(NasHashedLift)
