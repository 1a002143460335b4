"""The live display of ``nas run``: a rich progress bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Any

import optuna
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nas.search.read.results import format_score, score_objective



class RunProgress:
    """Candidates done / failed / running, best score, Pareto front size, elapsed and remaining time.

    ``metrics``: the study's objective names; the best so far is shown for its score
    (``score_objective``: accuracy, else psnr), none without one.
    """

    def __init__(self, study: str, total: int, enabled: bool = True, metrics: list[str] = ("accuracy",)):
        self.study, self.total, self.enabled, self.score = study, total, enabled, score_objective(metrics)
        self.console = Console(stderr=True)
        self.live = enabled and self.console.is_terminal
        self.best_score: float | None = None
        self.front = 0
        self._front_at = 0.0
        self._progress: Progress | None = None
        self._task = None
        self._start_complete: int | None = None
        self._score_index: int | None = None

    def __enter__(self) -> "RunProgress":
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TextColumn("eta {task.fields[eta]}"),
                console=self.console,
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.study, total=self.total, status="starting workers", eta="?")
        elif self.enabled:
            self.console.print(f"nas: study {self.study}: {self.total} candidates to complete", highlight=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, snap: dict[str, Any]) -> None:
        if not self.enabled:  # nothing is shown: no query of the study (its front costs a copy of every trial)
            return
        study: optuna.Study = snap["study"]
        now = time.monotonic()
        if snap["complete"] and now - self._front_at > 1.0:  # the front is a query: at most once a second
            self._front_at = now
            self.front = len(study.best_trials)
            if self._score_index is None and self.score is not None and self.score in (study.metric_names or []):
                self._score_index = study.metric_names.index(self.score)
                done = [t.values[self._score_index]
                        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
                self.best_score = max(done, default=None)
        if self._start_complete is None:
            self._start_complete = snap["complete"]
        remaining = max(0, self.total - snap["complete"])
        rate = snap["done_this_run"] / snap["elapsed"] if snap["elapsed"] > 0 else 0
        eta = _clock(remaining / rate) if rate > 0 else "?"
        status = (f"done {snap['complete']} · failed {snap['failed']} · running {snap['running']}"
                  + (f" · queued {snap['queued']}" if snap.get("queued") else "")
                  + (f" · best val {self.score} {format_score(self.score, self.best_score)}"
                     if self.best_score is not None else "")
                  + f" · front {self.front}")
        if self._progress is not None:
            self._progress.update(self._task, completed=min(snap["complete"], self.total), status=status, eta=eta)
        self._last = (status, eta, snap["elapsed"])

    def candidate_done(self, number: int, values: list[float], wall: float | None,
                       snap: dict[str, Any] | None = None) -> None:
        """A line for a complete candidate; ``snap`` (the driver's counts after it): the line counts it."""
        if self._score_index is not None:
            value = values[self._score_index]
            self.best_score = value if self.best_score is None else max(self.best_score, value)
        if snap is not None and self.enabled:
            self._front_at = 0.0  # the front may have changed: count it again
            self.update(snap)
        if self.enabled and not self.live:
            status, eta, elapsed = getattr(self, "_last", ("", "?", 0))
            print(f"nas: trial {number} complete in {wall or 0:.1f} s: {_fmt(values)}  [{status}; eta {eta}]",
                  file=sys.stderr, flush=True)

    def candidate_stopped(self, number: int, epochs: int | None) -> None:
        if self.enabled and not self.live:
            print(f"nas: trial {number} stopped early after {epochs} epoch(s): dominated at its rung",
                  file=sys.stderr, flush=True)

    def candidate_failed(self, number: int, error: str | None) -> None:
        if self.enabled:
            self.console.print(f"[yellow]nas: trial {number} failed:[/] {error}", highlight=False)


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.4g}" for v in values)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


