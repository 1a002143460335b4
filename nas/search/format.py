"""Readable units for counts and bytes (tables, the progress line, the dashboard)."""

from __future__ import annotations


def human_count(n: float) -> str:
    """1234 -> '1.23k', 2_500_000 -> '2.5M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def human_bytes(n: float) -> str:
    """Decimal units: 1500 -> '1.5 KB', 3_200_000 -> '3.2 MB'."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def describe_arch(arch: dict) -> str:
    """One line per candidate, e.g. 'maxstate/p4 learned 64 | 32×2 gelu layernorm · moe 4 top-2 · fpe α2 random'.

    ``arch`` is an ArchSpec's JSON or the sampled values of a space file (missing keys: the defaults).
    """
    lift = arch.get("lift", "none")
    head = f"{lift} {arch.get('lift_width', '?')}" if lift != "none" else "conventional"
    mixer = arch.get("mixer", "none")
    if mixer != "none":
        head = f"{mixer}/p{arch.get('patch', 0)} " + (head if lift != "none" else "tokens")
    text = (f"{head} | {arch.get('hidden_width', '?')}×{arch.get('depth', '?')} "
            f"{arch.get('activation', 'relu')} {arch.get('norm', 'batchnorm')}")
    if int(arch.get("moe_experts", 1)) > 1:
        text += f" · moe {arch['moe_experts']} top-{min(int(arch.get('moe_top_k', 1)), int(arch['moe_experts']))}"
    if int(arch.get("fpe_alpha", 1)) > 1:
        text += f" · fpe α{arch['fpe_alpha']} {arch.get('fpe_split', 'random')}"
    return text
