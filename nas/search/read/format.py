"""Readable units for counts and bytes (tables, the progress line, the dashboard); an architecture in one line
is ``nas.spaces.stages.summary``."""

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
