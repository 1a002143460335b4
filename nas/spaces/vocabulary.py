"""The whole block vocabulary, registered: import this module before reading a registry.

Each family registers its entries in ``nas.spaces.base``'s registries when it is imported; this module
imports every family in a fixed order (the order the registries list their names in, in error messages
and the documentation) and re-exports the registries, complete.
"""

from __future__ import annotations

# isort: off  (the order is the registries' order)
from nas.spaces import blocks  # noqa: F401 (each family registers its entries)
from nas.spaces import activations  # noqa: F401
from nas.spaces import fpe  # noqa: F401
from nas.spaces import lifts  # noqa: F401
from nas.spaces import mixers  # noqa: F401
from nas.spaces import moe  # noqa: F401
from nas.spaces import structured  # noqa: F401
# isort: on
from nas.spaces.base import ACTIVATIONS, CONNECTIONS, LIFTS, MIXERS, NORMS, WEIGHTS

__all__ = ["ACTIVATIONS", "CONNECTIONS", "LIFTS", "MIXERS", "NORMS", "WEIGHTS"]
