"""Name -> factory registries for the block vocabulary (timm's ``create_act`` style).

A space file names blocks by string; a registry turns the string into a
factory and, for an unknown name, raises an error that lists the valid ones.
"""

from __future__ import annotations

import difflib
import sys
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
# The block families in the order nas.spaces.vocabulary imports them: a registry lists its names family by family
# in this order (each family's in the order it registers them), whichever family Python happens to import first.
FAMILY_ORDER = ("nas.spaces.blocks", "nas.spaces.activations", "nas.spaces.fpe", "nas.spaces.lifts",
                "nas.spaces.mixers", "nas.spaces.moe", "nas.spaces.structured")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._rank: dict[str, tuple[int, int]] = {}  # name -> (its family's place in FAMILY_ORDER, arrival)

    def register(self, name: str) -> Callable[[T], T]:
        module = sys._getframe(1).f_globals.get("__name__", "")
        family = FAMILY_ORDER.index(module) if module in FAMILY_ORDER else len(FAMILY_ORDER)

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            self._rank[name] = (family, len(self._rank))
            self._entries = dict(sorted(self._entries.items(), key=lambda kv: self._rank[kv[0]]))
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        hint = difflib.get_close_matches(str(name), list(self._entries), n=1)
        mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown {self.kind} {name!r}{mean}; expected one of {', '.join(self._entries)}"

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
