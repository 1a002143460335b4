"""Faults injected into the real training path, inside Ray workers (simulated: the failures are real
exceptions raised from a forward hook of the first block, chosen by the candidate's hidden width).

Imported by tests and pickled by value to the workers (see ``ship``).
"""

import math
import os

import torch

import nas.evaluators.train as train_mod
from nas.evaluators.worker import TrainEvaluator


def _raise(module, inputs, output):
    raise RuntimeError("injected failure inside HourglassBlock")


def _oom(module, inputs, output):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")


def _nan(module, inputs, output):
    return output * math.nan


def _die(module, inputs, output):
    os._exit(3)  # the worker process dies mid-candidate, as an OOM kill would do


FAULTS = {9: _raise, 10: _oom, 11: _nan, 12: _die}
EXPECTED = {
    9: "RuntimeError: injected failure inside HourglassBlock",
    10: "OutOfMemoryError: CUDA out of memory",
    11: "CandidateFailed: non-finite loss",
    12: "the worker process running it died",
}


class FaultyEvaluator(TrainEvaluator):
    def setup(self, threads, device):
        super().setup(threads, device)
        real_build = train_mod.build

        def build(spec, **kwargs):
            model = real_build(spec, **kwargs)
            fault = FAULTS.get(spec.hidden_width)
            if fault is not None:
                model.blocks[0].register_forward_hook(fault)
            return model

        train_mod.build = build


def ship():
    """Let Ray's workers unpickle this module's classes without importing it."""
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
