"""The Optuna study, dispatch to Ray Tune workers, the SQL store, resume.

Adapts Optuna and Ray; knows nothing of how a block is built. The names below
are imported on first use (PEP 562), so ``nas ls`` and ``nas show``, which need
only the store, do not pay for importing torch and Ray.
"""

from __future__ import annotations

__all__ = ["NasRunFailed", "RunOptions", "RunSummary", "run"]


def __getattr__(name: str):
    if name in __all__:
        from nas.search.execution import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'nas.search' has no attribute {name!r}")
