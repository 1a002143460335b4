"""The frozen description of one candidate, ``ArchSpec`` and its ``TrainSpec``, each field declared once.

Every field of a space file's ``space:`` and ``train:`` sections is declared here, once, with ``key()``: its
type (the annotation), default, its one-line meaning, the values it takes (a registry of the vocabulary, a
tuple of names, or numeric bounds), when it is off (the candidate does not use it: left out of the
architecture id and, for a field added after the 2026-12-04 release, of the JSON, so earlier ids stay as
they were), what value it is normalised to then, and any other normalisation. Everything else reads these
declarations: the space file's checks (``nas.spaces.schema``), ``__post_init__``, ``used_params`` and the id,
``to_json``, the export's checks (``nas.exporter.source.check_spec``) and the documentation's key tables
(``docs/``). Adding a field is one ``key()`` here and the block code that reads it.

Torch-free: ``nas show`` and the dashboard read ArchSpecs without importing torch (a registry is named, and
resolved from ``nas.spaces.vocabulary`` only by those that check names).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable


def _digest(obj: dict[str, Any]) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SEEDED_LIFTS = ("fixed_random", "hadamard", "hashed")  # lifts whose matrix comes from lift_seed
WEIGHT_KEYS = {"lowrank": "rank", "monarch": "monarch_blocks"}  # form -> the int key it reads (its 3rd argument)
# the activations with learnable parameters: the ones ``activation_scope`` applies to (the others have none)
SCOPED_ACTIVATIONS = ("prelu", "swish", "rational", "pwl", "pwl_knots", "mix")
MIXER_LAYERS = ("nas", "samout")  # the layer around a token mixer: nas's pre-norm residual + block | SamOut's
HEADS = ("linear", "none", "w2")  # W_out: d_z -> d_out | none: the stream is the output | w2: the last block's W2
ACTIVATION_SCOPES = ("layer", "neuron")  # one parameter set per layer (shared by its units) | one per unit
HEADED_MIXERS = ("maxstate", "attention", "linear_attention")  # the mixers whose width is cut into heads
FPE_SPLITS = ("random", "feature", "groups")  # how an FPE neuron's inputs are dealt to its children
INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Key:
    """The declaration of one field (see the module docstring)."""

    meaning: str  # one line, for the documentation's key table
    registry: str | None = None  # the values: a registry of nas.spaces.vocabulary (ACTIVATIONS, LIFTS, ...)
    names: tuple = ()  # ... or these names
    low: float | None = None  # ... or a number in [low, high] (open at an end where low_open / high_open)
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    expected: str = ""  # what a space file is told is expected, where the bounds alone do not say it
    rule: Callable[[Any], str | None] | None = None  # a further check of one value: the problem, or None
    export: tuple[int, int] | None = None  # an int's [low, high] in an exported model.py (default [low, 2³¹−1])
    off: Callable[[Any], bool] | None = None  # the candidate does not use this field: out of its id
    normal: Callable[[Any], Any] | None = None  # the value it is set to while off (None: left as given)
    normal_when: Callable[[Any], bool] | None = None  # when to set ``normal``, where that is not ``off``
    fix: Callable[[Any, Any], Any] | None = None  # (spec, value) -> the value normalised, always applied
    later: bool = False  # added after the 2026-12-04 release: out of to_json too while off
    needs: str = ""  # the documentation's words for when it applies
    training_only: bool = False  # read by training alone: model.py never reads it
    in_space: bool = True  # a key of the space file (False: from the task)

    def check(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this field, or None: its ``rule`` where it has one (which then says
        everything), else its names and bounds."""
        if self.rule is not None:
            return self.rule(value)
        if self.names and value not in self.names:
            return f"unknown value {value!r}"
        below = self.low is not None and (value < self.low or (self.low_open and value == self.low))
        above = self.high is not None and (value > self.high or (self.high_open and value == self.high))
        if (below or above) and self.low is not None and self.high is not None:
            return f"must be in {self.interval()}"
        if below:
            return f"must be > {self.low:g}" if self.low_open else (
                f"must be at least {self.low:g}" if isinstance(self.low, int) else f"must be ≥ {self.low:g}")
        if above:
            return f"must be {'<' if self.high_open else '≤'} {self.high:g}"
        return None

    def interval(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"

    def expected_text(self, kind: str) -> str:
        """What a valid value is, in words: the declared words, the names, or the range."""
        if self.expected:
            return self.expected
        if self.names:
            return "one of " + ", ".join(self.names)
        what = {"int": "an integer", "float": "a number", "str": "a name"}[kind]
        if self.low is not None and self.high is not None:
            return f"{what} in {self.interval()}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '≥'} {self.low:g}"
        return what


def key(default: Any, meaning: str, **declared: Any) -> Any:
    """A dataclass field with its declaration (``Key``) in the field's metadata (``dataclasses.MISSING``: a field
    without a default)."""
    return dataclasses.field(default=default, metadata={"key": Key(meaning, **declared)})


def _float_if_int(spec: Any, value: Any) -> Any:
    return float(value) if type(value) is int else value  # 1 and 1.0: one value, one id


def _scope_rule(value: Any) -> str | None:
    return None if value in ACTIVATION_SCOPES else f"unknown activation_scope {value!r}"


@dataclass(frozen=True)
class ArchSpec:
    """The concrete architecture of one candidate; builds with ``nas.spaces.build``."""

    d_in: int = key(dataclasses.MISSING, "input features (from the task)", in_space=False)
    d_out: int = key(dataclasses.MISSING, "outputs: classes, or pixels of an image task (from the task)", in_space=False)
    lift: str = key("none", "the lift of the input to the residual stream's width d_z", registry="LIFTS")
    lift_width: int = key(
        0, "d_z, the width of the residual stream", low=1, needs="a lift other than none",
        off=lambda s: s.lift == "none", normal=lambda s: s.d_in)  # without a lift the stream is the input
    hidden_width: int = key(128, "d_h: the bottleneck (hourglass) or hidden width (conventional)", low=1)
    depth: int = key(2, "the number of residual blocks", low=1, export=(1, 10_000))
    activation: str = key("relu", "the activation of every block", registry="ACTIVATIONS")
    # a learnable activation's parameters: one set per layer | one per unit; ignored by those without parameters
    activation_scope: str = key(
        "layer", "a learnable activation's parameters: one set per layer, or one per unit", names=ACTIVATION_SCOPES,
        rule=_scope_rule, needs="a learnable activation", later=True,
        off=lambda s: s.activation not in SCOPED_ACTIVATIONS or s.activation_scope == "layer",
        normal=lambda s: "layer", normal_when=lambda s: s.activation not in SCOPED_ACTIVATIONS)
    norm: str = key("batchnorm", "the norm before each block's W1 (no affine parameters)", registry="NORMS")
    lift_seed: int = key(
        0, "the seed of a fixed random, Hadamard or hashed lift", low=0, export=(0, 2**63 - 1),
        needs="a seeded lift", off=lambda s: s.lift not in SEEDED_LIFTS, normal=lambda s: 0,
        normal_when=lambda s: s.lift == "none")
    # Fixed Parameter Expansion of every block's hidden layer (off at alpha 1)
    fpe_alpha: int = key(1, "FPE: children per hidden neuron (1: off)", low=1, export=(1, 1024),
                         off=lambda s: s.fpe_alpha == 1)
    fpe_split: str = key("random", "FPE: how a neuron's inputs are shared among its children", names=FPE_SPLITS,
                         rule=lambda v: None if v in FPE_SPLITS else f"unknown FPE split {v!r}", needs="fpe_alpha > 1",
                         off=lambda s: s.fpe_alpha == 1, normal=lambda s: "random")
    fpe_at: float = key(0.5, "FPE: the fraction of the epochs trained dense before the expansion", low=0.0, high=1.0,
                        high_open=True, expected="the fraction of the epochs trained dense, in [0, 1)",
                        needs="fpe_alpha > 1", training_only=True, off=lambda s: s.fpe_alpha == 1,
                        normal=lambda s: 0.5)
    # mixture-of-experts bottleneck (off at 1 expert)
    moe_experts: int = key(1, "experts per block (1: off)", low=1, export=(1, 1024), off=lambda s: s.moe_experts == 1)
    moe_top_k: int = key(
        1, "experts each sample uses (at most moe_experts)", low=1, needs="moe_experts > 1",
        off=lambda s: s.moe_experts == 1, normal=lambda s: 1,  # top-2 of one expert... is that one expert
        fix=lambda s, v: min(v, s.moe_experts) if type(v) is int and type(s.moe_experts) is int else v)
    # token mixing (off at none: the flat path)
    mixer: str = key("none", "the token mixer (none: the flat MLP)", registry="MIXERS", off=lambda s: s.mixer == "none")
    mixer_kernel: int = key(
        3, "the conv mixer's kernel size over the tokens (odd)", needs="mixer conv", later=True,
        rule=lambda v: None if v >= 1 and v % 2 else "must be odd and at least 1 ('same' padding)",
        expected="an odd integer ≥ 1 (the conv mixer's kernel size)",
        off=lambda s: s.mixer != "conv", normal=lambda s: 3)
    mixer_heads: int = key(
        0, "the heads of a mixer with heads (attention, linear_attention, maxstate); 0: d_z/64 where 64 divides d_z, "
        "else 4 where 4 does, else 1", low=0, export=(0, INT_MAX), needs="a mixer with heads", later=True,
        off=lambda s: s.mixer not in HEADED_MIXERS or s.mixer_heads == 0, normal=lambda s: 0)
    mixer_layer: str = key(
        "nas", "the layer around the mixer: nas (h + mixer(norm(h)), then nas's block) or samout (SamOut's: "
        "LayerNorm(α·FFN(mixer(h)) + (1 − α)·h), FFN the gated W2(W1 m ⊙ relu(W_g m)) of width d_h, α learned from "
        "0.5)", names=MIXER_LAYERS, needs="a mixer", later=True,
        off=lambda s: s.mixer == "none" or s.mixer_layer == "nas", normal=lambda s: "nas")
    patch: int = key(0, "features per token (0: an image's rows, a sequence's steps)", low=0, export=(0, INT_MAX),
                     needs="a mixer", off=lambda s: s.mixer == "none", normal=lambda s: 0)
    in_shape: tuple = key((), "the shape of one input sample (from the task)", in_space=False,
                          off=lambda s: s.mixer == "none", normal=lambda s: (),
                          fix=lambda s, v: tuple(int(x) for x in v))
    # the form of every block's W1 and W2 (off at dense): a WEIGHTS name, and the int key of that form
    weights: str = key("dense", "the form of every block's W1 and W2", registry="WEIGHTS", later=True,
                       off=lambda s: s.weights == "dense")
    rank: int = key(16, "the rank of a lowrank W1 and W2", low=1, needs="weights lowrank", later=True,
                    off=lambda s: s.weights != "lowrank", normal=lambda s: 16)
    monarch_blocks: int = key(4, "the blocks of each monarch factor (dividing d_z and d_h)", low=1, later=True,
                              needs="weights monarch", off=lambda s: s.weights != "monarch", normal=lambda s: 4)
    # early exit (off at 0): a classifier head after every k-th block (blocks k, 2k, ... before the last)
    exits: int = key(
        0, "early exit: a head after every k-th block before the last (0: none)", low=0, export=(0, 10_000),
        later=True, off=lambda s: s.exits == 0,  # k ≥ depth: no block before the last is a k-th one
        fix=lambda s, v: 0 if type(v) is int and type(s.depth) is int and v >= s.depth else v)
    exit_threshold: float = key(
        0.9, "the top softmax probability at which a sample leaves at an exit head", low=0.0, high=1.0, low_open=True,
        expected="a top softmax probability in (0, 1] (1: only a certain sample leaves early)", needs="exits > 0",
        later=True, off=lambda s: s.exits == 0, normal=lambda s: 0.9, fix=_float_if_int)
    # how the blocks read the stream (off at residual: each block the one before it alone); gated_dense: every
    # earlier stream through a learned gate (nas.spaces.blocks.DenseGates)
    connections: str = key(
        "residual", "how the blocks read the stream", registry="CONNECTIONS", later=True,
        off=lambda s: s.connections == "residual",  # one block reads no earlier stream: no gates
        fix=lambda s, v: "residual" if type(s.depth) is int and s.depth <= 1 else v)
    gate_penalty: float = key(
        1e-3, "gated_dense: λ of the L1 penalty λ·Σ|g| on the gates in the training loss", low=0.0,
        expected="a weight ≥ 0 of the L1 penalty on the gates (0: none)", needs="connections gated_dense",
        later=True, training_only=True, off=lambda s: s.connections == "residual", normal=lambda s: 1e-3,
        fix=_float_if_int)

    # the output head (off at linear): none reads the residual stream as the output, the hourglass paper's
    # conventional baseline without W_in and W_out (d_z = d_out: an image task without a lift); w2 makes the last
    # block the output layer, the FPE paper's one-hidden-layer network at depth 1 without a lift
    head: str = key(
        "linear", "the output head: linear (W_out, d_z → d_out); none (the residual stream is the output; needs "
        "d_z = d_out, no mixer, no exits); w2 (the last block is the output layer: no skip, W2 maps d_h → d_out, "
        "with hidden and output biases; the flat MLP without experts, structured weights, gates or exits)",
        names=HEADS, later=True, off=lambda s: s.head == "linear")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # in declaration order: a field's normalisation reads earlier ones
            k = f.metadata["key"]
            if k.fix is not None:
                object.__setattr__(self, f.name, k.fix(self, getattr(self, f.name)))
            when = k.normal_when or k.off
            if k.normal is not None and when(self):
                object.__setattr__(self, f.name, k.normal(self))

    @property
    def d_z(self) -> int:
        return self.lift_width

    def used_params(self) -> dict[str, Any]:
        """The parameters that shape this model (inactive ones left out): what the architecture id hashes."""
        out = dataclasses.asdict(self)
        for name, k in KEYS.items():
            if k.off is not None and k.off(self):
                del out[name]
        if "in_shape" in out:
            out["in_shape"] = list(self.in_shape)
        return out

    @property
    def arch_id(self) -> str:
        """A stable hash of the parameters actually used: equal models, equal ids."""
        return _digest(self.used_params())

    def to_json(self) -> dict[str, Any]:
        """Every field, less those added since the 2026-12-04 release that are off (``Key.later``)."""
        out = dataclasses.asdict(self)
        out["in_shape"] = list(self.in_shape)
        for name, k in KEYS.items():
            if k.later and k.off(self):
                del out[name]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ArchSpec":
        unknown = set(data) - set(KEYS)
        if unknown:
            raise ValueError(f"unknown ArchSpec fields: {', '.join(sorted(unknown))}")
        return cls(**data)


KEYS: dict[str, Key] = {f.name: f.metadata["key"] for f in dataclasses.fields(ArchSpec)}  # every field's declaration
LATER_FIELDS = {name: k.off for name, k in KEYS.items() if k.later}  # each with when it is off
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ArchSpec)}


