"""The hashed lift's integer hash, shared by its PyTorch reference (``nas.kernels.lift``) and its Triton kernel
(``nas.kernels._lift_triton``): the constants and the seed's 32-bit key (the formula: ``nas.kernels.lift``)."""

from __future__ import annotations

MASK32 = 0xFFFFFFFF
ROW_MULT = 0x9E3779B9  # 2³²/φ, odd: i -> i·ROW_MULT is a bijection mod 2³²
COL_MULT = 0x85EBCA77  # murmur3's c2-like odd constant
SEED_SALT = 0x5BD1E995  # murmur2's m: seed 0 gets a non-zero key


def _fmix32_int(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK32
    return h ^ (h >> 16)


def seed_key(seed: int) -> int:
    """The 32-bit key of ``seed`` (any Python int): fmix32(low ^ fmix32(high ^ 0x5BD1E995))."""
    return _fmix32_int((seed & MASK32) ^ _fmix32_int(((seed >> 32) & MASK32) ^ SEED_SALT))
