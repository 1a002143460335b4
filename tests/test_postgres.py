"""The same `nas run` against PostgreSQL: a fresh database per test, dropped after."""

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from pg import fresh_database

pytestmark = pytest.mark.slow

@pytest.fixture
def pg_url():
    yield from fresh_database()


def test_run_ls_show_on_postgresql(pg_url, tmp_path):
    (tmp_path / "pg.yaml").write_text(
        "name: pg\ntask: {dataset: digits}\n"
        "space: {lift: [fixed_random, none], lift_width: {int: [32, 128], when: {lift: fixed_random}},"
        " hidden_width: {int: [8, 32]}, depth: 1}\n"
        "train: {epochs: 1}\nsearch: {sampler: random, trials: 4, workers: 2, seed: 3}\n"
    )

    def nas(*args):
        return subprocess.run([sys.executable, "-m", "nas.cli", *args, "--storage", pg_url], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    proc = nas("run", "pg.yaml", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4/4 candidates: 4 complete" in proc.stderr
    report = json.loads(nas("show", "pg", "--format", "json").stdout)
    assert [t["state"] for t in report["trials"]] == ["COMPLETE"] * 4
    assert any(t["pareto"] for t in report["trials"])
    engine = sa.create_engine(pg_url)
    with engine.connect() as c:
        n = c.execute(sa.text("SELECT COUNT(*) FROM nas_candidates WHERE state = 'COMPLETE'")).scalar()
    engine.dispose()
    assert n == 4
    assert not (tmp_path / "nas.db").exists(), "--storage must be used instead of the default SQLite file"


def test_the_writers_postgresql_connections_do_not_wait_for_the_disk_and_readers_cannot_write(pg_url):
    """As SQLite's synchronous=NORMAL: the run's commits return once PostgreSQL has them (a killed nas loses
    nothing it committed), not once they are on disk; the readers' connections stay read-only."""
    from nas.search.store.storage import Store, optuna_storage, read_engine

    def setting(engine, name):
        with engine.connect() as c:
            return c.execute(sa.text(f"SHOW {name}")).scalar()

    store = Store(pg_url)
    assert setting(store.engine, "synchronous_commit") == "off"
    assert setting(optuna_storage(pg_url).engine, "synchronous_commit") == "off"
    assert setting(read_engine(pg_url), "transaction_read_only") == "on"
    assert setting(optuna_storage(pg_url, read_only=True).engine, "default_transaction_read_only") == "on"
