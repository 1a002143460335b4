"""nas: neural-architecture search for hourglass MLPs and their relatives.

The package is five parts with one-way dependencies
(``dashboard -> search -> evaluators -> spaces -> kernels``); ``nas.cli`` wires
them together for a person. See ``README.md`` and ``shared/DESIGN.md``.
"""

__version__ = "0.1.0"


def export(*args, **kwargs):
    """Export one candidate of a study as a standalone PyTorch module; see ``nas.search.export.export_candidate``.

    ``nas.export(storage_url, study, out_dir, trial=None, pick=None, store_lift=False) -> Path``.
    Imported on first use, so ``import nas`` stays cheap.
    """
    from nas.search.export import export_candidate

    return export_candidate(*args, **kwargs)
