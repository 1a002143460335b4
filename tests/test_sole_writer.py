"""The driver's Optuna storage (``nas.search.store.sole_writer``): the study's trials read from memory, every
write in the database at once. What a user relies on: the same proposals as Optuna's own storage, and the
database (what ``nas show``, the dashboard and a resumed run read) holding exactly what the run saw."""

import hashlib
import json

import optuna
import pytest

from nas.search.replay import SimulatedPool
from nas.search.store.sole_writer import SoleWriterStorage
from nas.search.store.storage import optuna_storage
from nas.spaces import parse_space

SPACE = """\
name: sole
task: {dataset: digits}
objectives: {accuracy: maximize, params: minimize, bandwidth: minimize}
space:
  lift: [fixed_random, none]
  lift_width: {int: [64, 1024], log: true, when: {lift: [fixed_random]}}
  hidden_width: {int: [8, 512], log: true}
  depth: {int: [1, 4]}
  activation: [relu, gelu, silu]
train: {epochs: 10, lr: {float: [1.0e-4, 1.0e-2], log: true}}
search: {sampler: tpe, trials: 60, workers: 4, seed: 3}
pruning: false
"""


class HashScore:
    """Objectives from a hash of the architecture, at once; simulated seconds from it too, so results arrive
    out of order and several trials are running whenever the sampler asks."""

    def setup(self, threads, device):
        pass

    def __call__(self, job):
        h = int(hashlib.sha256(json.dumps(job["arch"], sort_keys=True).encode()).hexdigest()[:8], 16)
        width = job["arch"]["hidden_width"]
        return {"ok": True, "objectives": {"accuracy": (h % 10_000) / 10_000, "test_accuracy": 0.5,
                                           "params": float(width * 100 + h % 97),
                                           "bandwidth": float(width * 400 + h % 89), "latency_ms": 0.0},
                "curve": [], "wall_time_s": 1.0 + h % 7, "epochs_trained": 10}


def _run(url, monkeypatch, sole: bool):
    import nas.search.execution.driver as driver

    if not sole:  # Optuna's own storage, as create_study wraps an RDBStorage
        monkeypatch.setattr(driver, "SoleWriterStorage", lambda backend: backend)
    space = parse_space(SPACE, "<sole>")
    driver.run(space, driver.RunOptions(storage=url, progress=False, evaluator=HashScore(), dims=(64, 10),
                                        pool=lambda n, ev: SimulatedPool(n, ev), weights=False))
    monkeypatch.undo()
    return optuna.load_study(study_name="sole", storage=optuna_storage(url, read_only=True)).get_trials()


def _view(trials):
    return [(t.number, t.state, t.params, t.values, t.user_attrs, t.system_attrs) for t in trials]


def test_the_same_seeded_study_proposes_the_same_candidates_as_with_optunas_storage(tmp_path, monkeypatch):
    ours = _run(f"sqlite:///{tmp_path / 'a.db'}", monkeypatch, sole=True)
    theirs = _run(f"sqlite:///{tmp_path / 'b.db'}", monkeypatch, sole=False)
    assert len(ours) >= 60
    assert _view(ours) == _view(theirs)


def test_what_the_run_read_from_memory_is_what_the_database_holds(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    storage = SoleWriterStorage(optuna_storage(url))
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"],
                                sampler=optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True))
    study.enqueue_trial({"x": 0.5})
    running = []
    for i in range(30):
        t = study.ask()
        x = t.suggest_float("x", 0.0, 1.0)
        t.suggest_categorical("c", ["a", "b"])
        t.set_user_attr("i", i)
        running.append((t, x))
        if i % 3 == 2:  # a few stay running while the next ones are asked
            done, x = running.pop(0)
            study.tell(done, [x, 1 - x])
    study.tell(running.pop(0)[0], state=optuna.trial.TrialState.FAIL)
    fresh = optuna.load_study(study_name="s", storage=optuna_storage(url, read_only=True))
    mine = study.get_trials()
    assert _view(mine) == _view(fresh.get_trials())
    assert [t.datetime_complete for t in mine] == [t.datetime_complete for t in fresh.get_trials()]
    assert mine[0].params["x"] == 0.5  # the enqueued trial
    # opened again (a resumed run): the trials are read back once, the same
    again = optuna.load_study(study_name="s", storage=SoleWriterStorage(optuna_storage(url)))
    assert _view(again.get_trials()) == _view(mine)


