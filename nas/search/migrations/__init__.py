"""Versioned migrations of nas's own tables (Alembic, as Optuna versions its own).

``upgrade(engine)`` brings nas's tables in a database to the newest revision: it creates them in a new
database, stamps a database made before versioning (tables created by nas 0.1.0's ``create_all``, exactly
revision 0001) and then applies what is newer. The version lives in ``nas_alembic_version``; Optuna's is
``alembic_version`` in the same database. A new revision: a file in ``versions/`` (``alembic revision``
with this folder as the script location, or by hand), and a test on a database of the release before it.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

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


def upgrade(engine: sa.Engine) -> None:
    """Create or upgrade nas's tables to ``head()``, in one transaction. Several processes opening a new
    database at once: on SQLite each takes the write lock first (``BEGIN IMMEDIATE``), so the others wait and
    then find it at head; on PostgreSQL the DDL is transactional, and the loser of a race finds the winner's
    tables at head."""
    from alembic import command

    locked = _locking_sqlite(engine) if engine.dialect.name == "sqlite" else engine
    try:
        with locked.begin() as conn:
            now = current(conn)
            if now == head():
                return
            cfg = _config(conn)
            if now is None and sa.inspect(conn).has_table("nas_candidates"):
                command.stamp(cfg, FIRST)
            command.upgrade(cfg, "head")
    except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
        with engine.connect() as conn:
            if current(conn) != head():
                raise
    finally:
        if locked is not engine:
            locked.dispose()


def _locking_sqlite(engine: sa.Engine) -> sa.Engine:
    """A SQLite engine on the same file whose transactions start with the write lock (pysqlite would otherwise
    run each DDL statement in its own implicit transaction)."""
    locked = sa.create_engine(engine.url, connect_args={"timeout": 60}, poolclass=sa.pool.NullPool)

    @sa.event.listens_for(locked, "connect")
    def _manual(dbapi_conn, _record):
        dbapi_conn.isolation_level = None

    @sa.event.listens_for(locked, "begin")
    def _immediate(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return locked
