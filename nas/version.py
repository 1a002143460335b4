"""nas's version: what ``nas.__version__`` is, read by the parts (a run's record, an export's card) without
importing the root package."""

__version__ = "0.1.0"
