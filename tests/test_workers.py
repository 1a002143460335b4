"""How many candidates train at once when the space file and the command leave it open."""

import pytest

from nas.search.execution.dispatch import WORKERS_PER_GPU, default_workers
from nas.spaces import parse_space


@pytest.mark.parametrize("cpus, gpus, expected", [
    (2, 0, 1),  # no GPU: one worker, the default before GPUs counted
    (64, 0, 1),
    (16, 1, WORKERS_PER_GPU),  # the H200 machine the default was measured on (16 cores, 1 GPU): 8
    (4, 1, 4),  # one worker per CPU at most: each takes one
    (64, 4, 4 * WORKERS_PER_GPU),  # a cluster of 4 GPUs
    (16, 0.5, WORKERS_PER_GPU // 2),  # a fractional GPU share
    (1, 1, 1),
])
def test_default_workers_for_a_stated_cluster(cpus, gpus, expected):
    assert default_workers(cpus, gpus) == expected


def test_a_space_without_workers_leaves_the_count_to_the_cluster():
    space = parse_space("task: {dataset: digits}\nspace: {depth: 1}\n")
    assert space.search.workers is None
    assert parse_space("task: {dataset: digits}\nspace: {depth: 1}\nsearch: {workers: 3}\n").search.workers == 3


@pytest.mark.slow  # trains tiny candidates in 1 and 2 processes (20 s)
def test_the_gpu_training_benchmark_runs_every_path_in_a_dry_run():
    """benchmarks/gpu_train.py, which measured WORKERS_PER_GPU, runs only where a GPU is lent: its dry run (the CPU,
    2 epochs) checks that each part runs (kernels on and off, the profile, workers sharing) and prints its headline."""
    import math
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_train.py"
    proc = subprocess.run([sys.executable, str(script), "--dry-run", "--spaces", "quickstart", "--workers", "1,2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = dict(pair.split("=", 1) for pair in proc.stdout.strip().splitlines()[-1].split())
    assert last["gpu"] == "dry-run-cpu" and int(last["workers_per_gpu"]) in (1, 2)
    for key in ("quickstart_auto_per_min", "quickstart_torch_per_min", "quickstart_step_ms", "workers2_per_min"):
        assert math.isfinite(float(last[key])) and float(last[key]) > 0, key
