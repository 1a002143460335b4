"""The evaluator a Ray worker runs: train one candidate from its JSON job."""

from __future__ import annotations

from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from nas.evaluators.datasets import TEST_FRACTION, VAL_FRACTION, Task, load_task
from nas.evaluators.train import evaluate
from nas.spaces import ArchSpec, TrainSpec


def stops(rule: dict | None, score: float) -> bool:
    """Whether a candidate with validation ``score`` at a rung stops there (``nas.search.execution.pruning`` makes the rules)."""
    return rule is not None and score <= rule["dominated_at_or_below"] and score < rule["top_below"]


class TrainEvaluator:
    """Loads the task once per worker process, then trains candidate after candidate."""

    def __init__(self, dataset: str, kind: str, base_dir: str | None = None, options: dict | None = None,
                 splits: tuple[float, float] | None = None):
        self.dataset, self.kind, self.base_dir, self.options = dataset, kind, base_dir, options
        self.splits = splits  # (task.test, task.validation); None: the defaults
        self.task: Task | None = None
        self.device = "cpu"

    def setup(self, threads: int, device: str) -> None:
        torch.set_num_threads(threads)
        self.device = device
        test, validation = self.splits or (TEST_FRACTION, VAL_FRACTION)
        self.task = load_task(self.dataset, self.kind, self.base_dir, self.options, test=test, validation=validation)

    def __call__(self, job: dict[str, Any]) -> dict[str, Any]:
        spec = ArchSpec.from_json(job["arch"])
        train = TrainSpec.from_json(job["train"])
        rules = job.get("stop_rules") or {}

        def report(epoch: int, point: dict[str, float]) -> bool:
            score = next(v for k, v in point.items() if k.startswith("val_"))
            return stops(rules.get(str(epoch)), score)

        ev = evaluate(spec, train, self.task, device=self.device, report=report if rules else None)
        return {
            "ok": True,
            "stopped_early": ev.stopped_early,
            "objectives": ev.objectives,
            "curve": ev.curve,
            "wall_time_s": ev.wall_time_s,
            "epochs_trained": ev.epochs_trained,
            "weights": safetensors_bytes(ev.state, metadata={"arch_id": spec.arch_id})
            if ev.state and job.get("weights", True) else None,
        }
