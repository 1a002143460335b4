"""Candidates that fail: the failure and its reason are recorded, the search goes on, nothing is lost."""

import json
import re
import subprocess
import sys

import optuna
import pytest
import sqlalchemy as sa

import faults
from child import run_child
from nas.search.store.storage import optuna_storage

pytestmark = pytest.mark.slow

SPACE = """\
name: faults
task: {dataset: digits}
space: {hidden_width: [9, 10, 11, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256], depth: 1}
train: {epochs: 2, lr: {float: [1.0e-3, 1.0e-2], log: true}}
search: {sampler: random, trials: 5, workers: 2, seed: 0}
"""


def test_each_fault_is_recorded_and_the_search_goes_on(in_tmp):
    url = f"sqlite:///{in_tmp / 'nas.db'}"
    study = optuna.create_study(study_name="faults", storage=optuna_storage(url),
                                directions=["maximize", "minimize", "minimize"])
    for width in faults.FAULTS:  # the first four candidates are the four faults, in this order
        study.enqueue_trial({"hidden_width": width})
    (in_tmp / "faults.yaml").write_text(SPACE)
    summary = run_child(SPACE, url, "faults", "m.FaultyEvaluator('digits', 'classification')", cwd=in_tmp)
    assert summary["complete"] == 5
    engine = sa.create_engine(url)
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT trial_number, state, error, arch FROM nas_candidates")).all()
        optuna_states = dict(c.execute(sa.text("SELECT number, state FROM trials")).all())
    by_width = {}
    for number, state, error, arch in rows:
        width = json.loads(arch)["hidden_width"]
        by_width.setdefault(width, []).append((number, state, error))
        assert optuna_states[number] == state
    for width, expected in faults.EXPECTED.items():
        number, state, error = by_width[width][0]
        assert state == "FAIL" and expected in error, (width, error)
    complete = [r for r in rows if r.state == "COMPLETE"]
    assert len(complete) == 5 and all(json.loads(r.arch)["hidden_width"] not in faults.FAULTS for r in complete)

    shown = subprocess.run([sys.executable, "-m", "nas.cli", "show", "faults", "--format", "json"],
                           capture_output=True, text=True, cwd=in_tmp)
    errors = {t["number"]: t["error"] for t in json.loads(shown.stdout)["trials"] if t["state"] == "FAIL"}
    for width, expected in faults.EXPECTED.items():
        assert expected in errors[by_width[width][0][0]]
    table = subprocess.run([sys.executable, "-m", "nas.cli", "show", "faults", "--all"],
                           capture_output=True, text=True, cwd=in_tmp)
    assert "injected failure inside HourglassBlock" in table.stdout


def test_time_limit_fails_candidates_and_too_many_failures_stop_the_run(in_tmp):
    text = ("name: slow\ntask: {dataset: digits}\nspace: {hidden_width: 64}\n"
            "train: {epochs: 100000, timeout_s: 0.2, lr: {float: [1.0e-3, 1.0e-2]}}\n"
            "search: {sampler: random, trials: 2, workers: 2, seed: 0}\n")
    (in_tmp / "slow.yaml").write_text(text)
    proc = subprocess.run([sys.executable, "-m", "nas.cli", "run", "slow.yaml", "--no-progress"],
                          capture_output=True, text=True, cwd=in_tmp, timeout=300)
    assert proc.returncode == 1
    # the limit is 10; the two workers' ends can arrive in one poll, both recorded before the count is checked
    assert re.search(r"nas: run failed: stopped after 1[01] failed candidates", proc.stderr), proc.stderr
    assert "exceeded train.timeout_s = 0.2 s" in proc.stderr
    engine = sa.create_engine("sqlite:///nas.db")
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT state, error FROM nas_candidates")).all()
        run_state = c.execute(sa.text("SELECT state, message FROM nas_runs")).one()
    assert len(rows) >= 10 and all(r.state == "FAIL" for r in rows)
    assert sum("exceeded train.timeout_s" in r.error for r in rows) >= 10
    assert run_state.state == "FAILED"


POLL_ORDER = """
import ray
from ray.util.queue import Queue
from nas.search.execution.dispatch import Message, WorkerPool
ray.init(address="local", num_cpus=1, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
pool = WorkerPool(1, evaluator=None)
pool.results = Queue()
# what a worker does before it dies: a blocking put of "started"; then Tune reports the death
pool.results.put(Message("started", 12, "host:node:123:trial_a"))
pool._events.put(Message("worker_died", worker="trial_a"))
print([m.kind for m in pool.poll(timeout=1.0)])
pool.close()  # kills the queue's actor and removes the pool's folder; the Ray started here is ours to stop
ray.shutdown()
"""


def test_a_death_is_read_after_the_start_it_ends():
    # Both in one poll (the driver was busy when they came): "started" must be handled first, or the
    # dead worker's candidate is never failed and the run waits for it forever.
    proc = subprocess.run([sys.executable, "-c", POLL_ORDER], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "['started', 'worker_died']"
