"""The frozen description of one candidate: ``ArchSpec`` and its ``TrainSpec``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any


def _digest(obj: dict[str, Any]) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SEEDED_LIFTS = ("fixed_random", "hadamard", "hashed")  # lifts whose matrix comes from lift_seed
WEIGHT_KEYS = {"lowrank": "rank", "monarch": "monarch_blocks"}  # form -> the int key it reads (its 3rd argument)
# the activations with learnable parameters: the ones ``activation_scope`` applies to (the others have none)
SCOPED_ACTIVATIONS = ("prelu", "swish", "rational", "pwl", "pwl_knots", "mix")
ACTIVATION_SCOPES = ("layer", "neuron")  # one parameter set per layer (shared by its units) | one per unit
# fields added after the 2026-12-04 release, each with when it is off: an off field is left out of the id
# (used_params) and of to_json, so stored candidates and exported models of earlier architectures keep their
# ids and JSON (from_json gives a missing field its default)
LATER_FIELDS = {
    "mixer_kernel": lambda spec: spec.mixer != "conv",
    "weights": lambda spec: spec.weights == "dense",
    "rank": lambda spec: spec.weights != "lowrank",
    "monarch_blocks": lambda spec: spec.weights != "monarch",
    "exits": lambda spec: spec.exits == 0,
    "exit_threshold": lambda spec: spec.exits == 0,
    "activation_scope": lambda spec: spec.activation_scope == "layer",
    "connections": lambda spec: spec.connections == "residual",
    "gate_penalty": lambda spec: spec.connections == "residual",
}


@dataclass(frozen=True)
class ArchSpec:
    """The concrete architecture of one candidate; builds with ``nas.spaces.build``."""

    d_in: int  # input features (from the task)
    d_out: int  # outputs: classes (from the task)
    lift: str = "none"  # a LIFTS name: fixed_random | hadamard | hashed | learned | none (none: d_z = d_in)
    lift_width: int = 0  # d_z, the width of the residual stream; ignored when lift is none
    hidden_width: int = 128  # d_h, the bottleneck (hourglass) or hidden width (conventional)
    depth: int = 2  # L, the number of residual blocks
    activation: str = "relu"
    # a learnable activation's parameters: one set per layer | one per unit; ignored by those without parameters
    activation_scope: str = "layer"  # layer | neuron
    norm: str = "batchnorm"  # batchnorm (no affine) | layernorm (no affine) | none
    lift_seed: int = 0  # seed of a fixed random or structured lift
    # Fixed Parameter Expansion of every block's hidden layer (off at alpha 1)
    fpe_alpha: int = 1  # children per hidden neuron
    fpe_split: str = "random"  # random | feature | groups (nas.spaces.fpe.SPLITS)
    fpe_at: float = 0.5  # the fraction of the epochs trained dense before the expansion
    # mixture-of-experts bottleneck (off at 1 expert)
    moe_experts: int = 1
    moe_top_k: int = 1  # experts each sample uses (at most moe_experts)
    # token mixing (off at none: the flat path)
    mixer: str = "none"  # none | token_mlp | maxstate | attention | linear_attention | conv
    mixer_kernel: int = 3  # the conv mixer's kernel size over the tokens (odd); ignored by the other mixers
    patch: int = 0  # features per token: P×P patches of an image, P consecutive features of a vector; 0: given tokens
    in_shape: tuple = ()  # the shape of one input sample (from the task), e.g. (28, 28) or (seq, features)
    # the form of every block's W1 and W2 (off at dense): a WEIGHTS name, and the int key of that form
    weights: str = "dense"  # dense | lowrank | circulant | monarch
    rank: int = 16  # lowrank: W = U V, U (d_out, rank), V (rank, d_in)
    monarch_blocks: int = 4  # monarch: blocks of each block-diagonal factor (dividing d_z and d_h)
    # early exit (off at 0): a classifier head after every k-th block (blocks k, 2k, ... before the last)
    exits: int = 0  # k; 0 (or k ≥ depth: no block before the last is a k-th one): no exit heads
    exit_threshold: float = 0.9  # a sample leaves at the first head whose top softmax probability reaches it
    # how the blocks read the stream (off at residual: each block the one before it alone); gated_dense: every
    # earlier stream through a learned gate (nas.spaces.blocks.DenseGates)
    connections: str = "residual"  # residual | gated_dense
    gate_penalty: float = 1e-3  # gated_dense: λ of the L1 penalty λ·Σ|g| on the gates in the training loss

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(s) for s in self.in_shape))
        if self.lift == "none":  # the lift's own settings are unused: normalise them away
            object.__setattr__(self, "lift_width", self.d_in)
            object.__setattr__(self, "lift_seed", 0)
        if self.fpe_alpha == 1:
            object.__setattr__(self, "fpe_split", "random")
            object.__setattr__(self, "fpe_at", 0.5)
        if self.moe_experts == 1:
            object.__setattr__(self, "moe_top_k", 1)
        elif self.moe_top_k > self.moe_experts:  # top-2 of one expert... is that one expert
            object.__setattr__(self, "moe_top_k", self.moe_experts)
        if self.mixer == "none":
            object.__setattr__(self, "patch", 0)
            object.__setattr__(self, "in_shape", ())
        if self.mixer != "conv":
            object.__setattr__(self, "mixer_kernel", 3)
        if self.activation not in SCOPED_ACTIVATIONS:  # relu, gelu, silu, tanh: nothing to scope
            object.__setattr__(self, "activation_scope", "layer")
        for form, key in WEIGHT_KEYS.items():  # a form's key is unused under the other forms
            if self.weights != form:
                object.__setattr__(self, key, _DEFAULTS[key])
        if type(self.exits) is int and type(self.depth) is int and self.exits >= self.depth:
            object.__setattr__(self, "exits", 0)  # every k-th block before the last: none
        if type(self.depth) is int and self.depth <= 1:  # one block reads no earlier stream: no gates
            object.__setattr__(self, "connections", "residual")
        if self.connections == "residual":
            object.__setattr__(self, "gate_penalty", _DEFAULTS["gate_penalty"])
        elif type(self.gate_penalty) is int:  # 0 and 0.0: one penalty, one id
            object.__setattr__(self, "gate_penalty", float(self.gate_penalty))
        if self.exits == 0:
            object.__setattr__(self, "exit_threshold", _DEFAULTS["exit_threshold"])
        elif type(self.exit_threshold) is int:  # 1 and 1.0: one threshold, one id
            object.__setattr__(self, "exit_threshold", float(self.exit_threshold))

    @property
    def d_z(self) -> int:
        return self.lift_width

    def used_params(self) -> dict[str, Any]:
        """The parameters that shape this model (inactive ones left out)."""
        out = dataclasses.asdict(self)
        if self.lift == "none":
            del out["lift_width"], out["lift_seed"]
        elif self.lift not in SEEDED_LIFTS:
            del out["lift_seed"]
        # features that are off leave no trace: ids of candidates without them stay as they were
        if self.fpe_alpha == 1:
            del out["fpe_alpha"], out["fpe_split"], out["fpe_at"]
        if self.moe_experts == 1:
            del out["moe_experts"], out["moe_top_k"]
        if self.mixer == "none":
            del out["mixer"], out["patch"], out["in_shape"]
        else:
            out["in_shape"] = list(self.in_shape)
        _drop_later_fields(self, out)
        return out

    @property
    def arch_id(self) -> str:
        """A stable hash of the parameters actually used: equal models, equal ids."""
        return _digest(self.used_params())

    def to_json(self) -> dict[str, Any]:
        """Every field, less those added since the 2026-12-04 release that are off (``LATER_FIELDS``)."""
        out = dataclasses.asdict(self)
        out["in_shape"] = list(self.in_shape)
        _drop_later_fields(self, out)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ArchSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown ArchSpec fields: {', '.join(sorted(unknown))}")
        return cls(**data)


def _drop_later_fields(spec: ArchSpec, out: dict[str, Any]) -> None:
    """Leave out of ``out`` the fields of ``LATER_FIELDS`` that are off in ``spec``."""
    for name, off in LATER_FIELDS.items():
        if off(spec):
            del out[name]


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ArchSpec)}


@dataclass(frozen=True)
class TrainSpec:
    """How a candidate is trained; part of what makes two evaluations the same."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0  # model initialisation and batch order (the data split has its own seed)
    timeout_s: float = 0.0  # stop and fail the candidate after this many seconds of training; 0: no limit

    @property
    def train_key(self) -> str:
        """A hash of what shapes the result (a time limit does not: it only stops the training)."""
        settings = dataclasses.asdict(self)
        del settings["timeout_s"]
        return _digest(settings)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainSpec":
        return cls(**data)


SPACE_DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(ArchSpec) if f.name not in ("d_in", "d_out", "in_shape")
}
TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainSpec)}
