"""nas's tables are versioned with Alembic (nas.search.migrations): created at the newest revision, an
unversioned database from before upgraded in place, the same schema as the models on SQLite and PostgreSQL."""

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nas.search import migrations
from nas.search.models import Base
from nas.search.storage import Store
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


def _open(url: str) -> None:
    Store(url).close()


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path):
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'race.db'}"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_open, [url] * 4)  # an error in any of them is raised here
    store = Store(url)
    with store.engine.connect() as c:
        assert migrations.current(c) == migrations.head()
        assert c.execute(sa.text("SELECT COUNT(*) FROM nas_alembic_version")).scalar() == 1
    assert schema_differences(store.engine) == []
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