@dataclass(frozen=True)
class TrainSpec:
    """How a candidate is trained; part of what makes two evaluations the same."""

    epochs: int = key(10, "epochs; the validation score after each picks the best checkpoint", low=1)
    batch_size: int = key(64, "samples per step", low=1)
    lr: float = key(1e-3, "AdamW's learning rate, decayed linearly to 0", low=0.0, low_open=True,
                    rule=lambda v: None if v > 0 else "must be positive", expected="a positive number")
    weight_decay: float = key(0.01, "AdamW's weight decay", low=0.0, rule=lambda v: None if v >= 0 else
                              "must not be negative", expected="a number ≥ 0")
    seed: int = key(0, "initialisation and batch order (the data split has its own seed)", low=0)
    timeout_s: float = key(0.0, "seconds after which a candidate still training is stopped and failed (0: no limit)",
                           low=0.0, rule=lambda v: None if v >= 0 else "must not be negative",
                           expected="seconds ≥ 0 (0: no limit)")

    @property
    def train_key(self) -> str:
        """A hash of what shapes the result: a time limit does not (it only stops the training), nor a field
        that is off (``Key.off``: a setting added later keeps every earlier key as it was)."""
        settings = self.to_json()
        del settings["timeout_s"]
        return _digest(settings)

    def to_json(self) -> dict[str, Any]:
        """Every field, less those declared ``later`` that are off."""
        out = dataclasses.asdict(self)
        for name, k in TRAIN_KEYS.items():
            if k.later and k.off(self):
                del out[name]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainSpec":
        return cls(**data)


TRAIN_KEYS: dict[str, Key] = {f.name: f.metadata["key"] for f in dataclasses.fields(TrainSpec)}
SPACE_DEFAULTS = {name: _DEFAULTS[name] for name, k in KEYS.items() if k.in_space}
TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainSpec)}
