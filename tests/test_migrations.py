"""nas's tables are versioned with Alembic (nas.search.store.migrations): created at the newest revision, an
unversioned database from before upgraded in place, the same schema as the models on SQLite and PostgreSQL."""

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nas.search.store import migrations
from nas.search.store.models import Base
from nas.search.store.storage import Store
from pg import fresh_database

RELEASE_DB = Path(__file__).parent / "fixtures" / "release-2026-12-04" / "nas.db"


def schema_differences(engine) -> list:
    """What the migrated tables lack or have beyond nas's models (Optuna's tables and the version table aside)."""
    ours = set(Base.metadata.tables)

    def include(obj, name, kind, reflected, compare_to):
        return kind != "table" or name in ours

    with engine.connect() as c:
        return compare_metadata(MigrationContext.configure(c, opts={"include_object": include}), Base.metadata)


def test_a_new_database_is_created_at_the_newest_revision_with_the_models_schema(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'new.db'}")
    with store.engine.connect() as c:
        assert migrations.current(c) == migrations.head()
        assert sa.inspect(c).has_table("nas_alembic_version") and not sa.inspect(c).has_table("alembic_version")
    assert schema_differences(store.engine) == []
    store.close()


def test_a_database_from_before_versioning_is_stamped_and_keeps_everything(tmp_path):
    db = tmp_path / "old.db"
    shutil.copy(RELEASE_DB, db)
    with sa.create_engine(f"sqlite:///{db}").connect() as c:
        assert not sa.inspect(c).has_table("nas_alembic_version")  # nas 0.1.0's create_all tables
        before = {t: c.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar()
                  for t in ("nas_runs", "nas_candidates", "nas_progress", "trials")}
    store = Store(f"sqlite:///{db}")
    with store.engine.connect() as c:
        assert migrations.current(c) == migrations.head()
        assert {t: c.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in before} == before
    assert schema_differences(store.engine) == []
    store.close()


def _open(url: str, barrier) -> None:
    barrier.wait()  # all at once
    Store(url).close()


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path):
    """Four processes open one new SQLite file at once, eight times over (one race lost in about six before
    the WAL switch was retried: SQLite refuses it at once, without the busy timeout, while another holds it)."""
    import multiprocessing

    urls = [f"sqlite:///{tmp_path / f'race{k}.db'}" for k in range(8)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(4) as pool:
        for url in urls:
            barrier = manager.Barrier(4)
            pool.starmap(_open, [(url, barrier)] * 4)  # an error in any of them is raised here
    for url in urls:
        store = Store(url)
        with store.engine.connect() as c:
            assert migrations.current(c) == migrations.head()
            assert c.execute(sa.text("SELECT COUNT(*) FROM nas_alembic_version")).scalar() == 1
            assert c.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert schema_differences(store.engine) == []
        store.close()


def test_an_unversioned_database_missing_a_table_gets_it(tmp_path):
    db = tmp_path / "partial.db"
    shutil.copy(RELEASE_DB, db)
    with sa.create_engine(f"sqlite:///{db}").begin() as c:
        c.execute(sa.text("DROP TABLE nas_progress"))  # nas_progress came later within 0.1.0
    store = Store(f"sqlite:///{db}")
    assert sa.inspect(store.engine).has_table("nas_progress") and schema_differences(store.engine) == []
    with store.engine.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM nas_candidates")).scalar() == 10
    store.close()


def test_a_database_of_a_newer_nas_is_a_clear_error_for_writers_and_readers(tmp_path):
    from nas.errors import NasInputError

    url = f"sqlite:///{tmp_path / 'newer.db'}"
    Store(url).close()
    with sa.create_engine(url).begin() as c:
        c.execute(sa.text("UPDATE nas_alembic_version SET version_num = '9999'"))
    for create in (True, False):
        with pytest.raises(NasInputError, match="revision 9999.*written by a newer nas; upgrade nas"):
            Store(url, create=create)


def test_in_memory_sqlite_keeps_its_tables():
    store = Store("sqlite://")
    assert store.has_nas_tables()
    store.close()


@pytest.fixture
def pg_url():
    yield from fresh_database()


def test_postgresql_gets_the_same_schema(pg_url):
    store = Store(pg_url)
    with store.engine.connect() as c:
        assert migrations.current(c) == migrations.head()
    assert schema_differences(store.engine) == []
    store.close()
