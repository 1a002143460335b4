"""Optuna's storage for the one process that writes a study: every write goes to the database at once, every
read of the study's trials is answered from memory.

A ``nas run`` is the only writer of its study while it runs (a second run is refused while the first is alive:
``driver._check_no_live_run``), so the trials it wrote are exactly the trials there are. Optuna's own cache
(``optuna.storages._CachedStorage``, what ``create_study`` puts around an ``RDBStorage``) cannot assume that:
each time a sampler reads the study it reads every unfinished trial back from the database, with its
parameters and attributes. With 2 × workers candidates in flight that read grows with the workers and is paid
several times per candidate (measured in ``benchmarks/driver_scale.py``: most of the driver's time at 64
workers). Here the trials are read from the database once, when the study is opened, and afterwards kept up
to date by the writes themselves.

A trial's parameters and attributes (what the sampler and the driver set between asking for a candidate
and handing it out: about ten writes) are kept in order and written in one transaction (``flush``): before
the next trial is created, before any trial's state changes, and whenever the driver calls ``flush`` (it
does in the transaction that records the candidate in nas's table: ``Recorder.started``), so nothing that
refers to a trial is written before the trial's parameters are. A run killed before that flush leaves a
RUNNING trial without (some of) its parameters and no candidate of nas's refers to it, which resuming fails
and queues again as it would any trial killed while being sampled. Trial creation reaches the database
before the call returns. A state change does too, except inside ``holding()``: there a finished trial's
state, values and end time are kept with the other pending writes, for the caller to flush in the same
transaction as its own record of that end (``Recorder``: nas's row and Optuna's trial end together, or
neither). Readers in other processes (``nas show``, the dashboard) see the same tables. Only readers of this
process are served from memory.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Container, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState


_OPEN = {TrialState.WAITING, TrialState.RUNNING}  # the states a trial leaves (the finished ones it never does)


def _naive_utc(local: datetime) -> datetime:
    """A naive local time as Optuna's trial model stores it: naive UTC (``TrialModel.datetime_*`` setters)."""
    return local.astimezone(timezone.utc).replace(tzinfo=None)


