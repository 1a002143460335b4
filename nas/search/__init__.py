"""The Optuna study, dispatch to Ray Tune workers, the SQL store, resume.

Adapts Optuna and Ray; knows nothing of how a block is built.
"""

from nas.search.runner import NasRunFailed, RunOptions, RunSummary, run

__all__ = ["NasRunFailed", "RunOptions", "RunSummary", "run"]
