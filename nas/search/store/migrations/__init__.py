"""Versioned migrations of nas's own tables (Alembic, as Optuna versions its own).

``upgrade(engine)`` brings nas's tables in a database to the newest revision: it creates them in a new
database, and in a database made before versioning (nas 0.1.0's ``create_all``, without a version row) it
runs every revision from the first, whose tables are made only where missing. ``check(engine)`` is the
readers' side: a database of a newer nas, or an older one not yet upgraded, is a clear input error. The
version lives in ``nas_alembic_version``; Optuna's is ``alembic_version`` in the same database. A new
revision: a file in ``versions/`` written by hand (this folder has no alembic.ini), and a test on a
database of the release before it.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from nas.errors import NasInputError

VERSION_TABLE = "nas_alembic_version"
FIRST = "0001"  # the tables as create_all made them before versioning


def _config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this nas knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(None)).get_current_head()


def current(connection) -> str | None:
    """The revision of nas's tables on ``connection``, or None (no version table yet)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(_config(None)).get_revision(revision) is not None
    except CommandError:
        return False


def _newer(revision: str) -> NasInputError:
    return NasInputError(f"this database's nas tables are at revision {revision}, which this nas does not know "
                         f"(it knows up to {head()}): it was written by a newer nas; upgrade nas to open it")


def upgrade(engine: sa.Engine, sqlite_timeout_s: float = 60) -> None:
    """Create or upgrade nas's tables to ``head()``, in one transaction. Several processes opening a new
    database at once: on SQLite each takes the write lock first (``BEGIN IMMEDIATE``), so the others wait and
    then find it at head; on PostgreSQL the DDL is transactional, and the loser of a race finds the winner's
    tables at head."""
    from alembic import command

    in_memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
    locked = _locking_sqlite(engine, sqlite_timeout_s) if engine.dialect.name == "sqlite" and not in_memory else engine
    try:
        with locked.begin() as conn:
            now = current(conn)
            if now == head():
                return
            if now is not None and not _known(now):
                raise _newer(now)
            command.upgrade(_config(conn), "head")
    except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
        with engine.connect() as conn:
            if current(conn) != head():
                raise
    finally:
        if locked is not engine:
            locked.dispose()


def check(engine: sa.Engine) -> None:
    """For readers (they never write): NasInputError where nas's tables are at a revision this nas does not know
    (a newer nas wrote them). An older revision reads as it is: every revision since the first only adds
    tables, which the readers take as empty where they are missing (a database without a version row but
    with nas's tables is revision 0001, made before versioning); the next writer (``nas run``, ``nas
    confirm``) upgrades it in place."""
    with engine.connect() as conn:
        now = current(conn) if sa.inspect(conn).has_table(VERSION_TABLE) else None
        if now is None and sa.inspect(conn).has_table("nas_candidates"):
            now = FIRST
    if now is None or now == head():
        return
    if not _known(now):
        raise _newer(now)


def _locking_sqlite(engine: sa.Engine, timeout_s: float) -> sa.Engine:
    """A SQLite engine on the same file whose transactions start with the write lock (pysqlite would otherwise
    run each DDL statement in its own implicit transaction); ``timeout_s``: how long it waits for another's lock
    (``nas.search.store.storage.SQLITE_TIMEOUT_S``)."""
    locked = sa.create_engine(engine.url, connect_args={"timeout": timeout_s}, poolclass=sa.pool.NullPool)

    @sa.event.listens_for(locked, "connect")
    def _manual(dbapi_conn, _record):
        dbapi_conn.isolation_level = None

    @sa.event.listens_for(locked, "begin")
    def _immediate(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return locked
