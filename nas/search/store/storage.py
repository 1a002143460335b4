"""Where results live: one SQL database for Optuna's study and nas's tables.

SQLite by default (``sqlite:///nas.db``, WAL mode so readers never block the
writer), PostgreSQL to scale (``postgresql+psycopg://...``). Every write goes
through ``Store.session()``, which commits or rolls back.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from nas.errors import NasInputError
from nas.search.store import migrations

DEFAULT_STORAGE = "sqlite:///nas.db"  # every command's and function's default database: a file in the working folder


def redact(url: str) -> str:
    """The URL with any password hidden: safe for logs, tables and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable storage URL>"


def parse_url(url: str) -> sa.URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise NasInputError(
            f"--storage: not a database URL: {redact(url)!r}; expected e.g. sqlite:///nas.db "
            "or postgresql+psycopg://user@host/db"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql"):
        raise NasInputError(
            f"--storage: unsupported database {parsed.get_backend_name()!r}; expected sqlite or postgresql"
        )
    return parsed


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases or in-memory SQLite)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def weights_root(url: str) -> Path:
    """Weights live beside the database: ``nas_weights/`` in a SQLite file's folder, else in the working folder."""
    db = sqlite_path(url)
    return (db.parent if db is not None else Path(".")).resolve() / "nas_weights"


def write_weights(folder: Path, trial_number: int, data: bytes) -> Path:
    """Write a candidate's safetensors bytes as ``folder/trial_NNNNN.safetensors`` (whole or not at all: a
    temporary file renamed into place); returns the path."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"trial_{trial_number:05d}.safetensors"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


SQLITE_TIMEOUT_S = 60  # how long a SQLite connection waits for another process's lock


def _wal(cur) -> None:
    """Put the SQLite file in WAL mode (it stays so: later connections find it set and write nothing).

    Switching a file to WAL needs its exclusive lock, and SQLite answers "database is locked" at once when
    another connection holds it, without waiting out the busy timeout (several processes opening a new
    database together: Ray workers, the dashboard and `nas run`). So the switch is retried here, with backoff,
    for as long as the busy timeout would have waited.
    """
    deadline, delay = time.monotonic() + SQLITE_TIMEOUT_S, 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.25)


# PostgreSQL, on the connections that may write (nas's own engine, which readers open too but never commit a
# write through, and Optuna's writable storage): a commit returns once its write-ahead log is written, not flushed
# to disk (SQLite's synchronous=NORMAL, below, is the same trade): a killed nas loses nothing it committed; a crash
# of the database server or the machine can lose the last moment's transactions, whole, which the next run queues
# again. About 5 ms less per commit on this machine's disk (three commits a candidate).
PG_WRITER_OPTIONS = "-c synchronous_commit=off"


def make_engine(url: str) -> Engine:
    parsed = parse_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_TIMEOUT_S})

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
                cur = dbapi_conn.cursor()
                _wal(cur)
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

        elif parsed.get_backend_name() == "postgresql":
            engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args={"options": PG_WRITER_OPTIONS})
        else:
            engine = sa.create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        raise NasInputError(f"--storage {redact(url)}: no database driver for it ({exc})") from None
    return engine


class Store:
    """nas's tables in the database at ``url``."""

    def __init__(self, url: str, create: bool = True):
        self.url = url
        db = sqlite_path(url)
        if not create and db is not None and not db.exists():
            raise NasInputError(f"no database at {db} (run `nas run SPACE.yaml` first, or pass --storage)")
        if db is not None and create:
            db.parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            if create:
                migrations.upgrade(self.engine, SQLITE_TIMEOUT_S)  # versioned: an older nas.db is upgraded in place
            else:
                migrations.check(self.engine)  # a reader never upgrades: an unreadable revision is an error
        except OperationalError as exc:
            raise NasInputError(f"--storage {redact(url)}: cannot connect: {_first_line(exc)}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def has_nas_tables(self) -> bool:
        return sa.inspect(self.engine).has_table("nas_candidates")

    def optuna_ready(self) -> bool:
        """Optuna has finished creating its tables here (its alembic stamp is written).

        Opening Optuna's storage on a half-made database writes to it (version rows), so
        readers wait for this instead of racing the run that is creating it.
        """
        inspector = sa.inspect(self.engine)
        if not (inspector.has_table("alembic_version") and inspector.has_table("version_info")):
            return False
        with self.engine.connect() as conn:
            return bool(conn.execute(sa.text("SELECT COUNT(*) FROM alembic_version")).scalar()) and bool(
                conn.execute(sa.text("SELECT COUNT(*) FROM version_info")).scalar())

    def close(self) -> None:
        self.engine.dispose()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def optuna_storage(url: str, read_only: bool = False):
    """Optuna's RDB storage on the same database (its own engine).

    ``read_only``: for readers (``nas ls``, ``nas show``, the dashboard), which must never
    create or upgrade tables while a run may be creating them, nor write at all: SQLite is
    opened read-only (``mode=ro``), PostgreSQL in read-only transactions, so Optuna's storage
    reads the study as any reader of its public API does and cannot change it.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = parse_url(url).get_backend_name()
    sqlite = backend == "sqlite"
    kwargs: dict = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if sqlite else {"pool_pre_ping": True}
    db = sqlite_path(url) if sqlite else None
    if read_only and db is not None:
        if not db.exists():
            raise NasInputError(f"no database at {db} (run `nas run SPACE.yaml` first, or pass --storage)")
        uri = f"file:{db.resolve()}?mode=ro"
        kwargs = {"creator": lambda: sqlite3.connect(uri, uri=True, timeout=SQLITE_TIMEOUT_S, check_same_thread=False)}
    elif read_only and not sqlite:
        kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
    elif backend == "postgresql":
        kwargs["connect_args"] = {"options": PG_WRITER_OPTIONS}
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_table_creation=read_only)
    except (OperationalError, sa.exc.DBAPIError) as exc:
        raise NasInputError(f"--storage {redact(url)}: cannot open: {_first_line(exc)}") from None
    if sqlite and not read_only:  # as nas's own engine: WAL, and no fsync per commit (a killed process loses
        @sa.event.listens_for(storage.engine, "connect")  # nothing committed; a power cut, at most the last few)
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
            cur = dbapi_conn.cursor()
            _wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        storage.engine.dispose()  # the connections opened to create the tables: without the pragmas
    return storage


def read_engine(url: str) -> Engine:
    """An engine that cannot write: SQLite opened read-only, PostgreSQL in read-only transactions.

    For the dashboard, which must never block or change a running study.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = sqlite_path(url)
        if db is None or not db.exists():
            raise NasInputError(f"no database at {db} yet (start `nas run SPACE.yaml`, or pass --storage)")
        import sqlite3

        uri = f"file:{db.resolve()}?mode=ro"
        return sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=5,
                                                                             check_same_thread=False))
    engine = sa.create_engine(parsed, pool_pre_ping=True)

    @sa.event.listens_for(engine, "connect")
    def _read_only(dbapi_conn, _record):  # pragma: no cover - PostgreSQL only
        cur = dbapi_conn.cursor()
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cur.close()
        dbapi_conn.commit()

    return engine
