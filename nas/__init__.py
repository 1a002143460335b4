"""nas: neural-architecture search for hourglass MLPs and their relatives.

The package is five parts with one-way dependencies
(``dashboard -> search -> evaluators -> spaces -> kernels``); ``nas.cli`` wires
them together for a person, and the three functions here for a notebook:

    import nas
    summary = nas.run("examples/quickstart.yaml", trials=10)      # or a dict: the space file's document
    df = nas.trials("quickstart")                                   # a pandas DataFrame, one row per trial
    nas.export("quickstart", "best/", pick="accuracy")              # storage= like the others

Each imports its part on first use, so ``import nas`` stays cheap. The README
describes the space file, the objectives and the storage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.version import __version__  # noqa: F401

DEFAULT_STORAGE = "sqlite:///nas.db"  # every command's and function's default database; equal to
# nas.search.store.storage.DEFAULT_STORAGE (a test checks), written out so that `import nas` stays cheap

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from nas.search.execution.driver import RunSummary


def run(space: str | Path | dict[str, Any], *, storage: str = DEFAULT_STORAGE, study: str | None = None,
        trials: int | None = None, workers: int | None = None, address: str | None = None,
        resume: bool = False, progress: bool = False, weights: bool = True,
        timeout: float | str | None = None) -> "RunSummary":
    """``nas run`` from Python: search ``space`` (a space file's path, or its document as a dict) and return
    the run's summary (complete, failed, reused, the Pareto front's size, wall time).

    The keyword arguments are the command's options. A dict needs a ``name`` (or ``study=``); relative npz
    paths in it are read from the working folder. Bad input raises ``nas.errors.NasInputError`` (the message
    the command prints); a run that cannot finish raises ``nas.errors.NasRunFailed``.
    """
    from nas.errors import NasInputError
    from nas.search.execution.driver import RunOptions
    from nas.search.execution.driver import run as run_study
    from nas.spaces import load_space
    from nas.spaces.schema import parse_space

    if isinstance(space, dict):
        import yaml

        if study is None and not space.get("name"):
            raise NasInputError("a space given as a dict needs a name (its `name` key, or study=...)")
        parsed = parse_space(yaml.safe_dump(space, sort_keys=False), f"<space {space.get('name') or study}>",
                             base_dir=Path.cwd())
    else:
        parsed = load_space(space)
    from nas.spaces.rules import seconds_of

    budget = timeout if timeout is not None else parsed.search.timeout
    try:
        timeout_s = seconds_of(budget) if budget is not None else None
    except ValueError as exc:
        raise NasInputError(f"timeout: {exc}") from None
    return run_study(parsed, RunOptions(storage=storage, study=study, trials=trials, workers=workers,
                                        address=address, resume=resume, progress=progress, weights=weights,
                                        timeout_s=timeout_s))


def trials(study: str, storage: str = DEFAULT_STORAGE) -> "pandas.DataFrame":
    """The trials of ``study`` as ``nas show STUDY --format json`` lists them, one row each: ``number``,
    ``state``, ``pareto``, ``arch_id``, ``error``, ``wall_time_s``, ``reused``, then a column per parameter of
    the space file and per objective (the score: the validation split's, what the search selected on), its
    test score as ``test_<metric>`` (the record), and for a candidate ``nas confirm`` trained with more seeds
    ``confirmed_seeds``, ``confirmed_val_mean`` / ``_sd``, ``confirmed_test_mean`` / ``_sd`` and
    ``significance`` (NaN where a trial has none, e.g. a failed one)."""
    import pandas as pd

    from nas.search.read.results import study_report

    report = study_report(storage, study)
    rows = []
    for t in report["trials"]:
        row = {k: t[k] for k in ("number", "state", "pareto", "arch_id", "error", "wall_time_s", "reused")}
        row.update(t["params"])
        row.update(t["values"])
        row.update({f"test_{k}": v for k, v in t.get("test", {}).items()})
        conf = t.get("confirmed")
        if conf:
            row.update({"confirmed_seeds": conf["seeds"], "confirmed_val_mean": conf["val"]["mean"],
                        "confirmed_val_sd": conf["val"]["sd"], "confirmed_test_mean": conf["test"]["mean"],
                        "confirmed_test_sd": conf["test"]["sd"], "significance": t["significance"]["status"]
                        if "significance" in t else None})
        rows.append(row)
    columns = ["number", "state", "pareto", "arch_id", "error", "wall_time_s", "reused"]
    return pd.DataFrame(rows, columns=None if rows else columns)


def export(study: str, out: str | Path | None = None, *args: Any, storage: str = DEFAULT_STORAGE,
           trial: int | None = None, pick: str | None = None, store_lift: bool = False,
           out_dir: str | Path | None = None) -> Path:
    """``nas export`` from Python: one candidate of ``study`` (``trial=N``, or ``pick=`` an objective or
    ``"knee"``) written as a standalone PyTorch module to the folder ``out``; returns the folder.

    The same order as ``nas.run`` and ``nas.trials``: the study first, the storage a keyword. The form of
    before 2026-12-07, ``nas.export(storage_url, study, out, ...)`` (a first argument with ``://``), still
    works and warns (``DeprecationWarning``). Bad input raises ``nas.errors.NasInputError``.
    """
    import warnings

    from nas.exporter import export_candidate

    if "://" in str(study):  # the old order: (storage, study, out_dir[, trial, pick, store_lift])
        warnings.warn("nas.export(storage, study, out, ...) is deprecated: use nas.export(study, out, "
                      "storage=...)", DeprecationWarning, stacklevel=2)
        storage, study, out = study, out, args[0] if args else out_dir
        if out is None or study is None:
            raise TypeError("nas.export(storage, study, out_dir): the study or out_dir is missing")
        args = args[1:] if args else ()
        names = ("trial", "pick", "store_lift")
        given = dict(zip(names, args))
        trial, pick, store_lift = given.get("trial", trial), given.get("pick", pick), given.get("store_lift", store_lift)
    elif args:
        raise TypeError(f"nas.export() takes 2 positional arguments (study, out) but {2 + len(args)} were given")
    else:
        out = out if out is not None else out_dir  # out_dir=: the old keyword, still read
        if out is None:
            raise TypeError("nas.export(study, out): out is missing")
    return export_candidate(storage, study, out, trial=trial, pick=pick, store_lift=store_lift)
