"""The evaluator a Ray worker runs: train one candidate from its JSON job."""

from __future__ import annotations

from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from nas.evaluators.datasets import Task, load_task
from nas.evaluators.train import evaluate
from nas.spaces import ArchSpec, TrainSpec


class TrainEvaluator:
    """Loads the task once per worker process, then trains candidate after candidate."""

    def __init__(self, dataset: str, kind: str, base_dir: str | None = None):
        self.dataset, self.kind, self.base_dir = dataset, kind, base_dir
        self.task: Task | None = None
        self.device = "cpu"

    def setup(self, threads: int, device: str) -> None:
        torch.set_num_threads(threads)
        self.device = device
        self.task = load_task(self.dataset, self.kind, self.base_dir)

    def __call__(self, job: dict[str, Any]) -> dict[str, Any]:
        spec = ArchSpec.from_json(job["arch"])
        train = TrainSpec.from_json(job["train"])
        ev = evaluate(spec, train, self.task, device=self.device)
        return {
            "ok": True,
            "objectives": ev.objectives,
            "curve": ev.curve,
            "wall_time_s": ev.wall_time_s,
            "epochs_trained": ev.epochs_trained,
            "weights": safetensors_bytes(ev.state, metadata={"arch_id": spec.arch_id}) if ev.state else None,
        }
