"""A zero-cost evaluator (no training), pickled by value to Ray's workers."""

import hashlib
import json


class ZeroCost:
    def setup(self, threads, device):
        pass

    def __call__(self, job):
        h = int(hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:8], 16)
        width = job["arch"]["hidden_width"]
        return {"ok": True, "objectives": {"accuracy": (h % 1000) / 1000, "params": float(width * 10),
                                           "bandwidth": float(width * 40), "latency_ms": 0.0},
                "epochs_trained": 1 + h % 3}


def ship():
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Curves:
    """No training either, but a learning curve per epoch that obeys the early-stopping rules of the job.

    Validation accuracy rises with the width and the epoch, so wide candidates dominate narrow
    ones on accuracy while costing more: the rung rule has real decisions to make.
    """

    def setup(self, threads, device):
        pass

    def __call__(self, job):
        from nas.evaluators.worker import stops

        width, epochs = job["arch"]["hidden_width"], job["train"]["epochs"]
        rules = job.get("stop_rules") or {}
        curve = []
        for epoch in range(1, epochs + 1):
            acc = min(0.99, width / 600 + 0.05 * epoch)
            curve.append({"epoch": epoch, "train_loss": 1.0 / epoch, "val_accuracy": acc})
            if epoch < epochs and stops(rules.get(str(epoch)), acc):
                return {"ok": True, "stopped_early": True, "curve": curve, "epochs_trained": epoch,
                        "objectives": {"params": float(width * 10), "bandwidth": float(width * 40),
                                       "val_accuracy": acc}}
        return {"ok": True, "curve": curve, "epochs_trained": epochs,
                "objectives": {"accuracy": acc, "params": float(width * 10), "bandwidth": float(width * 40),
                               "latency_ms": 0.0}}
