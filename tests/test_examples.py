"""Every example space file works: its candidates build and train, and one runs whole with `nas run`.

For each file in examples/: sampled candidates freeze against the real task's shape, build, and
are costed on the meta device; a few of them train one epoch on a slice of the task. The combined
example (every family at once) runs through the CLI with a tiny budget.
"""

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml

from nas.evaluators.datasets import Task, load_task
from nas.evaluators.train import evaluate
from nas.search.execution.driver import _Suggest
from nas.spaces import build, load_space, model_cost
from child import nas_cli

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))
EXAMPLES += sorted((EXAMPLES[0].parent / "papers").glob("*.yaml"))  # the seed papers' experiments (benchmarks/papers.py)


def test_there_is_an_example_per_family():
    assert {p.stem for p in EXAMPLES} >= {"quickstart", "hourglass", "fpe", "moe", "mixers", "combined"}


def _slice(task: Task, n: int = 256) -> Task:
    return Task(task.dataset, task.kind, task.d_in, task.d_out, task.x_train[:n], task.y_train[:n],
                task.x_val[:64], task.y_val[:64], task.x_test[:64], task.y_test[:64], task.in_shape,
                task.feature_groups)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_candidates_build_and_train(path, tmp_path):
    torch.set_num_threads(1)
    dataset = yaml.safe_load(path.read_text())["task"]["dataset"]
    if dataset.startswith("npz:") and not (path.parent / dataset[4:]).exists():  # the user's own data (colour.yaml):
        rng = np.random.default_rng(0)  # stand-in images of CIFAR-10's shape, as benchmarks/cifar_npz.py writes
        np.savez(tmp_path / dataset[4:], X=rng.random((300, 32, 32, 3), dtype=np.float32), y=rng.integers(0, 10, 300))
        path = tmp_path / path.name
        path.write_text(next(p for p in EXAMPLES if p.name == path.name).read_text())
    space = load_space(path)
    options = space.task.sat.model_dump() if space.task.sat is not None else None
    task = load_task(space.task.dataset, space.task.kind, path.parent, options)
    space.check_task(task.d_in, task.in_shape, task.feature_groups)
    study = optuna.create_study(directions=list(space.objectives.values()),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    seen = 0
    for i in range(40):
        trial = study.ask()
        arch, train = space.freeze(space.sample(_Suggest(trial)), task.d_in, task.d_out, task.in_shape)
        cost = model_cost(arch)
        with torch.device("meta"):
            assert sum(p.numel() for p in build(arch).parameters()) >= 0
        assert cost.params > 0 and cost.weight_bytes >= 0 and cost.act_bytes > 0
        if i < 3:  # three candidates train an epoch on a slice of the data
            small = _slice(task)
            ev = evaluate(arch, type(train)(**{**train.to_json(), "epochs": 1, "batch_size": 64}), small)
            score = "psnr" if space.task.kind != "classification" else "accuracy"
            assert score in ev.objectives and ev.objectives["params"] == cost.params
            seen += 1
    assert seen == 3


@pytest.mark.slow
def test_the_combined_example_runs_with_nas_run(tmp_path):
    path = next(p for p in EXAMPLES if p.stem == "combined")
    doc = yaml.safe_load(path.read_text())
    doc["train"]["epochs"] = 1
    doc["search"].update(trials=3, workers=1)
    doc["task"]["dataset"] = "digits"  # the same families on the small digits: patches 4 (of 8×8) and rows
    doc["space"]["patch"]["choice"] = [0, 4]
    (tmp_path / "combined.yaml").write_text(yaml.safe_dump(doc))
    proc = nas_cli("run", "combined.yaml", "--no-progress", cwd=tmp_path, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(nas_cli("show", "combined", "--format", "json", cwd=tmp_path).stdout)
    assert sum(t["state"] == "COMPLETE" for t in report["trials"]) == 3
