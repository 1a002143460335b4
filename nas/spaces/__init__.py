"""Search spaces: the YAML schema, the block vocabulary and the builder.

Knows nothing of Optuna, Ray or SQL. ``ArchSpec``, ``TrainSpec`` and
``nas.spaces.stages`` (what an architecture is made of, in words too) import
without torch; the rest loads on first use (PEP 562), so that ``nas show``
describes its candidates without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from nas.spaces.arch import ArchSpec, TrainSpec

_LAZY = {  # name -> the module that defines it
    **dict.fromkeys(("ACTIVATIONS", "LIFTS", "NORMS", "WEIGHTS"), "nas.spaces.vocabulary"),  # complete registries
    **dict.fromkeys(("Cost", "HourglassMLP"), "nas.spaces.blocks"),
    "build": "nas.spaces.builder",
    **dict.fromkeys(("bandwidth_bytes", "bandwidth_floor", "exit_costs", "expected_bandwidth", "expected_bytes", "kept_cost",
                      "model_cost"), "nas.spaces.cost"),
    **dict.fromkeys(("Param", "SearchSpace", "Suggest", "load_space", "parse_space"), "nas.spaces.schema"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'nas.spaces' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = ["ArchSpec", "TrainSpec", *_LAZY]
