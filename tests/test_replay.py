"""Replaying a recorded table through nas's own driver (nas.search.replay): no Ray, a simulated clock."""

import json
import shutil
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from nas.search.replay import NotInTable, ReplayEvaluator, SimulatedPool, table_from_study
from nas.search.execution.driver import RunOptions, run
from nas.search.store.storage import optuna_storage
from nas.spaces import load_space

FIXTURE = Path(__file__).parent / "fixtures" / "release-2026-12-04"


@pytest.fixture
def table(tmp_path):
    """The table of the release fixture's study: 10 candidates trained by a real `nas run`."""
    shutil.copy(FIXTURE / "nas.db", tmp_path / "recorded.db")
    t = table_from_study(f"sqlite:///{tmp_path / 'recorded.db'}", "release")
    assert len(t["candidates"]) == 10
    return t


def replay(tmp_path, table, enqueue=(), trials=10, workers=2, pruning=None, clock="seconds", budget_s=None,
           timeout_s=None, delay_s=0.0):
    """A replayed run of the fixture's space (``enqueue``: values to enqueue first, if the study is new;
    ``delay_s``: wall seconds every poll of the workers takes)."""
    import time

    space = load_space(FIXTURE / "space.yaml")
    space.pruning = pruning
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    pools = []

    def pool(n, evaluator):
        pools.append(SimulatedPool(n, evaluator))
        if delay_s:
            poll = pools[-1].poll
            pools[-1].poll = lambda timeout: (time.sleep(delay_s), poll(timeout))[1]
        return pools[-1]

    study = optuna.create_study(study_name="release", storage=optuna_storage(url),
                                directions=list(space.objectives.values()), load_if_exists=True)
    for params in enqueue:
        study.enqueue_trial(params)
    stop = None if budget_s is None else (lambda: pools[0].spent >= budget_s)
    summary = run(space, RunOptions(storage=url, trials=trials, workers=workers, progress=False,
                                    evaluator=ReplayEvaluator(table, clock=clock), dims=(64, 10), in_shape=(8, 8),
                                    pool=pool, stop_when=stop, timeout_s=timeout_s))
    return summary, pools[0], sa.create_engine(url)


def recorded_values():
    """The sampled values of the fixture's 10 candidates, in trial order (to enqueue them again)."""
    import sqlite3

    with sqlite3.connect(f"file:{FIXTURE / 'nas.db'}?immutable=1", uri=True) as c:  # never writes the fixture
        rows = c.execute('SELECT "values" FROM nas_candidates ORDER BY trial_number').fetchall()
    return [json.loads(v) for (v,) in rows]


def test_a_replayed_study_gives_exactly_the_recorded_objectives(tmp_path, table):
    params = recorded_values()
    summary, pool, engine = replay(tmp_path, table, enqueue=params)
    assert summary.complete == 10 and summary.failed == 0
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT arch, train, objectives, wall_time_s FROM nas_candidates")).all()
    from nas.search.execution.pruning import dense_until
    from nas.search.replay import key_of

    for arch, train, objectives, wall in rows:
        entry = table["candidates"][key_of(json.loads(arch), json.loads(train))]
        objectives, recorded = json.loads(objectives), entry["objectives"]
        # the table was recorded by evaluator 2 (accuracy: the test score); the replay reports what evaluator 3
        # does: accuracy the best validation score (what the search selects on), the test score beside it
        assert objectives["test_accuracy"] == recorded["accuracy"]
        counted = [p["val_accuracy"] for p in entry["curve"] if p["epoch"] >= max(1, dense_until(entry["arch"], int(entry["train"]["epochs"])))]
        assert objectives["accuracy"] == max(counted)
        assert {k: v for k, v in objectives.items() if "accuracy" not in k} == {
            k: v for k, v in recorded.items() if k != "accuracy"}
        assert wall == pytest.approx(sum(p["seconds"] for p in entry["curve"]))
    # the simulated clock: two workers, so the run lasts at least half the recorded seconds, at most all
    total = sum(sum(p["seconds"] for p in e["curve"]) for e in table["candidates"].values())
    assert total / 2 <= pool.now <= total


def test_results_arrive_in_the_order_their_training_would_finish():
    class Fixed:
        def setup(self, threads, device):
            pass

        def __call__(self, job):
            return {"ok": True, "wall_time_s": job["seconds"], "objectives": {}}

    pool = SimulatedPool(2, Fixed())
    pool.start()
    for number, seconds in enumerate([5.0, 1.0, 1.0, 1.0]):
        pool.submit({"trial_number": number, "seconds": seconds})
    order = []
    while True:
        results = [m for m in pool.poll(0) if m.kind == "result"]
        if not results:
            break
        order += [(m.trial_number, pool.now) for m in results]
    # worker A runs 0 (0-5 s); worker B runs 1 (0-1), then 2 (1-2), then 3 (2-3)
    assert order == [(1, 1.0), (2, 2.0), (3, 3.0), (0, 5.0)]


def test_a_candidate_outside_the_table_is_a_clear_error(tmp_path, table):
    del table["candidates"][next(iter(table["candidates"]))]
    params = recorded_values()
    with pytest.raises(NotInTable, match=r"has no candidate \w+\|\w+ \(arch_id\|train_key\)"):
        replay(tmp_path, table, enqueue=params)


