"""The space file: its schema, its parameters and their conditions.

A space file is YAML (see README "Space-file reference"). Every error names
the file, the key path, the line, what was found and what was expected, and
is raised as ``NasInputError`` before anything else happens. Over 500 lines
as one module: the space file's whole language (parameter forms, conditions,
every key's check and message) is read and changed together.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from nas.errors import NasInputError
from nas.spaces import _yaml
from nas.spaces.arch import ACTIVATION_SCOPES, SCOPED_ACTIVATIONS, SPACE_DEFAULTS, TRAIN_DEFAULTS, ArchSpec, TrainSpec
from nas.spaces.vocabulary import ACTIVATIONS, CONNECTIONS, LIFTS, MIXERS, NORMS, WEIGHTS
from nas.spaces.fpe import SPLITS as FPE_SPLITS

Scalar = Union[StrictBool, StrictInt, StrictFloat, StrictStr]
Number = Union[StrictInt, StrictFloat]

IMAGE_KINDS = ("denoise", "superres", "generative_classification")  # scored by psnr
DATASETS = ("digits", "mnist5k", "sat")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SatConfig(_Strict):
    """A seeded Boolean DNF task (the FPE paper's setting): label = OR of clauses, each an AND of literals."""

    variables: int = Field(16, ge=2, le=4096)  # n
    clauses: int = Field(8, ge=1, le=4096)  # m
    literals: int = Field(3, ge=1, le=64)  # k per clause
    samples: int = Field(4000, ge=20, le=10_000_000)  # balanced: half true, half false
    seed: StrictInt = Field(0, ge=0)
    disjoint: StrictBool = False  # no two clauses share a variable (needs clauses × literals ≤ variables)


class TaskConfig(_Strict):
    dataset: StrictStr
    kind: Literal[("classification",) + IMAGE_KINDS] = "classification"  # the task kinds: IMAGE_KINDS and one
    sat: SatConfig | None = None  # options of dataset sat
    # the held-out splits (nas.evaluators.datasets.load_task): the test split, a share of all samples, scored for
    # the record only; the validation split, a share of what is left, which every selection reads
    test: Number = Field(0.15, gt=0, lt=1)
    validation: Number = Field(0.15, gt=0, lt=1)


class ConfirmConfig(_Strict):
    """``search.confirm``: after the search, train every front member again with this many seeds."""

    seeds: int = Field(5, ge=2)


# The samplers a space file may name; nas.search.execution.samplers maps each to its Optuna class (a test checks they agree).
SAMPLERS = ("nsga2", "nsga3", "tpe", "random", "gp", "qmc")


class SearchConfig(_Strict):
    sampler: Literal[SAMPLERS] = "tpe"  # with DEFAULT_PRUNING: the best of benchmarks/search_quality.py
    options: dict[StrictStr, Scalar] = Field(default_factory=dict)  # keyword arguments of the Optuna sampler
    trials: int = Field(20, ge=1)
    workers: int | None = Field(None, ge=1)  # None: 1, or 8 per GPU where Ray sees GPUs (nas.search.execution.dispatch)
    seed: StrictInt | None = None
    # the hypervolume's reference point, one value per objective; derived from the first candidates if absent
    reference: dict[StrictStr, Number] | None = None
    confirm: ConfirmConfig | None = None  # nas run ends with `nas confirm --front --seeds K` (nas.search.execution.confirm)


class PruningConfig(_Strict):
    """Multi-objective successive halving over epochs (see nas.search.execution.pruning)."""

    min_epochs: int = Field(1, ge=1)  # the first rung
    reduction_factor: int = Field(2, ge=2)  # η: rungs at min_epochs·η^k; the top 1/η of a rung always goes on


class Bound(_Strict):
    max: Number = Field(gt=0)  # the largest value a candidate may have


class Document(_Strict):
    name: StrictStr | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    task: TaskConfig
    objectives: dict[
        Literal["accuracy", "psnr", "params", "bandwidth", "bandwidth_expected", "bandwidth_kept", "latency_ms"],
        Literal["maximize", "minimize"]
    ] = (
        Field(default_factory=lambda: {"accuracy": "maximize", "params": "minimize", "bandwidth": "minimize"})
    )
    space: dict[StrictStr, Any]
    train: dict[StrictStr, Any] = Field(default_factory=dict)
    search: SearchConfig = Field(default_factory=SearchConfig)
    # limits on the objectives known before training: a candidate over one is recorded as infeasible, never trained
    constraints: dict[Literal["params", "bandwidth"], Bound] = Field(default_factory=dict)
    # early stopping of candidates dominated at a rung: absent, DEFAULT_PRUNING; false (or null), none
    pruning: PruningConfig | Literal[False] | None = None


# What a space file without a ``pruning`` key gets: rungs at epochs 1, 2, 4, 8, ... Until 2026-12-04 early stopping
# was off without the key; with tpe it reached random search's final hypervolume in a median 0.226 of random's
# training seconds over 20 seeds of the recorded table (benchmarks/results/search_quality.txt; README: pruning).
DEFAULT_PRUNING: PruningConfig | None = PruningConfig()


Condition = dict[StrictStr, Union[Scalar, list[Scalar]]]


class _IntForm(_Strict):
    range: list[StrictInt] = Field(alias="int", min_length=2, max_length=2)
    log: StrictBool = False
    step: StrictInt | None = Field(None, ge=1)
    when: Condition | None = None


class _FloatForm(_Strict):
    range: list[Number] = Field(alias="float", min_length=2, max_length=2)
    log: StrictBool = False
    step: Number | None = Field(None, gt=0)
    when: Condition | None = None


class _ChoiceForm(_Strict):
    choice: list[Scalar] = Field(min_length=1)
    when: Condition | None = None


class _FixedForm(_Strict):
    value: Scalar
    when: Condition | None = None


# --------------------------------------------------------------- the parameters
@dataclass(frozen=True)
class Param:
    """One labelled dimension of the space."""

    label: str
    section: str  # "space" or "train"
    kind: str  # "choice" | "int" | "float" | "fixed"
    choices: tuple = ()
    low: float = 0
    high: float = 0
    log: bool = False
    step: float | None = None
    value: Any = None
    when: dict[str, tuple] = field(default_factory=dict)

    def values(self) -> tuple | None:
        """The finite set of values this parameter can take, or None for a range."""
        if self.kind == "choice":
            return self.choices
        if self.kind == "fixed":
            return (self.value,)
        return None


class Suggest(Protocol):
    """What a search algorithm offers the space (an Optuna trial, adapted by nas.search)."""

    def categorical(self, label: str, choices: tuple) -> Any: ...
    def int(self, label: str, low: int, high: int, log: bool, step: int | None) -> int: ...
    def float(self, label: str, low: float, high: float, log: bool, step: float | None) -> float: ...


# what each known label means: (section, type, check(value) -> error or None, expected text)
def _in(registry):
    return (lambda v: None if v in registry else registry.unknown_message(v)), "one of " + ", ".join(registry)


def _int_at_least(lo):
    return (lambda v: None if v >= lo else f"must be at least {lo}"), f"an integer ≥ {lo}"


_KNOWN: dict[str, dict[str, tuple]] = {
    "space": {
        "lift": ("str", *_in(LIFTS)),
        "lift_width": ("int", *_int_at_least(1)),
        "hidden_width": ("int", *_int_at_least(1)),
        "depth": ("int", *_int_at_least(1)),
        "activation": ("str", *_in(ACTIVATIONS)),
        "activation_scope": ("str", lambda v: None if v in ACTIVATION_SCOPES else f"unknown activation_scope {v!r}",
                             "one of " + ", ".join(ACTIVATION_SCOPES)),
        "norm": ("str", *_in(NORMS)),
        "lift_seed": ("int", *_int_at_least(0)),
        "fpe_alpha": ("int", *_int_at_least(1)),
        "fpe_split": ("str", lambda v: None if v in FPE_SPLITS else f"unknown FPE split {v!r}",
                      "one of " + ", ".join(FPE_SPLITS)),
        "fpe_at": ("float", lambda v: None if 0 <= v < 1 else "must be in [0, 1)",
                   "the fraction of the epochs trained dense, in [0, 1)"),
        "moe_experts": ("int", *_int_at_least(1)),
        "moe_top_k": ("int", *_int_at_least(1)),
        "mixer": ("str", *_in(MIXERS)),
        "mixer_kernel": ("int", lambda v: None if v >= 1 and v % 2 else "must be odd and at least 1 ('same' padding)",
                         "an odd integer ≥ 1 (the conv mixer's kernel size)"),
        "patch": ("int", *_int_at_least(0)),
        "weights": ("str", *_in(WEIGHTS)),
        "rank": ("int", *_int_at_least(1)),
        "monarch_blocks": ("int", *_int_at_least(1)),
        "exits": ("int", *_int_at_least(0)),
        "exit_threshold": ("float", lambda v: None if 0 < v <= 1 else "must be in (0, 1]",
                           "a top softmax probability in (0, 1] (1: only a certain sample leaves early)"),
        "connections": ("str", *_in(CONNECTIONS)),
        "gate_penalty": ("float", lambda v: None if v >= 0 else "must be ≥ 0",
                         "a weight ≥ 0 of the L1 penalty on the gates (0: none)"),
    },
    "train": {
        "epochs": ("int", *_int_at_least(1)),
        "batch_size": ("int", *_int_at_least(1)),
        "lr": ("float", lambda v: None if v > 0 else "must be positive", "a positive number"),
        "weight_decay": ("float", lambda v: None if v >= 0 else "must not be negative", "a number ≥ 0"),
        "seed": ("int", *_int_at_least(0)),
        "timeout_s": ("float", lambda v: None if v >= 0 else "must not be negative", "seconds ≥ 0 (0: no limit)"),
    },
}


@dataclass
class SearchSpace:
    """A validated space file."""

    name: str
    file: str
    task: TaskConfig
    objectives: dict[str, str]
    params: list[Param]
    search: SearchConfig
    text: str  # the file as written, stored with the study
    constraints: dict[str, float] = field(default_factory=dict)  # metric -> max (params, bandwidth)
    lines: dict = field(default_factory=dict, repr=False)  # key path -> line in the file
    pruning: PruningConfig | None = None

    def check_task(self, d_in: int, in_shape: tuple, feature_groups=None) -> None:
        """NasInputError naming the place if a listed ``patch`` cannot cut this task's input into tokens, a
        listed ``rank`` or ``monarch_blocks`` fits no candidate's widths (``_check_weights``), or the ``groups``
        FPE split can be sampled and the task has no ``feature_groups``."""
        from nas.spaces.stages import token_grid

        labels = {p.label: p for p in self.params}
        self._check_weights(labels, d_in)
        split = labels.get("fpe_split")
        if split is not None and "groups" in (split.values() or ()):
            if feature_groups is None:
                raise NasInputError(
                    f"{self.place('space', 'fpe_split')}: the groups split needs the dataset's feature groups, and "
                    f"{self.task.dataset} supplies none; expected an npz array feature_groups of shape (features,) "
                    "(one group id per input feature, -1 for none), or dataset sat (its clauses)")
            if len(feature_groups) != d_in:
                raise NasInputError(
                    f"{self.place('space', 'fpe_split')}: the groups split needs one feature group per input of "
                    f"the {self.task.kind} task ({d_in}); {self.task.dataset} supplies {len(feature_groups)}")
        mixer = labels.get("mixer")
        if mixer is None or mixer.values() == ("none",):
            return
        patch = labels.get("patch")
        values = (0,) if patch is None else patch.values()
        if values is None:  # a range: candidates that do not fit are recorded as infeasible
            return
        errors = []
        for v in values:
            try:
                token_grid(tuple(in_shape), int(v), d_in)
            except ValueError as exc:
                errors.append(f"{self.place('space', 'patch')}: {exc}")
        if errors:
            raise NasInputError("\n".join(errors))

    def _check_weights(self, labels: dict[str, Param], d_in: int) -> None:
        """NasInputError where a listed ``rank`` or ``monarch_blocks`` fits no candidate's widths.

        A rank must be at most min(d_z, d_h), monarch blocks must divide d_z and
        d_h; a listed value (a choice, a fixed value, a range's high bound, or
        the default where the form can be sampled without its key) above the
        widest min(d_z, d_h) the space can have, or monarch blocks that divide
        none of its listed widths, can never be built. A value that fits some
        widths but not a sampled candidate's makes that candidate infeasible.
        """
        forms = _possible(labels, "weights")
        if forms == ("dense",):
            return
        lift_kinds, mixers = _possible(labels, "lift"), _possible(labels, "mixer")
        d_z_max, widths = 0, ()  # the widest d_z, and every d_z a candidate can have (None: not all listed)
        if any(v != "none" for v in lift_kinds):
            d_z_max, widths = _high(labels["lift_width"]), labels["lift_width"].values()
        if "none" in lift_kinds:  # d_z = d_in, or behind a mixer a token's features (at most d_in)
            d_z_max = max(d_z_max, d_in)
            widths = (*widths, d_in) if widths is not None and all(m == "none" for m in mixers) else None
        hidden = _possible(labels, "hidden_width")
        d_h_max = _high(labels["hidden_width"]) if hidden is None else max(hidden)
        narrow = min(d_z_max, d_h_max)
        errors = []
        for form, key in (("lowrank", "rank"), ("monarch", "monarch_blocks")):
            if form not in forms:
                continue
            param = labels.get(key)
            listed = (SPACE_DEFAULTS[key],) if param is None else param.values() or (int(param.high),)
            where = self.place("space", key) if param is not None else (
                f"{self.place('space', 'weights')} ({form} with the default {key} {SPACE_DEFAULTS[key]})")
            for v in listed:
                if v > narrow:
                    errors.append(f"{where}: {key} {v} is above min(d_z, hidden_width) of every candidate this space "
                                  f"can sample (at most {narrow}: d_z ≤ {d_z_max}, hidden_width ≤ {d_h_max}); "
                                  f"expected {key} ≤ {narrow}")
                elif key == "monarch_blocks" and widths is not None and hidden is not None and not (
                        any(w % v == 0 for w in widths) and any(h % v == 0 for h in hidden)):
                    errors.append(f"{where}: monarch_blocks {v} divides none of the widths it must divide: d_z "
                                  f"{sorted(set(widths))}, hidden_width {sorted(set(hidden))}; expected a divisor "
                                  "of a d_z and of a hidden_width")
        if errors:
            raise NasInputError("\n".join(errors))

    def place(self, *path) -> str:
        """``file:line: dotted.path`` of a key of the file, for an error found after loading."""
        where = tuple(path)
        while where not in self.lines and where:
            where = where[:-1]
        return f"{self.file}:{self.lines.get(where, 1)}: {_yaml._dotted(tuple(path))}"

    def violations(self, static: dict[str, float]) -> dict[str, float]:
        """How far ``static`` (params, bandwidth) lies over each constraint: value / max - 1 (≤ 0: satisfied)."""
        return {m: static[m] / limit - 1.0 for m, limit in self.constraints.items()}

    # ------------------------------------------------------------- sampling
    def sample(self, suggest: Suggest) -> dict[str, Any]:
        """Ask ``suggest`` for every active parameter, in file order.

        Returns the values of all active parameters (fixed ones included).
        A parameter is active when every label in its ``when`` is active and
        holds one of the listed values.
        """
        values: dict[str, Any] = {}
        for p in self.params:
            if not all(label in values and values[label] in allowed for label, allowed in p.when.items()):
                continue
            if p.kind == "fixed":
                values[p.label] = p.value
            elif p.kind == "choice":
                values[p.label] = suggest.categorical(p.label, p.choices)
            elif p.kind == "int":
                values[p.label] = suggest.int(p.label, int(p.low), int(p.high), p.log, p.step)
            else:
                values[p.label] = suggest.float(p.label, p.low, p.high, p.log, p.step)
        return values

    def grid(self) -> list[dict[str, Any]]:
        """Every point of a finite space: the values of its active parameters, as ``sample`` returns them, one
        dict per combination (in file order; an inactive parameter is left out, so no point repeats another).

        ValueError naming the first parameter that is a range (a finite space has only choices and fixed values).
        """
        ranges = [p.label for p in self.params if p.values() is None]
        if ranges:
            raise ValueError(f"{self.place('space', ranges[0])}: a range; the space's points can be listed only "
                             "when every parameter is a choice or fixed")
        points: list[dict[str, Any]] = [{}]
        for p in self.params:
            grown = []
            for values in points:
                if all(label in values and values[label] in allowed for label, allowed in p.when.items()):
                    grown.extend({**values, p.label: v} for v in p.values())
                else:
                    grown.append(values)
            points = grown
        return points

    def freeze(self, values: dict[str, Any], d_in: int, d_out: int, in_shape: tuple = ()) -> tuple[ArchSpec, TrainSpec]:
        """Turn the sampled ``values`` into the candidate's frozen specs."""
        sections = {p.label: p.section for p in self.params}
        arch = {k: v for k, v in values.items() if sections.get(k) == "space"}
        train = {k: v for k, v in values.items() if sections.get(k) == "train"}
        lift = arch.get("lift", SPACE_DEFAULTS["lift"])
        if lift != "none" and "lift_width" not in arch:
            raise NasInputError(
                f"{self.file}: space.lift_width: no value when lift is {lift!r}; "
                "widen its `when:` condition or give a lift_width for every lift"
            )
        arch_spec = ArchSpec(d_in=d_in, d_out=d_out, in_shape=tuple(in_shape), **arch)
        train_spec = TrainSpec(**{k: (float(v) if TRAIN_DEFAULTS[k].__class__ is float else v) for k, v in train.items()})
        return arch_spec, train_spec


# ------------------------------------------------------------------- loading
def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a space file; raise ``NasInputError`` naming the place of any error."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NasInputError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NasInputError(f"{file}: cannot read the space file: {exc}") from None
    return parse_space(text, file, base_dir=path.parent)


def parse_space(text: str, file: str = "<space>", base_dir: Path | None = None) -> SearchSpace:
    data, lines = _yaml.load(text, file)
    errors = _Errors(file, lines)
    if not isinstance(data, dict):
        errors.add((), "the space file must be a mapping with keys task, objectives, space, train, search",
                   found=data)
        errors.raise_if_any()
    try:
        doc = Document.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            errors.add_pydantic(err, prefix=())
        errors.raise_if_any()

    dataset = doc.task.dataset
    if dataset.startswith("npz:"):
        npz = Path(dataset[4:]).expanduser()
        if not npz.is_absolute() and base_dir is not None:
            npz = base_dir / npz
        if not npz.is_file():
            errors.add(("task", "dataset"), f"no such npz file: {npz}", found=dataset)
    elif dataset not in DATASETS:
        errors.add(("task", "dataset"), "unknown dataset", found=dataset,
                   expected="digits, mnist5k, sat or npz:PATH", choices=DATASETS)
    if not doc.objectives:
        errors.add(("objectives",), "at least one objective is needed", found={},
                   expected="e.g. {accuracy: maximize, params: minimize}")
    else:
        score = "psnr" if doc.task.kind in IMAGE_KINDS else "accuracy"
        other = "accuracy" if score == "psnr" else "psnr"
        if score not in doc.objectives:
            errors.add(("objectives",), f"{score} must be one of the objectives of a {doc.task.kind} task",
                       found=list(doc.objectives), expected=f"e.g. {{{score}: maximize, params: minimize}}")
        elif other in doc.objectives:
            errors.add(("objectives", other), f"a {doc.task.kind} task is not scored by {other}",
                       found=other, expected=score)
    ref = doc.search.reference
    if ref is not None and set(ref) != set(doc.objectives):
        errors.add(("search", "reference"), "the reference point needs one value for each objective, no more",
                   found=sorted(ref), expected=str(sorted(doc.objectives)))
    if doc.task.sat is not None and dataset != "sat":
        errors.add(("task", "sat"), "sat options belong to dataset sat", found=dataset, expected="dataset: sat")
    sat = doc.task.sat
    if sat is not None and sat.disjoint and sat.clauses * sat.literals > sat.variables:
        errors.add(("task", "sat", "disjoint"), "disjoint clauses need clauses × literals ≤ variables",
                   found=f"{sat.clauses} × {sat.literals} = {sat.clauses * sat.literals} > {sat.variables} variables",
                   expected="fewer clauses or literals, or more variables")
    if doc.task.test + doc.task.validation >= 1:
        errors.add(("task", "validation" if "validation" in doc.task.model_fields_set else "test"),
                   "task.test and task.validation together must leave samples to train on (their sum below 1)",
                   found=f"test {doc.task.test:g} + validation {doc.task.validation:g} = "
                         f"{doc.task.test + doc.task.validation:g}",
                   expected="fractions in (0, 1) summing to less than 1, e.g. test: 0.15, validation: 0.15")
    if dataset == "sat" and doc.task.kind != "classification":
        errors.add(("task", "kind"), "the sat dataset is a classification task", found=doc.task.kind,
                   expected="classification")

    params: list[Param] = []
    for section in ("space", "train"):
        for label, raw in getattr(doc, section).items():
            param = _parse_param(section, label, raw, errors, params)
            if param is not None:
                params.append(param)
    labels = {p.label: p for p in params}
    lift = labels.get("lift")
    lift_kinds = lift.values() if lift is not None else (SPACE_DEFAULTS["lift"],)
    can_lift = any(v != "none" for v in lift_kinds)
    if can_lift and "lift_width" not in doc.space:
        errors.add(("space", "lift"), "a lift other than none needs space.lift_width (the width d_z)",
                   found=list(lift_kinds), expected="a lift_width entry, e.g. {int: [64, 1024], log: true}")
    width = labels.get("lift_width")
    if width is not None and "lift" in width.when:
        uncovered = [v for v in lift_kinds if v != "none" and v not in width.when["lift"]]
        if uncovered:
            errors.add(("space", "lift_width", "when", "lift"), f"lift_width has no value when lift is {uncovered[0]!r}",
                       found=list(width.when["lift"]), expected=f"every lift other than none: {[v for v in lift_kinds if v != 'none']}")
    _check_groups_split(labels, lift_kinds, errors)
    _check_kernel_range(labels, doc.space, errors)
    _check_activation_scope(labels, errors)
    _check_weights_with_fpe(labels, errors)
    _check_exits(labels, doc.task.kind, doc.space, errors)
    errors.raise_if_any()
    name = doc.name or Path(file).stem
    return SearchSpace(name=name, file=file, task=doc.task, objectives=dict(doc.objectives), params=params,
                       search=doc.search, text=text,
                       constraints={m: float(b.max) for m, b in doc.constraints.items()}, lines=lines,
                       pruning=(doc.pruning or None) if "pruning" in doc.model_fields_set else DEFAULT_PRUNING)


def _possible(labels: dict[str, Param], label: str) -> tuple | None:
    """The values ``label`` can take (its default where the file leaves it out), None for a range."""
    param = labels.get(label)
    return (SPACE_DEFAULTS[label],) if param is None else param.values()


def _high(param: Param) -> int:
    return int(param.high) if param.values() is None else max(param.values())


def _check_weights_with_fpe(labels: dict[str, Param], errors: "_Errors") -> None:
    """A structured weight form does not compose with FPE: an input error where every candidate would have both
    (a candidate that can have either alone and gets both is recorded as infeasible)."""
    weights, alpha = labels.get("weights"), labels.get("fpe_alpha")
    if weights is None or alpha is None or weights.when or alpha.when:
        return
    forms = weights.values()
    alphas = alpha.values() or (alpha.low,)
    if "dense" not in forms and min(alphas) > 1:
        errors.add(("space", "weights"), "a structured weight form does not compose with FPE (FPE expands and "
                   "prunes a dense W1 and W2), and every candidate of this space would have both",
                   found={"weights": list(forms), "fpe_alpha": list(alpha.values() or [alpha.low, alpha.high])},
                   expected="fpe_alpha 1, or dense among the weights (then `when: {weights: [dense]}` on "
                            "fpe_alpha keeps the two apart)")


def _check_groups_split(labels: dict[str, Param], lift_kinds: tuple, errors: "_Errors") -> None:
    """``fpe_split: groups`` needs W1 to see the raw input features: only under lift none and no mixer."""
    split = labels.get("fpe_split")
    if split is None or "groups" not in (split.values() or ()):
        return
    for key, kinds in (("lift", lift_kinds), ("mixer", (labels["mixer"].values() or ()) if "mixer" in labels
                                              else (SPACE_DEFAULTS["mixer"],))):
        possible = [v for v in kinds if v in split.when.get(key, kinds)]  # where fpe_split can be groups
        if any(v != "none" for v in possible):
            errors.add(("space", "fpe_split"), f"the groups split needs W1 to read the input features themselves, "
                       f"so {key} must be none wherever fpe_split can be groups", found=possible,
                       expected=f"{key}: none, or `when: {{{key}: [none]}}` on fpe_split")


def _check_exits(labels: dict[str, Param], kind: str, space: dict, errors: "_Errors") -> None:
    """Early exit needs class logits (a head's top softmax probability decides): only a task scored by accuracy."""
    exits = labels.get("exits")
    if exits is not None and kind in IMAGE_KINDS and exits.values() != (0,):
        errors.add(("space", "exits"), f"early exit needs class logits, and a {kind} task predicts pixels",
                   found=space["exits"], expected="exits: 0 (or no exits key), or task kind classification")


def _check_activation_scope(labels: dict[str, Param], errors: "_Errors") -> None:
    """``activation_scope: neuron`` scopes a learnable activation's parameters: an input error where none of the
    activations the space can sample has any (relu, gelu, silu, tanh ignore it)."""
    scope = labels.get("activation_scope")
    if scope is None or "neuron" not in (scope.values() or ()):
        return
    activations = _possible(labels, "activation") or ()
    if not any(a in SCOPED_ACTIVATIONS for a in activations):
        errors.add(("space", "activation_scope"), "activation_scope neuron gives each unit its own parameters of a "
                   "learnable activation, and none of this space's activations has any", found=list(activations),
                   expected=f"one of {', '.join(SCOPED_ACTIVATIONS)} among the activations, or no activation_scope")


def _check_kernel_range(labels: dict[str, Param], space: dict, errors: "_Errors") -> None:
    """A range of ``mixer_kernel`` must hold odd sizes only: odd bounds (checked with its values) and an even step."""
    kernel = labels.get("mixer_kernel")
    if kernel is not None and kernel.kind == "int" and (kernel.step is None or kernel.step % 2):
        errors.add(("space", "mixer_kernel"), "a range of kernel sizes must hold odd sizes only, so it needs an even "
                   "step", found=space["mixer_kernel"], expected="e.g. {int: [3, 9], step: 2}, or a choice [3, 5, 7]")


def _parse_param(section: str, label: str, raw: Any, errors: "_Errors", earlier: list[Param]) -> Param | None:
    path = (section, label)
    known = _KNOWN[section]
    if label not in known:
        hint = difflib.get_close_matches(label, list(known), n=1)
        errors.add(path, f"unknown {section} parameter" + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                   found=label, expected="one of " + ", ".join(known))
        return None
    typ, check, expected = known[label]

    if isinstance(raw, list):
        form_cls, raw_form = _ChoiceForm, {"choice": raw}
    elif isinstance(raw, dict):
        keys = [k for k in ("int", "float", "choice", "value") if k in raw]
        if len(keys) != 1:
            errors.add(path, "a parameter mapping needs exactly one of the keys int, float, choice, value",
                       found=raw, expected="{int: [lo, hi]}, {float: [lo, hi]}, {choice: [...]} or {value: x}")
            return None
        form_cls = {"int": _IntForm, "float": _FloatForm, "choice": _ChoiceForm, "value": _FixedForm}[keys[0]]
        raw_form = raw
    else:
        form_cls, raw_form = _FixedForm, {"value": raw}
    try:
        form = form_cls.model_validate(raw_form)
    except ValidationError as exc:
        for err in exc.errors():
            loc = err["loc"]
            if form_cls is _ChoiceForm and raw_form is not raw:
                loc = loc[1:]  # a bare list: the error is about its items
            elif form_cls is _FixedForm and raw_form is not raw:
                loc = loc[1:]
            errors.add_pydantic({**err, "loc": loc}, prefix=path)
        return None

    n_before = len(errors)
    when: dict[str, tuple] = {}
    for cond_label, allowed in (form.when or {}).items():
        cpath = path + ("when", cond_label)
        allowed_t = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        prev = next((p for p in earlier if p.label == cond_label), None)
        if prev is None:
            later = cond_label in _KNOWN["space"] or cond_label in _KNOWN["train"]
            errors.add(cpath, "a condition may only use a label defined earlier in the file"
                       + ("" if not later else f" ({cond_label!r} is not defined before {label!r})"),
                       found=cond_label, expected="one of " + (", ".join(p.label for p in earlier) or "(none yet)"))
            continue
        possible = prev.values()
        if possible is not None:
            bad = [v for v in allowed_t if v not in possible]
            if bad:
                errors.add(cpath, f"{cond_label} can never be {bad[0]!r}", found=bad[0],
                           expected="one of " + ", ".join(map(repr, possible)))
        when[cond_label] = allowed_t

    if isinstance(form, (_IntForm, _FloatForm)):
        lo, hi = form.range
        if typ == "str":
            errors.add(path, f"{label} takes names, not a numeric range", found=raw, expected=expected)
        elif typ == "int" and isinstance(form, _FloatForm):
            errors.add(path, f"{label} is an integer: use {{int: [lo, hi]}}", found=raw, expected=expected)
        elif not lo < hi:
            errors.add(path, "empty or inverted range: the low bound must be below the high bound "
                       "(write a plain value to fix a parameter)", found=[lo, hi], expected="[lo, hi] with lo < hi")
        elif form.log and lo <= 0:
            errors.add(path, "a log range needs a positive low bound", found=lo, expected="lo > 0")
        elif form.log and form.step is not None:
            errors.add(path, "log and step cannot be combined", found=raw, expected="either log or step")
        elif any(isinstance(x, float) and not math.isfinite(x) for x in (lo, hi)):
            errors.add(path, "range bounds must be finite", found=[lo, hi], expected="finite numbers")
        else:
            for bound in (lo, hi):
                msg = check(bound)
                if msg:
                    errors.add(path, f"bound {bound!r} {msg}", found=bound, expected=expected)
                    break
        kind = "int" if isinstance(form, _IntForm) else "float"
        param = Param(label, section, kind, low=lo, high=hi, log=form.log, step=form.step, when=when)
    else:
        vals = tuple(form.choice) if isinstance(form, _ChoiceForm) else (form.value,)
        if len(set(map(repr, vals))) != len(vals):
            errors.add(path, "a choice lists the same value twice", found=list(vals), expected="distinct values")
        for i, v in enumerate(vals):
            vpath = path + (i,) if isinstance(form, _ChoiceForm) and isinstance(raw, list) else path
            ok_type = {"str": isinstance(v, str), "int": isinstance(v, int) and not isinstance(v, bool),
                       "float": isinstance(v, (int, float)) and not isinstance(v, bool)}[typ]
            if not ok_type:
                errors.add(vpath, f"wrong type for {label}", found=v, expected=expected)
                continue
            msg = check(v)
            if msg:
                errors.add(vpath, msg, found=v, expected=expected)
        if isinstance(form, _ChoiceForm):
            param = Param(label, section, "choice", choices=vals, when=when)
        else:
            param = Param(label, section, "fixed", value=vals[0], when=when)
    return param if len(errors) == n_before else None


class _Errors:
    """Collects errors with their places; raises them as one message."""

    def __init__(self, file: str, lines: dict):
        self.file, self.lines, self.items = file, lines, []

    def __len__(self) -> int:
        return len(self.items)

    def _line(self, path: tuple) -> Any:
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def add(self, path: tuple, problem: str, found: Any = ..., expected: str | None = None, choices=()) -> None:
        where = _yaml._dotted(path) or "top level"
        msg = f"{self.file}:{self._line(path)}: {where}: {problem}"
        if found is not ...:
            msg += f"; found {_show(found)}"
        if expected:
            msg += f"; expected {expected}"
        if choices and found is not ...:
            hint = difflib.get_close_matches(str(found), list(choices), n=1)
            if hint:
                msg += f" (did you mean {hint[0]!r}?)"
        self.items.append(msg)

    def add_pydantic(self, err: dict, prefix: tuple) -> None:
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        typ = err["type"]
        if typ == "extra_forbidden":
            key = loc[-1]
            parent = loc[:-1]
            allowed = _allowed_keys(parent)
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            self.add(loc, "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else ""), found=key,
                     expected=("one of " + ", ".join(allowed)) if allowed else None)
        elif typ == "missing":
            self.add(loc, "required key is missing", expected=f"a value for {loc[-1]!r}")
        else:
            expected = err["msg"]
            expected = re.sub(r"^Input should be ", "", expected)
            expected = re.sub(r"^Value error, ", "", expected)
            self.add(loc, "invalid value", found=err.get("input", ...), expected=expected)

    def raise_if_any(self) -> None:
        if self.items:
            raise NasInputError("\n".join(self.items))


def _allowed_keys(parent: tuple) -> list[str]:
    if len(parent) == 2 and parent[0] == "constraints":
        return ["max"]
    models = {(): Document, ("task",): TaskConfig, ("task", "sat"): SatConfig, ("search",): SearchConfig,
              ("pruning",): PruningConfig, ("search", "confirm"): ConfirmConfig}
    model = models.get(parent)
    if model is None and len(parent) == 2 and parent[0] in ("space", "train"):
        return ["int", "float", "choice", "value", "log", "step", "when"]
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
