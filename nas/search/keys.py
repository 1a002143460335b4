"""What a stored result depends on, as keys: the task (``TaskRef``) and the training with the evaluator's version
(``evaluation_key``); with the architecture's id they make the reuse key.

A candidate's ``task_key`` (stored in ``nas_candidates``) is ``TaskRef.key()``: the kind and the dataset, the
dataset's own options (``sat``), an npz file's absolute path, and the held-out splits where they are not the
defaults. ``TaskRef.from_key`` reads it back, so a later command (``nas confirm``) trains on the same task
without the space file's folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.evaluators.datasets import TEST_FRACTION, VAL_FRACTION
from nas.evaluators.names import EVALUATOR_VERSION
from nas.spaces import TrainSpec

_SPLITS = "|test="


@dataclass(frozen=True)
class TaskRef:
    kind: str
    dataset: str  # digits | mnist5k | sat | npz:ABSOLUTE_PATH
    options: tuple | None = None  # sorted (key, value) pairs of the dataset's own settings (sat; an npz's layout)
    test: float = TEST_FRACTION
    validation: float = VAL_FRACTION

    @classmethod
    def of_space(cls, space, base_dir: str | Path) -> "TaskRef":
        """The task a space file describes; an npz path is made absolute from ``base_dir`` (the file's folder)."""
        dataset = space.task.dataset
        options = None
        if dataset.startswith("npz:"):
            dataset = f"npz:{(Path(base_dir) / Path(dataset[4:]).expanduser()).resolve()}"
            if space.task.layout is not None:  # how its images are laid out (read from the shape without it)
                options = (("layout", space.task.layout),)
        elif space.task.sat is not None:
            options = tuple(sorted(space.task.sat.model_dump().items()))
        return cls(space.task.kind, dataset, options, float(space.task.test), float(space.task.validation))

    @property
    def options_dict(self) -> dict[str, Any] | None:
        return None if self.options is None else dict(self.options)

    @property
    def splits(self) -> tuple[float, float]:
        return self.test, self.validation

    def key(self) -> str:
        """``kind|dataset[|{options json}][|test=T,validation=V]`` (the splits only where not the defaults)."""
        key = f"{self.kind}|{self.dataset}"
        if self.options is not None:
            key += "|" + json.dumps(dict(self.options), sort_keys=True, separators=(",", ":"))
        if self.splits != (TEST_FRACTION, VAL_FRACTION):
            key += f"{_SPLITS}{self.test!r},validation={self.validation!r}"  # exact: the key reproduces the split
        return key

    @classmethod
    def from_key(cls, key: str) -> "TaskRef":
        """The task of a stored ``task_key`` (the inverse of ``key``); ValueError for a key it cannot read."""
        kind, sep, rest = key.partition("|")
        if not sep or not rest:
            raise ValueError(f"not a task key: {key!r}")
        test, validation = TEST_FRACTION, VAL_FRACTION
        if _SPLITS in rest:
            rest, _, splits = rest.rpartition(_SPLITS)
            t, _, v = splits.partition(",validation=")
            test, validation = float(t), float(v)
        options = None
        if "|{" in rest:
            rest, _, text = rest.partition("|{")
            options = tuple(sorted(json.loads("{" + text).items()))
        return cls(kind, rest, options, test, validation)

    def evaluator(self):
        """The worker's evaluator for this task (``nas.evaluators.worker.TrainEvaluator``)."""
        from nas.evaluators.worker import TrainEvaluator

        return TrainEvaluator(self.dataset, self.kind, None, self.options_dict, self.splits)


def evaluation_key(train: TrainSpec) -> str:
    """What is stored as a candidate's ``train_key``: the training settings' hash and the evaluator's version.

    With the arch_id and the task key it makes the reuse key: a result is reused only for the same
    architecture, trained the same way, on the same task, by an evaluator that scores it the same
    (``nas.evaluators.names.EVALUATOR_VERSION``), so results of an earlier evaluator are never served.
    """
    return f"{train.train_key}.e{EVALUATOR_VERSION}"
