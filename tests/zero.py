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
                                           "bandwidth": float(width * 40), "latency_ms": 0.0}}


def ship():
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