class SoleWriterStorage(BaseStorage):
    """An ``RDBStorage`` for the study's only writer: writes through, trials read from memory."""

    def __init__(self, backend: optuna.storages.RDBStorage) -> None:
        self.backend = backend
        self._trials: dict[int, list[FrozenTrial]] = {}  # study id -> its trials, by number
        self._open: dict[int, set[int]] = {}  # study id -> the numbers of its waiting and running trials
        self._where: dict[int, tuple[int, int]] = {}  # trial id -> (study id, number)
        self._directions: dict[int, list[StudyDirection]] = {}
        self._pending: list[tuple] = []  # parameter and attribute writes not flushed yet, in order
        self._first_dist: dict[tuple[int, str], BaseDistribution] = {}  # (study, param) -> its first distribution
        self._lock = threading.RLock()
        self._holding = False  # inside holding(): finished trials' state changes wait for the next flush
        self._built: dict[str, dict[str, Any]] = {}  # database dialect -> the statements written with
        self._dist_texts: dict[tuple, str] = {}  # (type, repr) of a distribution -> its stored JSON

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """While inside, a running trial's change to a finished state (with its values and end time) is kept in
        memory with the pending writes instead of written at once: the caller flushes it, on its own
        connection, in the transaction that records the same end."""
        with self._lock:
            self._holding = True
            try:
                yield
            finally:
                self._holding = False

    # -------------------------------------------------------------- deferred writes
    def flush(self, conn=None) -> None:
        """Write the pending parameters, attributes and held state changes in one transaction: on ``conn`` (a
        SQLAlchemy connection to the same database, inside the caller's transaction) or in one of its own.
        The parameters in one multi-row insert, the attributes in one upsert per table (the last value of a
        key set twice), the state changes as one update of the trials and one insert of their values: the
        rows Optuna's own ``set_trial_param``, ``set_trial_*_attr`` and ``set_trial_state_values`` write. The
        checks Optuna makes on each write (the trial still running, a parameter's distribution compatible
        with the study's) were made from memory when it was set."""
        with self._lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, []
            if conn is not None:
                self._write(conn, pending)
                return
            with self.backend.engine.begin() as own:
                self._write(own, pending)

    def _statements(self, dialect: str) -> dict[str, Any]:
        """The statements ``_write`` and ``_insert_trial`` execute, built once per database dialect (building
        one, and SQLAlchemy's cache key for it, cost about as much as executing it)."""
        made = self._built.get(dialect)
        if made is not None:
            return made
        import sqlalchemy as sa
        from optuna.storages._rdb import models

        trials = models.TrialModel.__table__
        made = {"params": sa.insert(models.TrialParamModel.__table__),
                "state": sa.update(trials).where(trials.c.trial_id == sa.bindparam("tid"))
                .values(state=sa.bindparam("st"), datetime_complete=sa.bindparam("dc")),
                "values": sa.insert(models.TrialValueModel.__table__),
                "trial": sa.insert(trials).values(
                    study_id=sa.bindparam("sid"), state=TrialState.RUNNING, datetime_start=sa.bindparam("start"),
                    number=sa.bindparam("known") + sa.select(sa.func.count()).select_from(trials)
                    .where(trials.c.study_id == sa.bindparam("sid"), trials.c.trial_id > sa.bindparam("last"))
                    .scalar_subquery())
                .returning(trials.c.trial_id, trials.c.number)}
        for kind, model in (("user", models.TrialUserAttributeModel), ("system", models.TrialSystemAttributeModel)):
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            elif dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:  # another database: Optuna's own statements, row by row (``_write``)
                made[kind] = None
                continue
            stmt = insert(model.__table__)
            made[kind] = stmt.on_conflict_do_update(index_elements=["trial_id", "key"],
                                                    set_={"value_json": stmt.excluded.value_json})
        self._built[dialect] = made
        return made

    def _write(self, conn, pending: list[tuple]) -> None:
        import json

        import sqlalchemy as sa
        from optuna.storages._rdb import models

        made = self._statements(conn.engine.name)
        params = [{"trial_id": tid, "param_name": key, "param_value": value,
                   "distribution_json": self._dist_json(dist)}
                  for kind, tid, key, value, dist in pending if kind == "param"]
        attrs: dict[str, dict[tuple[int, str], Any]] = {"user": {}, "system": {}}
        for kind, tid, key, value, _ in pending:
            if kind in attrs:
                attrs[kind][(tid, key)] = value
        if params:
            conn.execute(made["params"], params)
        for kind, model in (("user", models.TrialUserAttributeModel), ("system", models.TrialSystemAttributeModel)):
            rows = [{"trial_id": tid, "key": key, "value_json": json.dumps(value)}
                    for (tid, key), value in attrs[kind].items()]
            if not rows:
                continue
            if made[kind] is None:  # another database: Optuna's own statement, row by row, in this transaction
                for row in rows:
                    conn.execute(sa.delete(model.__table__).where(
                        model.__table__.c.trial_id == row["trial_id"], model.__table__.c.key == row["key"]))
                conn.execute(sa.insert(model.__table__), rows)
                continue
            conn.execute(made[kind], rows)
        states = [(tid, state, values, when) for kind, tid, state, values, when in pending if kind == "state"]
        if states:  # Optuna's set_trial_state_values: the state, the end time, the values
            conn.execute(made["state"], [{"tid": tid, "st": state, "dc": _naive_utc(when)}
                                         for tid, state, _, when in states])
            with_values = [(tid, vals) for tid, _, vals, _ in states if vals is not None]
            if with_values:  # (held only for trials without values yet: nothing to replace)
                rows = []
                for tid, vals in with_values:
                    for objective, v in enumerate(vals):
                        stored, vtype = models.TrialValueModel.value_to_stored_repr(v)
                        rows.append({"trial_id": tid, "objective": objective, "value": stored, "value_type": vtype})
                conn.execute(made["values"], rows)

    def _dist_json(self, dist: BaseDistribution) -> str:
        """A distribution's JSON as Optuna stores it, made once per distribution (keyed by its repr: Optuna's
        equality calls choices (0, 1), (0.0, 1.0) and (False, True) equal, and their JSON differs)."""
        key = (type(dist), repr(dist))
        out = self._dist_texts.get(key)
        if out is None:
            from optuna.distributions import distribution_to_json

            out = self._dist_texts[key] = distribution_to_json(dist)
        return out

    def _held(self, trial_id: int) -> bool:
        """Whether a write to the trial can be held for the next flush (a trial of a study in memory, still
        updatable: Optuna's error now, as its own write would raise it)."""
        where = self._where.get(trial_id)
        if where is None:
            return False
        self.check_trial_is_updatable(trial_id, self._trials[where[0]][where[1]].state)
        return True

    def _check_distribution(self, trial_id: int, name: str, distribution: BaseDistribution) -> None:
        """Optuna's check on each parameter write: compatible with the distribution the study already stores
        for that name (found in memory, once per name)."""
        from optuna.distributions import check_distribution_compatibility

        study_id = self._where[trial_id][0]
        key = (study_id, name)
        if key not in self._first_dist:
            first = next((t.distributions[name] for t in self._trials[study_id] if name in t.distributions), None)
            self._first_dist[key] = first if first is not None else distribution
        check_distribution_compatibility(self._first_dist[key], distribution)

    # -------------------------------------------------------------- the study's trials in memory
    def _study(self, study_id: int) -> list[FrozenTrial]:
        """The study's trials, read from the database the first time."""
        trials = self._trials.get(study_id)
        if trials is None:
            trials = sorted(self.backend.get_all_trials(study_id, deepcopy=False), key=lambda t: t.number)
            if [t.number for t in trials] != list(range(len(trials))):
                raise RuntimeError(f"study {study_id}: trial numbers are not 0..n-1")
            self._trials[study_id] = trials
            self._open[study_id] = {t.number for t in trials if t.state in _OPEN}
            for t in trials:
                self._where[t._trial_id] = (study_id, t.number)
        return trials

    def _put(self, study_id: int, number: int, trial: FrozenTrial) -> None:
        """The cached trial ``number`` of the study replaced by ``trial``, the index of unfinished trials with it."""
        self._trials[study_id][number] = trial
        if trial.state in _OPEN:
            self._open[study_id].add(number)
        else:
            self._open[study_id].discard(number)

    def _merge(self, trial_id: int, field: str, key: Any, value: Any) -> None:
        """After a write: the cached trial with ``key: value`` in its dict ``field``, on a copy (a trial handed
        out earlier is never mutated)."""
        where = self._where.get(trial_id)
        if where is not None:
            study_id, number = where
            t = copy.copy(self._trials[study_id][number])
            setattr(t, field, {**getattr(t, field), key: value})
            self._put(study_id, number, t)

    def _set_state(self, trial_id: int, state: TrialState, values: Sequence[float] | None) -> None:
        """The cached trial after a state change Optuna accepted: its state and values as given, its two
        timestamps (``RDBStorage`` sets them from its own clock) read back alone, not the whole trial."""
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        where = self._where.get(trial_id)
        if where is not None:
            study_id, number = where
            with _create_scoped_session(self.backend.scoped_session) as session:
                row = models.TrialModel.find_or_raise_by_id(trial_id, session)  # its row only, no params
                start, complete = row.datetime_start, row.datetime_complete
            t = copy.copy(self._trials[study_id][number])
            if values is not None:
                t.values = list(values)
            t.datetime_start, t.datetime_complete = start, complete
            t.state = state
            self._put(study_id, number, t)

    def _refresh(self, trial_id: int) -> None:
        """Read one trial back (its timestamps are the database's)."""
        where = self._where.get(trial_id)
        if where is not None:
            study_id, number = where
            self._put(study_id, number, self.backend.get_trial(trial_id))

    # -------------------------------------------------------------- studies: the database's
    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        study_id = self.backend.create_new_study(directions, study_name)
        with self._lock:
            self._trials[study_id] = []
            self._open[study_id] = set()
            self._directions[study_id] = list(directions)
        return study_id

    def delete_study(self, study_id: int) -> None:
        with self._lock:
            self.flush()
            for t in self._trials.pop(study_id, []):
                self._where.pop(t._trial_id, None)
            self._open.pop(study_id, None)
            self._directions.pop(study_id, None)
        self.backend.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.backend.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.backend.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        with self._lock:
            if study_id not in self._directions:
                self._directions[study_id] = self.backend.get_study_directions(study_id)
            return self._directions[study_id]

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.backend.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.backend.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self.backend.get_all_studies()

    # -------------------------------------------------------------- trials: written through, read here
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        with self._lock:
            trials = self._study(study_id)
            self.flush()
            if template_trial is None and self.backend.engine.name in ("sqlite", "postgresql"):
                t = self._insert_trial(study_id)
            else:  # an enqueued or added trial, or another database: Optuna's own, no read-back
                t = self.backend._create_new_trial(study_id, template_trial)
            trial_id = t._trial_id
            if t.number != len(trials):  # another process wrote this study: the sole-writer premise is broken
                raise RuntimeError(f"trial number {t.number} where {len(trials)} was expected: another process "
                                   "is writing this study")
            trials.append(t)
            if t.state in _OPEN:
                self._open[study_id].add(t.number)
            self._where[trial_id] = (study_id, t.number)
            return trial_id

    def _insert_trial(self, study_id: int) -> FrozenTrial:
        """A new RUNNING trial, as Optuna's ``_create_new_trial`` writes it, in one statement: its number the
        count of the study's trials (Optuna's own rule; compared with the trials in memory by the caller) and
        its id returned. The count is the trials in memory plus those of the study the database holds with a
        higher id than any of them, read in the same statement: a range of the primary key, where counting
        every trial of the study scanned them all (2.6 ms an insert at 10,000 trials on PostgreSQL, most of the
        driver's SQL growth over a long study). Another writer's trial is counted as before, unless its insert
        took a lower id and committed after this one read (two inserts within milliseconds); its next is."""
        start = datetime.now()
        trials = self._trials[study_id]
        last = trials[-1]._trial_id if trials else 0  # ids grow with numbers: each is taken at its insert
        with self.backend.engine.begin() as conn:
            trial_id, n = conn.execute(self._statements(conn.engine.name)["trial"],
                                       {"sid": study_id, "start": _naive_utc(start), "known": len(trials),
                                        "last": last}).one()
        return FrozenTrial(number=n, state=TrialState.RUNNING, value=None, values=None, datetime_start=start,
                           datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
                           intermediate_values={}, trial_id=trial_id)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        with self._lock:
            if not self._held(trial_id):
                self.backend.set_trial_param(trial_id, param_name, param_value_internal, distribution)
                return
            self._check_distribution(trial_id, param_name, distribution)
            self._pending.append(("param", trial_id, param_name, param_value_internal, distribution))
            self._merge(trial_id, "params", param_name, distribution.to_external_repr(param_value_internal))
            self._merge(trial_id, "distributions", param_name, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        with self._lock:
            trials = self._study(study_id)
            if 0 <= trial_number < len(trials):
                return trials[trial_number]._trial_id
        return self.backend.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        with self._lock:
            where = self._where.get(trial_id)
            t = self._trials[where[0]][where[1]] if where is not None else None
            # inside holding(), a running trial's end waits for the caller's flush (one with values to replace,
            # which a running trial never has, is written at once by Optuna as any other change)
            if self._holding and t is not None and state.is_finished() and t.values is None:
                self.check_trial_is_updatable(trial_id, t.state)
                when = datetime.now()  # Optuna's RDBStorage's clock: the process's local time
                self._pending.append(("state", trial_id, state, None if values is None else list(values), when))
                t = copy.copy(t)
                if values is not None:
                    t.values = list(values)
                t.state, t.datetime_complete = state, when
                self._put(where[0], where[1], t)
                return True
            self.flush()
            done = self.backend.set_trial_state_values(trial_id, state, values)
            if done:  # what Optuna stored: the state and values as given, the timestamps read back
                self._set_state(trial_id, state, values)
            else:
                self._refresh(trial_id)
            return done

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        with self._lock:
            self.flush()
            self.backend.set_trial_intermediate_value(trial_id, step, intermediate_value)
            self._merge(trial_id, "intermediate_values", step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            if not self._held(trial_id):
                self.backend.set_trial_user_attr(trial_id, key, value)
                return
            self._pending.append(("user", trial_id, key, value, None))
            self._merge(trial_id, "user_attrs", key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            if not self._held(trial_id):
                self.backend.set_trial_system_attr(trial_id, key, value)
                return
            self._pending.append(("system", trial_id, key, value, None))
            self._merge(trial_id, "system_attrs", key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            where = self._where.get(trial_id)
            if where is not None:
                return self._trials[where[0]][where[1]]
        return self.backend.get_trial(trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        with self._lock:
            trials = self._study(study_id)
            if states is None:
                out = list(trials)
            elif (wanted := set(states)) <= _OPEN:  # waiting or running only (Optuna's ask looks for waiting
                out = [trials[n] for n in sorted(self._open[study_id]) if trials[n].state in wanted]  # trials)
            else:
                out = [t for t in trials if t.state in wanted]
        return copy.deepcopy(out) if deepcopy else out
