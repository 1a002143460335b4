"""Load YAML into plain Python values and remember the line of every key.

``load(text, filename)`` returns ``(data, lines)`` where ``lines`` maps a key
path (a tuple of mapping keys and list indices) to the 1-based line on which
that value starts, so that any error can name the line of the offending key.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from nas.errors import NasInputError

Path = tuple  # tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-4`` as numbers."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


_SCALARS = _Loader("")


def load(text: str, filename: str) -> tuple[Any, dict[Path, int]]:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else "?"
        problem = exc.problem or exc.context or "invalid YAML"
        raise NasInputError(f"{filename}:{line}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:  # pragma: no cover - all PyYAML errors are marked
        raise NasInputError(f"{filename}: YAML syntax error: {exc}") from None
    lines: dict[Path, int] = {}
    if node is None:
        return None, lines
    return _convert(node, (), lines, filename), lines


def _convert(node: yaml.Node, path: Path, lines: dict[Path, int], filename: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise NasInputError(
                    f"{filename}:{key_node.start_mark.line + 1}: {_dotted(path) or 'top level'}: "
                    "a key must be a plain name, found a nested list or mapping"
                )
            key = key_node.value
            if key in out:
                raise NasInputError(
                    f"{filename}:{key_node.start_mark.line + 1}: {_dotted(path + (key,))}: "
                    f"duplicate key (first given on line {lines[path + (key,)]})"
                )
            out[key] = _convert(value_node, path + (key,), lines, filename)
            lines[path + (key,)] = key_node.start_mark.line + 1  # the key's line, not its value's
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(v, path + (i,), lines, filename) for i, v in enumerate(node.value)]
    try:
        return _SCALARS.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise NasInputError(
            f"{filename}:{node.start_mark.line + 1}: {_dotted(path)}: {exc.problem}"
        ) from None


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
