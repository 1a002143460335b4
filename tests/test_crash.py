"""`nas run` killed with SIGKILL mid-study, then the same command again: nothing completed is lost."""

import json
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.slow

SPACE = """\
name: crash
task: {dataset: digits}
space: {hidden_width: {int: [64, 256], log: true}, depth: {int: [1, 2]}}
train: {epochs: 6}
search: {sampler: random, trials: 6, workers: 2, seed: 0}
pruning: false
"""


def states(url):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return dict(c.execute(sa.text("SELECT number, state FROM trials")).all())
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # the run has not made its tables yet
        return {}
    finally:
        engine.dispose()


def completed_values(url):
    engine = sa.create_engine(url)
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT trial_number, objectives, weights_path FROM nas_candidates "
                                 "WHERE state = 'COMPLETE'")).all()
    engine.dispose()
    return {r[0]: (json.loads(r[1]) if isinstance(r[1], str) else r[1], r[2]) for r in rows}  # PG gives JSON parsed


def test_sigkill_then_same_command_loses_nothing(tmp_path, storage_url):
    (tmp_path / "crash.yaml").write_text(SPACE)
    db = storage_url
    cmd = [sys.executable, "-m", "nas.cli", "run", "crash.yaml", "--no-progress", "--storage", storage_url]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        st = states(db)
        if sum(v == "COMPLETE" for v in st.values()) >= 2 and "RUNNING" in st.values():
            break
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.3)
    else:
        pytest.fail("no state with completed and running candidates was seen")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = completed_values(db)
    # RUNNING in Optuna; one nas had already recorded complete (killed between its record and Optuna's tell)
    # is told complete on resume, every other one is failed and queued again
    at_kill = states(db)
    running = [n for n, s in at_kill.items() if s == "RUNNING" and n not in before]
    told = [n for n, s in at_kill.items() if s == "RUNNING" and n in before]
    assert before and running

    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    after = completed_values(db)
    assert len(after) == 6, "exactly the requested number of completed candidates"
    for number, (objectives, path) in before.items():  # before: what nas recorded complete at the kill
        assert after[number] == (objectives, path), "a candidate completed before the kill changed"
    final = states(db)
    assert all(final[n] == "FAIL" for n in running)
    assert all(final[n] == "COMPLETE" for n in told)
    engine = sa.create_engine(db)
    with engine.connect() as c:
        errors = [r[0] for r in c.execute(sa.text(
            "SELECT error FROM nas_candidates WHERE state = 'FAIL'")).all()]
        runs = [r[0] for r in c.execute(sa.text("SELECT state FROM nas_runs ORDER BY id")).all()]
    engine.dispose()
    assert errors and all(e.startswith("interrupted") for e in errors)
    assert runs == ["INTERRUPTED", "FINISHED"]


def test_an_end_nas_recorded_but_optuna_never_heard_is_told_on_resume(tmp_path):
    """A run killed between nas's own record of a candidate's end and Optuna's tell: the next run tells Optuna
    the recorded end (values, or the state with its reason) instead of training the candidate again."""
    import optuna

    from nas.search.store.models import Candidate, Run
    from nas.search.execution.driver import _recover_interrupted
    from nas.search.store.storage import Store, optuna_storage

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    metrics = ["accuracy", "params", "bandwidth"]
    study = optuna.create_study(study_name="s", storage=optuna_storage(url),
                                directions=["maximize", "minimize", "minimize"])
    store = Store(url)
    rows = {"COMPLETE": ({"accuracy": 0.9, "params": 10.0, "bandwidth": 40.0, "latency_ms": 0.1}, None),
            "PRUNED": ({"params": 10.0, "bandwidth": 40.0}, "stopped early at epoch 2: dominated"),
            "FAIL": (None, "RuntimeError: boom"),
            "INTERRUPTED": (None, "interrupted: the nas run was stopped while this candidate was running; re-queued"),
            "RUNNING": (None, None)}
    asked = {state: study.ask({"hidden_width": optuna.distributions.IntDistribution(1, 64)}) for state in rows}
    trials = {state: t.number for state, t in asked.items()}
    with store.session() as s:  # never open across an Optuna call (SQLite would lock Optuna out)
        run = Run(study_name="s", space_text="", space_sha="", sampler="random", workers=1, target_trials=5,
                  host="h", pid=1, nas_version="0")
        s.add(run)
        s.flush()
        for state, (objectives, error) in rows.items():
            t = asked[state]
            s.add(Candidate(run_id=run.id, study_name="s", trial_number=t.number, trial_id=t._trial_id, arch_id="a",
                            train_key="t", task_key="k", arch={}, train={}, values=t.params,
                            state="FAIL" if state == "INTERRUPTED" else state,
                            objectives=objectives, error=error))
    requeued, told = _recover_interrupted(store, study, "s", metrics)
    assert requeued == 2  # the one whose end nas never saw, and the one a Ctrl-C failed to be tried again
    assert sorted(told) == sorted(trials[s] for s in ("COMPLETE", "PRUNED", "FAIL"))
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert by_number[trials["COMPLETE"]].state == optuna.trial.TrialState.COMPLETE
    assert by_number[trials["COMPLETE"]].values == [0.9, 10.0, 40.0]
    assert by_number[trials["PRUNED"]].state == optuna.trial.TrialState.PRUNED
    assert by_number[trials["PRUNED"]].system_attrs["fail_reason"].startswith("stopped early")
    assert by_number[trials["FAIL"]].state == optuna.trial.TrialState.FAIL
    assert by_number[trials["FAIL"]].system_attrs["fail_reason"] == "RuntimeError: boom"
    assert by_number[trials["RUNNING"]].state == optuna.trial.TrialState.FAIL
    assert by_number[trials["INTERRUPTED"]].state == optuna.trial.TrialState.FAIL
    waiting = [t for t in by_number.values() if t.state == optuna.trial.TrialState.WAITING]
    assert sorted(t.user_attrs["nas:retry_of"] for t in waiting) == sorted([trials["RUNNING"], trials["INTERRUPTED"]])