def test_early_stopping_is_replayed_from_the_recorded_curves(tmp_path, table):
    from nas.search.replay import key_of
    from nas.spaces.schema import PruningConfig

    summary, pool, engine = replay(tmp_path, table, enqueue=recorded_values(), workers=1,
                                   pruning=PruningConfig(min_epochs=1, reduction_factor=2))
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT arch, train, state, curve, epochs_trained, wall_time_s, objectives "
                                 "FROM nas_candidates ORDER BY trial_number")).all()
    stopped = [r for r in rows if r.state == "PRUNED"]
    assert stopped and summary.complete + len(stopped) == 10  # one worker: each judged against all before it
    for r in stopped:  # stopped at the rung (epoch 1) with the recorded curve up to it and its recorded seconds
        entry = table["candidates"][key_of(json.loads(r.arch), json.loads(r.train))]
        assert r.epochs_trained == 1 and json.loads(r.curve) == entry["curve"][:1]
        assert r.wall_time_s == pytest.approx(entry["curve"][0]["seconds"])
        assert json.loads(r.objectives)["val_accuracy"] == entry["curve"][0]["val_accuracy"]
    # one worker: the clock is the sum of what was trained, less what early stopping saved
    assert pool.now == pytest.approx(sum(r.wall_time_s for r in rows))


def test_a_budget_of_training_seconds_ends_the_study(tmp_path, table):
    """``RunOptions.stop_when``: once the replayed candidates' training seconds reach the budget no new one is
    asked for, and those in flight finish; the CPU-seconds clock times them (here half the wall seconds)."""
    for entry in table["candidates"].values():
        for p in entry["curve"]:
            p["cpu_seconds"] = p["seconds"] / 2
    cpu = {k: sum(p["cpu_seconds"] for p in e["curve"]) for k, e in table["candidates"].items()}
    budget = sum(cpu.values()) / 3
    summary, pool, engine = replay(tmp_path, table, enqueue=recorded_values(), workers=1, clock="cpu_seconds",
                                   budget_s=budget)
    with engine.connect() as c:
        walls = [w for (w,) in c.execute(sa.text("SELECT wall_time_s FROM nas_candidates WHERE state = 'COMPLETE' "
                                                 "ORDER BY trial_number"))]
    assert 0 < summary.complete < 10
    assert pool.spent == pytest.approx(sum(walls)) and pool.spent >= budget
    # one worker, one candidate in flight (the next is asked once the last is recorded): none asked after the
    # budget, so every candidate but the last started below it
    assert sum(walls[:-1]) < budget
    assert all(any(w == pytest.approx(v) for v in cpu.values()) for w in walls)  # timed by the CPU seconds


def test_a_run_ends_when_the_sampler_only_proposes_trained_architectures(tmp_path, table, capfd, monkeypatch):
    """A sampler that keeps proposing architectures the study trained already (a converged TPE on a small finite
    space) would get them reused at no training, counting in trials and costing driver time: after
    REPEATS_STOP such proposals in a row the run ends, saying why, with what it has."""
    from nas.search.execution import driver as runner

    monkeypatch.setattr(runner, "REPEATS_STOP", 5)
    first = recorded_values()[0]
    summary, pool, engine = replay(tmp_path, table, enqueue=[first] * 13, trials=13, workers=1)
    engine.dispose()
    assert summary.ended_by == "converged"
    assert summary.complete == 6 and summary.reused == 5  # the first trained, then 5 repeats: no 6th


def test_a_time_budget_stops_starting_candidates_and_the_study_resumes(tmp_path, table):
    """``--timeout`` (``RunOptions.timeout_s``): no candidate starts once the budget is spent; those running
    finish; the summary says so; the same study resumes to its trials."""
    # two workers: four candidates in flight, one result a poll (each refilled), each poll 0.25 s: by the
    # budget's end (0.4 s) at most two polls have passed and at most six of the ten have started, however fast
    # the machine (with 0.05 s polls a fast machine started all ten in time)
    first, _, engine = replay(tmp_path, table, enqueue=recorded_values(), trials=10, timeout_s=0.4, delay_s=0.25)
    engine.dispose()
    assert first.ended_by == "timeout" and 0 < first.complete + first.stopped < 10
    again, _, engine = replay(tmp_path, table, trials=10)  # the enqueued candidates not yet asked for remain
    with engine.connect() as c:
        states = [r[0] for r in c.execute(sa.text("SELECT state FROM nas_candidates"))]
    engine.dispose()
    assert again.ended_by == "trials" and again.complete + again.stopped == 10
    assert states.count("COMPLETE") == 10 and "QUEUED" not in states and "RUNNING" not in states


def test_candidates_waiting_for_a_worker_are_queued_not_running(tmp_path, table):
    """The driver keeps two candidates per worker in flight: those no worker has taken are QUEUED (nas ls's
    queued column), so running never counts more than the workers."""
    from nas.search.read.results import list_studies

    url = f"sqlite:///{tmp_path / 'replay.db'}"
    seen = []

    def look():  # called by the driver between polls (stop_when): what nas ls says then
        if (tmp_path / "replay.db").exists():
            counts = next((s["counts"] for s in list_studies(url) if s["study"] == "release"), None)
            if counts:
                seen.append((counts["RUNNING"], counts["QUEUED"]))
        return False

    import nas.search.execution.driver as driver
    from nas.search.replay import ReplayEvaluator, SimulatedPool

    space = load_space(FIXTURE / "space.yaml")
    study = optuna.create_study(study_name="release", storage=optuna_storage(url),
                                directions=list(space.objectives.values()))
    for params in recorded_values():
        study.enqueue_trial(params)
    summary = driver.run(space, driver.RunOptions(
        storage=url, trials=10, workers=2, progress=False, evaluator=ReplayEvaluator(table), dims=(64, 10),
        in_shape=(8, 8), pool=lambda n, ev: SimulatedPool(n, ev), stop_when=look))
    assert summary.complete + summary.stopped == 10
    assert seen and all(running <= 2 for running, _ in seen)
    assert any(queued > 0 for _, queued in seen) and max(r + q for r, q in seen) <= 4
