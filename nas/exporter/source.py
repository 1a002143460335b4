"""``model.py`` for one ArchSpec: the spec checked (``check_spec``), then nas's own code for it (``model_source``).

model.py holds, top to bottom: a docstring saying what the network is (``nas.spaces.stages.describe``); the imports; the
architecture's numbers and its ArchSpec (``ARCH``); the source of exactly the classes and functions that the
architecture's plan uses (``nas.spaces.builder.plan(spec, portable=True)``) and of what they use, copied from
nas/spaces and the PyTorch reference paths of nas/kernels by ``nas.exporter.portable``; ``build()``, the plan
written out as constructor calls; and the loader (``nas.exporter.runtime``). Nothing of a space file or a
study reaches the code: the numbers are checked to be ints, the names in ``ARCH`` to be registered names of
portable blocks, and all code is nas's own source.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from typing import Any

from nas.errors import NasInputError
from nas.spaces import ArchSpec
from nas.spaces.builder import STORABLE_LIFTS, Call, Const, plan
from nas.exporter.portable import NotPortable, portable_class, portable_source

_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_HEX = re.compile(r"[0-9a-f]{16}\Z")
_WIDTH = 110  # model.py's line length


def _int(name: str, value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise NasInputError(f"cannot export: ArchSpec.{name} must be an int in [{low}, {high}], found {value!r}")
    return value


def _name(kind: str, value: Any, registry) -> None:
    if not isinstance(value, str) or value not in registry:
        raise NasInputError(f"cannot export: {registry.unknown_message(value)}")
    if not _NAME.match(value):
        raise NasInputError(f"cannot export {kind} {value!r}: not a name model.py can hold")
    if registry.get(value) is not None:
        try:
            portable_class(registry.get(value))
        except NotPortable as exc:
            raise NasInputError(f"cannot export {kind} {value!r}: its block does not run without nas ({exc}); "
                                "register a class or function of a nas module that uses only torch and math") from None


def check_spec(spec: Any) -> ArchSpec:
    """Check every value of ``spec`` that reaches model.py against its declaration (``nas.spaces.arch.KEYS``: a
    registered name of a portable block, one of its names, a number in its bounds, an int in its export
    bounds); NasInputError naming the field otherwise."""
    from nas.spaces import vocabulary
    from nas.spaces.arch import INT_MAX, KEYS
    from nas.spaces.stages import BlockStage, stage, stages

    if not isinstance(spec, ArchSpec):
        raise NasInputError(f"cannot export: expected an ArchSpec, found {type(spec).__name__}")
    types = {f.name: f.type for f in dataclasses.fields(spec)}
    for name, k in KEYS.items():
        value = getattr(spec, name)
        kind = str(types[name])
        if k.registry is not None:
            _name(name, value, getattr(vocabulary, k.registry))
        elif name == "in_shape":
            for i, size in enumerate(value):
                _int(f"in_shape[{i}]", size, 1, INT_MAX)
        elif kind in ("int", "<class 'int'>"):
            _int(name, value, *(k.export or (1, INT_MAX)))
            problem = k.check(value)
            if problem:
                raise NasInputError(f"cannot export: ArchSpec.{name} {problem}, found {value!r}")
        elif kind in ("float", "<class 'float'>"):  # fpe_at and gate_penalty are training's alone, but checked
            if type(value) not in (int, float) or k.check(value):
                raise NasInputError(f"cannot export: ArchSpec.{name} must be {k.expected_text('float')}, found "
                                    f"{value!r}")
        elif k.names:
            problem = k.check(value)
            if problem:
                raise NasInputError(f"cannot export: {problem}; expected {k.expected_text('str')}")
        else:
            raise NasInputError(f"cannot export: ArchSpec.{name} is declared without values nas export can check; "
                                "declare its names, registry or bounds in nas/spaces/arch.py")
    _int("moe_top_k", spec.moe_top_k, 1, spec.moe_experts)
    try:
        stage(stages(spec), BlockStage).check_weights()  # the rank and monarch blocks fit the widths
    except ValueError as exc:
        raise NasInputError(f"cannot export: {exc}") from None
    if ArchSpec.from_json(spec.to_json()) != spec:
        raise NasInputError("cannot export: the ArchSpec does not round-trip through its JSON")
    if not _HEX.match(spec.arch_id):
        raise NasInputError(f"cannot export: unexpected arch_id {spec.arch_id!r}")
    return spec


def model_source(spec: ArchSpec, store_lift: bool = False) -> str:
    """The text of model.py for ``spec`` (checked first); ``store_lift``: a fixed random lift read from the weights."""
    from nas.exporter import runtime
    from nas.spaces.stages import describe, kind

    spec = check_spec(spec)
    stored = store_lift and spec.lift in STORABLE_LIFTS
    tree = plan(spec, portable=True, store_lift=stored)
    consts: dict[str, Const] = {}
    used: list[Any] = []
    tree.walk(consts, used)
    names = {id(obj): portable_class(obj) for obj in used}  # the plan's objects -> model.py's
    loader = [runtime.read_safetensors, runtime.load]
    code = portable_source(list(names.values()) + loader, provided=("ARCH", "ARCH_ID", "build"))
    from nas.spaces.arch import KEYS

    arch = {k: v for k, v in spec.to_json().items() if not KEYS[k].training_only}  # what the forward pass reads
    lines = [
        f'"""{kind(spec)} exported by nas (arch {spec.arch_id}): standalone, it needs only PyTorch.',
        "",
        *textwrap.wrap(describe(spec, stored), _WIDTH, initial_indent="    ", subsequent_indent="    "),
        "",
        "``load(directory)`` reads arch.json and weights.safetensors from the folder and returns the model in",
        "eval mode; ``build()`` makes it untrained. Written by ``nas export``: the classes and functions below",
        "are nas's own (from nas/spaces and the PyTorch reference paths of nas/kernels), copied, so the outputs",
        "equal nas's bit for bit on the same device and dtype.",
        '"""',
        "",
        *(line for line in code.import_lines() if "torch" not in line),
        "",
        *(line for line in code.import_lines() if "torch" in line),
        "",
        *(f"{c.name} = {_literal(c.value)}  # {c.comment}" for c in consts.values()),
        f'ARCH_ID = "{spec.arch_id}"',
        "ARCH = {  # the ArchSpec this file was written for (less what training alone reads: fpe_at, gate_penalty); "
        "load() checks arch.json against it",
        *(f'    "{key}": {_literal(value)},' for key, value in arch.items()),
        "}",
        *code.constants.values(),
    ]
    body, module = [], None
    for obj, text in code.objects:
        if obj is loader[0]:
            body.append(_python_build(tree, names, spec.arch_id))
            module, text = obj.__module__, "# " + "-" * 60 + " loading\n" + text
        elif obj.__module__ != module:
            module, text = obj.__module__, f"# {'-' * 60} {module_of(obj)}\n{text}"
        body.append(text)
    return "\n".join(lines) + "\n\n\n" + "\n\n".join(body)


