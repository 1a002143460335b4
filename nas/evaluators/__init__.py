"""Tasks, datasets, the training loop and the objectives. Never chooses what to try next."""

from nas.evaluators.datasets import Task, load_task
from nas.evaluators.train import CandidateFailed, Evaluation, evaluate, static_objectives

__all__ = ["CandidateFailed", "Evaluation", "Task", "evaluate", "load_task", "static_objectives"]
