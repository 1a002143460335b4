"""What each stored objective means, for every reader (no torch): which split a score comes from.

Since evaluator version 3 (2026-12-07) a candidate's objectives hold the **validation** split's score under
the metric's own name (``accuracy``, ``psnr``) and ``bandwidth_expected`` from the validation split's exits:
what the sampler, the front, the hypervolume and every pick read. The test split's figures sit beside them
with ``TEST_PREFIX`` (``test_accuracy``, ``test_psnr``, ``test_bandwidth_expected``, ``test_exit_counts``),
for the record only. Versions 1 and 2 stored the test score under the metric's own name, and selected on it.
"""

from __future__ import annotations

EVALUATOR_VERSION = 3  # the version this nas scores with (see nas.evaluators.train for what each changed)
FIRST_VALIDATION_VERSION = 3  # the first evaluator version whose score objectives are validation scores
TEST_PREFIX = "test_"  # objectives measured on the test split
SCORES = ("accuracy", "psnr")  # the objectives that score a study, in order of preference


def is_record_only(key: str) -> bool:
    """A stored objective no selection may read: a test split's figure."""
    return key.startswith(TEST_PREFIX)


def evaluator_version(train_key: str | None) -> int:
    """The evaluator version a stored ``train_key`` carries (``…​.eN``; ``nas.search.keys.evaluation_key``);
    1 for a key stored before versions were recorded."""
    _, sep, tail = (train_key or "").rpartition(".e")
    return int(tail) if sep and tail.isdigit() else 1


def scores_on_test(objectives: dict | None, version: int, metrics) -> dict[str, float]:
    """A candidate's test-split figures, by metric name (``{"accuracy": 0.93, "bandwidth_expected": …}``),
    from its stored ``objectives``: the ``test_`` keys; before ``FIRST_VALIDATION_VERSION``, the score itself
    (then a test score) under its own name."""
    objectives = objectives or {}
    out = {k[len(TEST_PREFIX):]: v for k, v in objectives.items()
           if is_record_only(k) and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if version < FIRST_VALIDATION_VERSION:
        for m in SCORES:
            if m in objectives and m in metrics:
                out[m] = objectives[m]
    return out