def module_of(obj: Any) -> str:
    return obj.__module__.replace(".", "/") + ".py"


def portable_parts(spec: ArchSpec, store_lift: bool = False) -> list[Any]:
    """The classes and functions of model.py that ``build()`` names, parts before what holds them."""
    used: list[Any] = []
    plan(spec, portable=True, store_lift=store_lift and spec.lift in STORABLE_LIFTS).walk({}, used)
    return [portable_class(obj) for obj in used]


def _literal(value: Any) -> str:
    """An int, a float in (0, 1], a checked name, or a list or tuple of ints as Python source (nothing else is
    accepted)."""
    if type(value) is int:
        return str(value)
    if type(value) is float and 0 < value <= 1:  # exit_threshold: repr gives the float back exactly
        return repr(value)
    if isinstance(value, str) and (_NAME.match(value) or _HEX.match(value)):
        return f'"{value}"'
    if type(value) in (list, tuple) and all(type(v) is int for v in value):
        return repr(value)
    raise TypeError(f"bug in nas export: not a literal model.py holds: {value!r}")


def _python_build(tree: Call, names: dict[int, Any], arch_id: str) -> str:
    return (f"# {'-' * 60} the architecture (nas/spaces/builder.py's plan)\n"
            f"def build() -> {names[id(tree.fn)].__name__}:\n"
            f'    """The network of arch {arch_id}, untrained: ``load`` reads the trained weights into it."""\n'
            f"    return {tree.python(lambda obj: names[id(obj)].__name__, 4, _WIDTH)}\n")
