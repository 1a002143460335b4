"""The portable part of nas: the source of classes and functions that run with torch alone.

``nas export`` writes a model.py that needs only PyTorch by copying nas's own
code into it: ``portable_source(roots)`` returns the source of ``roots`` and
of everything they use, found by walking the names each one references
(``symtable``) and resolving them in its module:

- ``torch``, ``torch.nn`` as ``nn``, ``torch.nn.functional`` as ``F``,
  ``math``, ``json`` and ``pathlib`` become imports;
- a class or function defined in a nas module is copied too (its own names
  walked in turn), after what it uses;
- a simple constant (a number, a string, None, a tuple of them) becomes
  ``NAME = value``: its own line from the module where that line evaluates to
  the value (comment kept), else its ``repr``;
- a builtin or a module attribute (``__file__``) is left as is, a name in
  ``provided`` is the caller's;
- anything else makes the object not portable: ``NotPortable`` names the
  object and the name.

A copy is ``inspect.getsource`` of the object, with two cuts made by line
ranges from its AST, so that comments and layout stay: a top-level
``functools`` cache decorator is left out (a cache, not behaviour; any other
decorator is kept), and so is every method of a class whose name starts with
``nas_`` (the cost model's ``nas_cost``, training hooks: nas's business, not
the deployed model's), with the comment lines right above it.

A registry entry may be a training subclass that is not portable (it calls a
Triton kernel): ``portable_class`` gives its first portable base instead, the
class that holds the PyTorch reference forward.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import sys
import symtable
import textwrap
import types
from dataclasses import dataclass, field
from typing import Any, Iterable

IMPORTS = {  # module -> (the name model.py uses, the import line); in this order
    "json": ("json", "import json"),
    "math": ("math", "import math"),
    "pathlib": ("pathlib", "import pathlib"),
    "torch": ("torch", "import torch"),
    "torch.nn.functional": ("F", "import torch.nn.functional as F"),
    "torch.nn": ("nn", "from torch import nn"),
}
_CONSTANT_TYPES = (int, float, str, bool, type(None))


class NotPortable(Exception):
    """An object whose source cannot run without nas (the message says which name and why)."""


@dataclass
class Source:
    """What ``portable_source`` found: imports, constants and objects, each object after what it uses."""

    imports: set[str] = field(default_factory=set)  # module names, keys of IMPORTS
    constants: dict[str, str] = field(default_factory=dict)  # name -> its line
    values: dict[str, Any] = field(default_factory=dict)  # name -> its value (one name, one value)
    objects: list[tuple[Any, str]] = field(default_factory=list)  # (object, its source)

    def import_lines(self) -> list[str]:
        return [line for module, (_, line) in IMPORTS.items() if module in self.imports]


def portable_class(obj: Any) -> Any:
    """``obj`` if portable, else for a class its first portable base (a class defined in nas); NotPortable with
    ``obj``'s own reason where there is none."""
    candidates = [c for c in obj.__mro__ if _in_nas(c)] if isinstance(obj, type) else [obj]
    first = None
    for candidate in candidates or [obj]:
        try:
            portable_source([candidate])
            return candidate
        except NotPortable as exc:
            first = first or exc
    raise first


def portable_source(roots: Iterable[Any], provided: Iterable[str] = ()) -> Source:
    """The source of ``roots`` and of what they use (the module's docstring); NotPortable otherwise."""
    out, names = Source(), {}
    for root in roots:
        _visit(root, out, names, set(provided), set())
    return out


def _in_nas(obj: Any) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] == "nas"


