"""Search spaces: the YAML schema, the block vocabulary and the builder.

Knows nothing of Optuna, Ray or SQL.
"""

from nas.spaces.arch import ArchSpec, TrainSpec
from nas.spaces.blocks import ACTIVATIONS, LIFTS, NORMS, Cost, HourglassMLP
from nas.spaces.builder import build
from nas.spaces.cost import bandwidth_bytes, model_cost
from nas.spaces.schema import Param, SearchSpace, Suggest, load_space, parse_space

__all__ = [
    "ACTIVATIONS",
    "LIFTS",
    "NORMS",
    "ArchSpec",
    "Cost",
    "HourglassMLP",
    "Param",
    "SearchSpace",
    "Suggest",
    "TrainSpec",
    "bandwidth_bytes",
    "build",
    "load_space",
    "model_cost",
    "parse_space",
]
