"""A two-node Ray cluster on this machine (Ray's own cluster utilities, loopback only, not port 6379):
`nas run --address` against PostgreSQL uses both nodes; every trial completes once."""

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from child import hold_cluster
from pg import fresh_database

pytestmark = pytest.mark.slow

GCS_PORT = 6391

SPACE = """\
name: cluster
task: {dataset: digits}
space: {hidden_width: {int: [8, 256], log: true}, depth: {int: [1, 2]}}
train: {epochs: 2, lr: {float: [1.0e-3, 1.0e-2], log: true}}
search: {sampler: random, trials: 12, workers: 2, seed: 0}
pruning: false
"""


@pytest.fixture
def cluster_address():
    """Two Ray nodes, held by a separate process so that Ray's state never enters the test process."""
    with hold_cluster(nodes=2, port=GCS_PORT) as address:
        yield address


@pytest.fixture
def pg_url():
    yield from fresh_database()


def test_two_nodes_share_a_study_on_postgresql(cluster_address, pg_url, tmp_path):
    assert cluster_address == f"127.0.0.1:{GCS_PORT}"
    listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    ray_sockets = [line.split()[3] for line in listening.splitlines() if "gcs_server" in line or "raylet" in line]
    assert ray_sockets and all("127.0.0.1" in addr for addr in ray_sockets), ray_sockets

    (tmp_path / "cluster.yaml").write_text(SPACE)
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", "run", "cluster.yaml", "--address", cluster_address, "--storage", pg_url,
         "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    engine = sa.create_engine(pg_url)
    with engine.connect() as c:
        numbers = [r[0] for r in c.execute(sa.text("SELECT number FROM trials ORDER BY number"))]
        states = {r[0] for r in c.execute(sa.text("SELECT state FROM trials"))}
        rows = c.execute(sa.text("SELECT trial_number, state, worker, objectives FROM nas_candidates")).all()
    engine.dispose()
    assert numbers == list(range(12)) and states == {"COMPLETE"}, "all trials complete, none lost or doubled"
    assert sorted(r.trial_number for r in rows) == list(range(12))
    nodes = {r.worker.split(":")[1] for r in rows if r.worker}
    assert len(nodes) == 2, f"both nodes ran candidates: {nodes}"
    assert all(0 <= (r.objectives if isinstance(r.objectives, dict) else json.loads(r.objectives))["accuracy"] <= 1
               for r in rows)