def test_a_second_writer_of_the_study_is_an_error_not_a_silent_divergence(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    study = optuna.create_study(study_name="s", storage=SoleWriterStorage(optuna_storage(url)))
    study.ask()
    neighbour = optuna.create_study(study_name="t", storage=optuna_storage(url))
    neighbour.ask(), neighbour.ask()  # another study's trials, in the same table: no conflict
    study.ask()
    assert [t.number for t in study.trials] == [0, 1]
    other = optuna.load_study(study_name="s", storage=optuna_storage(url))
    other.ask()  # trial 2, written behind the first writer's back
    neighbour.ask()
    with pytest.raises(RuntimeError, match="another process is writing this study"):
        study.ask()



def test_a_flush_puts_a_trials_parameters_in_the_database_before_anything_refers_to_it(tmp_path):
    """The sole writer holds a trial's parameters and attributes until a flush (one transaction); the driver
    flushes before nas writes the candidate's row, and every state change flushes first."""
    from nas.search import optuna_private

    url = f"sqlite:///{tmp_path / 'e.db'}"
    study = optuna.create_study(study_name="s", storage=SoleWriterStorage(optuna_storage(url)))
    t = study.ask()
    t.suggest_float("x", 0.0, 1.0)
    t.set_user_attr("arch_id", "abc")
    reader = optuna_storage(url, read_only=True)
    stored = lambda: reader.get_trial(optuna_private.trial_id(t))  # noqa: E731
    assert stored().params == {}  # held
    optuna_private.flush(study)
    assert stored().params == t.params and stored().user_attrs == {"arch_id": "abc"}
    u = study.ask()  # held again, and written by the state change
    u.suggest_float("x", 0.0, 1.0)
    study.tell(u, 0.5)
    assert reader.get_trial(optuna_private.trial_id(u)).params == u.params
    # Optuna's checks on each write stand, made at once: a finished trial, an incompatible distribution
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        u.set_user_attr("late", 1)
    v = study.ask()
    with pytest.raises(ValueError, match="[Cc]annot set different distribution kind"):
        v.suggest_categorical("x", ["a", "b"])


@pytest.fixture
def new_york():
    """The process's local time zone set to one that is not UTC, and set back after the test whatever happens."""
    import os
    import time

    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_a_held_trial_end_is_written_with_the_callers_record_in_one_transaction_or_not_at_all(tmp_path, new_york):
    """Inside ``holding()`` a trial's end (state, values, end time) waits in memory; the driver flushes it on
    nas's own connection in the transaction that writes nas's row of the same end, so a run killed or failing
    mid-way keeps both or neither. Outside, an end is written at once."""
    import sqlalchemy as sa

    from nas.search import optuna_private

    from datetime import timezone

    url = f"sqlite:///{tmp_path / 'f.db'}"
    study = optuna.create_study(study_name="s", storage=SoleWriterStorage(optuna_storage(url)),
                                directions=["maximize", "minimize"])
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE ends (n INTEGER)"))
    reader = optuna_storage(url, read_only=True)
    ends = lambda: [r[0] for r in engine.connect().execute(sa.text("SELECT n FROM ends"))]  # noqa: E731
    t = study.ask()
    t.suggest_float("x", 0.0, 1.0)
    with optuna_private.holding(study):
        study.tell(t, [0.25, float("inf")])
    tid = optuna_private.trial_id(t)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE  # what this process reads at once
    assert reader.get_trial(tid).state == optuna.trial.TrialState.RUNNING  # not in the database yet
    with pytest.raises(RuntimeError), engine.begin() as c:  # the caller's transaction fails: neither is written
        c.execute(sa.text("INSERT INTO ends VALUES (0)"))
        optuna_private.flush(study, c)
        raise RuntimeError("the run dies here")
    assert reader.get_trial(tid).state == optuna.trial.TrialState.RUNNING and ends() == []

    u = study.ask()
    u.suggest_float("x", 0.0, 1.0)
    with optuna_private.holding(study):
        optuna_private.set_fail_reason(study, u, "stopped early")
        study.tell(u, state=optuna.trial.TrialState.PRUNED)
    with engine.begin() as c:  # both written together
        c.execute(sa.text("INSERT INTO ends VALUES (1)"))
        optuna_private.flush(study, c)
    stored = reader.get_trial(optuna_private.trial_id(u))
    assert ends() == [1] and _view([stored]) == _view([study.trials[1]])
    mine = study.trials[1]
    assert (stored.datetime_start, stored.datetime_complete) == (mine.datetime_start, mine.datetime_complete)
    with engine.connect() as c:  # in the columns: UTC, as Optuna's own writes store them
        raw = c.execute(sa.text("SELECT datetime_start, datetime_complete FROM trials WHERE trial_id = :t"),
                        {"t": optuna_private.trial_id(u)}).one()
    utc = [str(d.astimezone(timezone.utc).replace(tzinfo=None)) for d in (mine.datetime_start, mine.datetime_complete)]
    assert [str(r).replace("T", " ") for r in raw] == utc

    v = study.ask()  # outside holding(): at once
    v.suggest_float("x", 0.0, 1.0)
    study.tell(v, [0.5, 2.0])
    stored = reader.get_trial(optuna_private.trial_id(v))
    assert stored.values == [0.5, 2.0] and stored.params == v.params
    held = study.ask()  # and a held end of a trial with its values, written by the next flush of any kind
    held.suggest_float("x", 0.0, 1.0)
    with optuna_private.holding(study):
        study.tell(held, [0.75, float("inf")])
    study.ask()  # a new trial flushes what is pending first
    stored = reader.get_trial(optuna_private.trial_id(held))
    assert stored.values == [0.75, float("inf")] and stored.state == optuna.trial.TrialState.COMPLETE


def test_waiting_and_running_trials_are_read_from_the_index_as_from_the_whole_list(tmp_path):
    """Optuna's ask looks for enqueued (waiting) trials at every ask: the storage answers a read of waiting or
    running trials from an index of them, which must list exactly what filtering every trial lists, in
    number order, through enqueues, asks, every end, a state change that fails, and a study opened again."""
    url = f"sqlite:///{tmp_path / 'index.db'}"
    TS = optuna.trial.TrialState

    def check(storage, sid):
        every = storage.get_all_trials(sid, deepcopy=False)
        for states in ((TS.WAITING,), (TS.RUNNING,), (TS.WAITING, TS.RUNNING), [TS.RUNNING, TS.WAITING]):
            want = [t.number for t in every if t.state in states]
            assert [t.number for t in storage.get_all_trials(sid, deepcopy=False, states=states)] == want
        return every

    storage = SoleWriterStorage(optuna_storage(url))
    study = optuna.create_study(study_name="index", storage=storage)
    sid = study._study_id
    for x in (0.1, 0.2, 0.3):
        study.enqueue_trial({"x": x})
    check(storage, sid)
    asked = [study.ask() for _ in range(5)]  # three taken from the queue, two new
    for t in asked:
        t.suggest_float("x", 0.0, 1.0)
    assert [t.params["x"] for t in asked[:3]] == [0.1, 0.2, 0.3]
    check(storage, sid)
    study.tell(asked[0], 1.0)
    with storage.holding():  # an end held for the caller's transaction (the recorder's path)
        study.tell(asked[1], state=TS.FAIL)
    check(storage, sid)
    storage.flush()
    study.tell(asked[2], state=TS.PRUNED)
    with pytest.raises(RuntimeError):  # a finished trial cannot change: the index keeps it finished
        storage.set_trial_state_values(asked[0]._trial_id, TS.RUNNING)
    study.enqueue_trial({"x": 0.9})
    every = check(storage, sid)
    assert [t.state for t in every] == [TS.COMPLETE, TS.FAIL, TS.PRUNED, TS.RUNNING, TS.RUNNING, TS.WAITING]
    again = SoleWriterStorage(optuna_storage(url))  # opened again: the index built from what was read
    check(again, again.get_study_id_from_name("index"))


def test_equal_choices_of_other_types_keep_their_own_stored_distribution(tmp_path):
    """Optuna calls categorical choices (1, 2) and (1.0, 2.0) equal; the stored distributions (what a resumed
    study and nas show read back) keep each parameter's own: an int stays an int, a float a float."""
    url = f"sqlite:///{tmp_path / 'types.db'}"
    study = optuna.create_study(study_name="types", storage=SoleWriterStorage(optuna_storage(url)))
    for _ in range(2):
        t = study.ask()
        t.suggest_categorical("floats", [1.0, 2.0])
        t.suggest_categorical("ints", [1, 2])
        study.tell(t, 0.0)
    for t in optuna.load_study(study_name="types", storage=optuna_storage(url)).trials:
        assert type(t.params["ints"]) is int and type(t.params["floats"]) is float
        assert [type(c) for c in t.distributions["ints"].choices] == [int, int]
