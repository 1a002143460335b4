"""Tasks, datasets, the training loop and the objectives. Never chooses what to try next.

The names below are imported on first use (PEP 562): ``nas.evaluators.names`` (what each stored objective
means) is read by ``nas show`` and the dashboard without importing torch.
"""

from __future__ import annotations

__all__ = ["CandidateFailed", "Evaluation", "Task", "evaluate", "load_task", "static_objectives"]

_HOME = {"Task": "datasets", "load_task": "datasets", "CandidateFailed": "train", "Evaluation": "train",
         "evaluate": "train", "static_objectives": "train"}


def __getattr__(name: str):
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(f"nas.evaluators.{_HOME[name]}"), name)
    raise AttributeError(f"module 'nas.evaluators' has no attribute {name!r}")
