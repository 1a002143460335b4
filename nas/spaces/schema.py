"""The space file: its schema, its parameters and their conditions.

A space file is YAML (see README "Space-file reference"). Every error names
the file, the key path, the line, what was found and what was expected, and
is raised as ``NasInputError`` before anything else happens. Over 500 lines
as one module: the space file's whole language (parameter forms, conditions,
every key's check and message) is read and changed together.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from nas.errors import NasInputError
from nas.spaces import _yaml
from nas.spaces import rules, vocabulary
from nas.spaces.rules import DATASETS, IMAGE_KINDS  # noqa: F401 (re-exported: the datasets, the task kinds)
from nas.spaces.arch import KEYS, SPACE_DEFAULTS, TRAIN_DEFAULTS, TRAIN_KEYS, ArchSpec, Key, TrainSpec

Scalar = Union[StrictBool, StrictInt, StrictFloat, StrictStr]
Number = Union[StrictInt, StrictFloat]



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
    layout: Literal["hwc", "chw"] | None = None  # an npz's colour images (n, H, W, C) | (n, C, H, W); None: the shape's
    # the held-out splits (nas.evaluators.datasets.load_task): the test split, a share of all samples, scored for
    # the record only; the validation split, a share of what is left, which every selection reads
    test: Number = Field(0.15, gt=0, lt=1)
    validation: Number = Field(0.15, gt=0, lt=1)


class ConfirmConfig(_Strict):
    """``search.confirm``: after the search, train every front member again with this many seeds."""

    seeds: int = Field(5, ge=2)


# The samplers a space file may name, each with the Optuna sampler class it stands for (by name: spaces never
# import Optuna; nas.search.execution.samplers makes the classes from this, the one list).
SAMPLERS = {"nsga2": "NSGAIISampler", "nsga3": "NSGAIIISampler", "tpe": "TPESampler", "random": "RandomSampler",
            "gp": "GPSampler", "qmc": "QMCSampler"}


class SearchConfig(_Strict):
    sampler: Literal[tuple(SAMPLERS)] = "tpe"  # with DEFAULT_PRUNING: the best of benchmarks/search_quality.py
    options: dict[StrictStr, Scalar] = Field(default_factory=dict)  # keyword arguments of the Optuna sampler
    trials: int = Field(20, ge=1)
    workers: int | None = Field(None, ge=1)  # None: 1, or 8 per GPU where Ray sees GPUs (nas.search.execution.dispatch)
    seed: StrictInt | None = None
    # the hypervolume's reference point, one value per objective; derived from the first candidates if absent
    reference: dict[StrictStr, Number] | None = None
    confirm: ConfirmConfig | None = None  # nas run ends with `nas confirm --front --seeds K` (execution.confirm)
    # a wall-clock budget: seconds, or a duration such as 90s, 30m, 2h, 1h30m (nas.spaces.rules.seconds_of)
    timeout: Union[Number, StrictStr] | None = None


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
    ] | None = None  # absent: the task's score, params and bandwidth (rules.default_objectives)
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


# what each known label means: section -> label -> (type, check(value) -> error or None, expected text), derived
# from the fields' declarations (nas.spaces.arch.KEYS, TRAIN_KEYS)
def _known_of(keys: dict[str, Key], types: dict[str, Any]) -> dict[str, tuple]:
    out = {}
    for name, k in keys.items():
        if not k.in_space:
            continue
        kind = {"int": "int", "float": "float", "str": "str"}[str(types[name]).replace("<class '", "").rstrip("'>")]
        if k.registry is not None:
            registry = getattr(vocabulary, k.registry)
            out[name] = (kind, lambda v, r=registry: None if v in r else r.unknown_message(v),
                         "one of " + ", ".join(registry))
        else:
            out[name] = (kind, k.check, k.expected_text(kind))
    return out


_KNOWN: dict[str, dict[str, tuple]] = {
    "space": _known_of(KEYS, {f.name: f.type for f in dataclasses.fields(ArchSpec)}),
    "train": _known_of(TRAIN_KEYS, {f.name: f.type for f in dataclasses.fields(TrainSpec)}),
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

    def check_task(self, d_in: int, in_shape: tuple, feature_groups=None, d_out: int | None = None) -> None:
        """NasInputError naming the place where the space does not fit the task (``nas.spaces.rules.check_task``)."""
        rules.check_task(self, d_in, in_shape, feature_groups, d_out)

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


    if doc.objectives is None:
        doc.objectives = rules.default_objectives(doc.task.kind)
    params: list[Param] = []
    for section in ("space", "train"):
        for label, raw in getattr(doc, section).items():
            param = _parse_param(section, label, raw, errors, params)
            if param is not None:
                params.append(param)
    labels = {p.label: p for p in params}
    rules.check_document(doc, labels, errors, base_dir)
    errors.raise_if_any()
    name = doc.name or Path(file).stem
    return SearchSpace(name=name, file=file, task=doc.task, objectives=dict(doc.objectives), params=params,
                       search=doc.search, text=text,
                       constraints={m: float(b.max) for m, b in doc.constraints.items()}, lines=lines,
                       pruning=(doc.pruning or None) if "pruning" in doc.model_fields_set else DEFAULT_PRUNING)


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