def _visit(obj: Any, out: Source, names: dict[str, Any], provided: set[str], active: set[int]) -> None:
    if any(o is obj for o, _ in out.objects) or id(obj) in active:
        return
    what = getattr(obj, "__qualname__", repr(obj))
    if not isinstance(obj, (type, types.FunctionType)) or obj.__name__ == "<lambda>":
        raise NotPortable(f"{what} is not a class or a named function")
    if not _in_nas(obj) or obj.__qualname__ != obj.__name__:
        raise NotPortable(f"{obj.__module__}.{what} is not defined at the top of a nas module")
    if names.setdefault(obj.__name__, obj) is not obj:
        raise NotPortable(f"two objects named {obj.__name__} ({obj.__module__} and {names[obj.__name__].__module__})")
    active.add(id(obj))
    text = source_of(obj)
    module = sys.modules[obj.__module__]
    for name in sorted(_free_names(text) - {obj.__name__}):
        if name in provided or (name.startswith("__") and name.endswith("__")) or (
                name not in vars(module) and hasattr(builtins, name)):
            continue  # the caller's, the module's own (__file__: model.py's), or a builtin
        if name not in vars(module):
            raise NotPortable(f"{obj.__module__}.{what} uses {name}, which {obj.__module__} does not define")
        value = inspect.unwrap(vars(module)[name])
        if isinstance(value, types.ModuleType):
            if value.__name__ not in IMPORTS or IMPORTS[value.__name__][0] != name:
                raise NotPortable(f"{obj.__module__}.{what} uses the module {value.__name__} (as {name}); model.py "
                                  f"imports only {', '.join(f'{m} as {a}' for m, (a, _) in IMPORTS.items())}")
            out.imports.add(value.__name__)
        elif isinstance(value, (type, types.FunctionType)) and _in_nas(value):
            try:
                _visit(value, out, names, provided, active)
            except NotPortable as exc:
                raise NotPortable(f"{obj.__module__}.{what} uses {name}: {exc}") from None
        elif _constant(value):
            if name in out.values:  # the same constant reached from two modules (one imports the other's)
                if out.values[name] != value or type(out.values[name]) is not type(value):
                    raise NotPortable(f"two constants named {name} with different values")
            else:
                out.values[name], out.constants[name] = value, _constant_line(module, name, value)
        else:
            raise NotPortable(f"{obj.__module__}.{what} uses {name}, a {type(value).__name__} from "
                              f"{getattr(value, '__module__', None) or obj.__module__}: model.py holds only torch, "
                              "math, nas's portable classes and functions, and simple constants")
    active.discard(id(obj))
    out.objects.append((obj, text))


def source_of(obj: Any) -> str:
    """``obj``'s source as model.py holds it: dedented, a functools cache decorator and ``nas_*`` methods cut."""
    lines = textwrap.dedent(inspect.getsource(obj)).splitlines()
    node = ast.parse("\n".join(lines)).body[0]
    cut: set[int] = set()  # 0-based line numbers
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target) in ("functools.lru_cache", "functools.cache"):
            cut.update(range(decorator.lineno - 1, decorator.end_lineno))
    if isinstance(node, ast.ClassDef):
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("nas_"):
                first = min([item.lineno] + [d.lineno for d in item.decorator_list]) - 1
                while first > 0 and lines[first - 1].strip().startswith("#"):
                    first -= 1  # its comment lines
                if first > 0 and not lines[first - 1].strip():
                    first -= 1  # and the blank line that separated it
                cut.update(range(first, item.end_lineno))
    text = "\n".join(line for i, line in enumerate(lines) if i not in cut).rstrip() + "\n"
    try:
        ast.parse(text)
    except SyntaxError as exc:
        raise NotPortable(f"{obj.__module__}.{obj.__qualname__} is empty without its nas_* members: {exc}") from None
    return text


def _free_names(text: str) -> set[str]:
    """The global names ``text`` (one top-level def or class) reads."""
    found = set()

    def walk(table: symtable.SymbolTable) -> None:
        for sym in table.get_symbols():
            top = table.get_type() == "module" and not sym.is_assigned() and not sym.is_imported()
            if sym.is_referenced() and (sym.is_global() or top):
                found.add(sym.get_name())
        for child in table.get_children():
            walk(child)

    walk(symtable.symtable(text, "<portable>", "exec"))
    return found


def _constant(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_constant(v) for v in value)
    return isinstance(value, _CONSTANT_TYPES)


@functools.lru_cache(maxsize=None)
def _module_assignments(module: types.ModuleType) -> dict[str, str]:
    """name -> source line of each one-line ``NAME = value`` at the top of ``module``."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return {}
    lines, found = source.splitlines(), {}
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.lineno == node.end_lineno):
            found[node.targets[0].id] = lines[node.lineno - 1]
    return found


def _constant_line(module: types.ModuleType, name: str, value: Any) -> str:
    line = _module_assignments(module).get(name)
    if line is not None:
        try:
            expr = ast.parse(line).body[0].value
            if type(ast.literal_eval(expr)) is type(value) and ast.literal_eval(expr) == value:
                return line
        except (ValueError, SyntaxError):
            pass
    return f"{name} = {value!r}"
