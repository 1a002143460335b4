"""nas: neural-architecture search for hourglass MLPs and their relatives.

The package is five parts with one-way dependencies
(``dashboard -> search -> evaluators -> spaces -> kernels``); ``nas.cli`` wires
them together for a person. See ``README.md`` and ``shared/DESIGN.md``.
"""

__version__ = "0.1.0"
