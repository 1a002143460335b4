"""The seeded random lift generated on the fly: y = x Rᵀ, R hashed from (seed, row, column).

R (d_z, d_in) = S / √d_in with S[i, j] ∈ {+1, −1} (Rademacher entries, so
every entry has mean 0 and variance exactly 1/d_in). S is a pure function
of the seed and the position, computed with 32-bit unsigned arithmetic
(all products and sums mod 2³²)::

    fmix32(h) = murmur3's finaliser: h ^= h >> 16; h *= 0x85EBCA6B; h ^= h >> 13; h *= 0xC2B2AE35; h ^= h >> 16
    key       = fmix32((seed mod 2³²) ^ fmix32((⌊seed / 2³²⌋ mod 2³²) ^ 0x5BD1E995))   # any Python int seed
    row(i)    = fmix32(key ^ (i · 0x9E3779B9))
    S[i, j]   = +1 if fmix32(row(i) ^ (j · 0x85EBCA77)) < 2³¹ else −1       # the top bit is the sign

The Triton kernel evaluates this in ``uint32`` inside the product, tile by
tile, and never writes R; the reference (``hashed_signs``) evaluates the same
formula in ``int64`` tensors, so both see bit-identical R.

y = (x Sᵀ) · (1/√d_in) is accumulated in float32 and returned in x's dtype;
the backward pass is grad_x = (grad_y S) · (1/√d_in); R has no gradient.
"""

from __future__ import annotations

import math

import torch

from nas.kernels import backend
from nas.kernels.hashing import COL_MULT, MASK32, ROW_MULT, seed_key  # noqa: F401 (seed_key: re-exported)

CHUNK = 1 << 20  # entries of S the reference materialises at once


def _mul32(a: torch.Tensor, c: int) -> torch.Tensor:
    """a · c mod 2³² for int64 ``a`` in [0, 2³²) and a constant c < 2³², without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (a * lo + (((a * hi) & 0xFFFF) << 16)) & MASK32


def _fmix32(h: torch.Tensor) -> torch.Tensor:
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def hashed_signs(seed: int, rows: range, d_in: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """S[rows, :]: (len(rows), d_in) float32 of ±1, exactly the kernel's (the module's docstring).

    Hashed ``CHUNK`` entries at a time (the int64 intermediates are 8 bytes an entry).
    """
    j = _mul32(torch.arange(d_in, dtype=torch.int64, device=device), COL_MULT)  # (d_in,)
    key, step, parts = seed_key(seed), max(1, CHUNK // max(d_in, 1)), []
    for start in range(rows.start, rows.stop, step):
        i = torch.arange(start, min(start + step, rows.stop), dtype=torch.int64, device=device)
        row = _fmix32(key ^ _mul32(i, ROW_MULT))  # (n,)
        h = _fmix32(row[:, None] ^ j[None, :])  # (n, d_in)
        parts.append(1.0 - 2.0 * (h >> 31).to(torch.float32))
    return torch.cat(parts) if parts else torch.empty(0, d_in, device=device)


def hashed_matrix(seed: int, d_z: int, d_in: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """R = S · (1/√d_in): (d_z, d_in) float32, the matrix the kernel never stores (the same rounding)."""
    return hashed_signs(seed, range(d_z), d_in, device) * (1 / math.sqrt(d_in))


def hashed_lift_reference(x: torch.Tensor, seed: int, d_z: int, signs: torch.Tensor | None = None) -> torch.Tensor:
    """y = (x Sᵀ)/√d_in in PyTorch: x (…, d_in) -> (…, d_z), float32 inside, x's dtype out.

    ``signs``: S (d_z, d_in) float32 on x's device, when the caller keeps it
    (``nas.spaces.lifts.HashedLift`` does, to hash once); otherwise it is
    hashed here. Differentiable in x by autograd; S is a constant.
    """
    d_in = x.shape[-1]
    if signs is None:
        signs = hashed_signs(seed, range(d_z), d_in, x.device)
    y = x.reshape(-1, d_in).float() @ signs.t()  # (M, d_z)
    return (y * (1 / math.sqrt(d_in))).to(x.dtype).reshape(*x.shape[:-1], d_z)


def hashed_lift(x: torch.Tensor, seed: int, d_z: int) -> torch.Tensor:
    """y = x Rᵀ, R = S/√d_in hashed from ``seed``: x (…, d_in) float32/float16/bfloat16 -> (…, d_z), x's dtype.

    The Triton kernel (R generated on the fly) where ``nas.kernels.backend``
    says so, else ``hashed_lift_reference``.
    """
    if backend(x) == "triton":
        from nas.kernels._lift_triton import HashedLiftFunction

        return HashedLiftFunction.apply(x, seed, d_z)
    return hashed_lift_reference(x, seed, d_z)
