"""A two-node Ray cluster on this machine (Ray's own cluster utilities, loopback only, not port 6379):
`nas run --address` against PostgreSQL uses both nodes; every trial completes once."""

import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

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


CLUSTER = f"""
import sys
from ray.cluster_utils import Cluster
c = Cluster(initialize_head=True, connect=False,
            head_node_args={{"num_cpus": 1, "gcs_server_port": {GCS_PORT}, "include_dashboard": False,
                            "node_ip_address": "127.0.0.1"}})
try:
    c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    c.wait_for_nodes()
    print(c.address, flush=True)
    sys.stdin.read()  # until the test closes our stdin
finally:
    c.shutdown()
"""


@pytest.fixture
def cluster_address():
    """Two Ray nodes, held by a separate process so that Ray's state never enters the test process."""
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # keep every node on 127.0.0.1
    holder = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        address = holder.stdout.readline().strip()
        assert address, "the cluster did not start"
        yield address
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


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
