"""Safety: a local Ray listens on loopback only, database passwords are never shown, nothing is unpickled."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from child import hold_pool
from pg import fresh_database

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_local_ray_listens_on_loopback_only():
    before = {line.split()[3] for line in subprocess.run(["ss", "-ltnp"], capture_output=True, text=True)
              .stdout.splitlines()[1:]}
    holder = hold_pool(1)
    try:
        assert holder.stdout.readline().strip() == "READY"
        listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
        ours = [line.split()[3] for line in listening.splitlines()
                if re.search(r'"(gcs_server|raylet)"', line) and line.split()[3] not in before]
        assert ours, "no Ray sockets found"
        assert all(addr.rsplit(":", 1)[0] in ("127.0.0.1", "[::ffff:127.0.0.1]", "[::1]") for addr in ours), ours
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


@pytest.mark.slow
def test_a_database_password_never_appears(tmp_path):
    gen = fresh_database()
    url = next(gen)
    secret = "s3cret-Pw-42"
    with_password = url.replace("postgres@", f"postgres:{secret}@")  # trust auth: any password is accepted
    try:
        (tmp_path / "pw.yaml").write_text("name: pw\ntask: {dataset: digits}\nspace: {hidden_width: [8, 16]}\n"
                                          "train: {epochs: 1}\nsearch: {trials: 2, workers: 1, seed: 0}\n")
        outputs = []
        for args in (["run", "pw.yaml", "--no-progress"], ["ls"], ["show", "pw"], ["show", "pw", "--format", "json"],
                     ["show", "nosuch"], ["run", "pw.yaml", "--resume", "--study", "other"]):
            p = subprocess.run([sys.executable, "-m", "nas.cli", *args, "--storage", with_password], cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
            outputs.append(p.stdout + p.stderr)
        assert "2/2 candidates: 2 complete" in outputs[0]
        assert "postgres:***@" in outputs[0]  # the URL is shown, its password hidden
        for out in outputs:
            assert secret not in out
        engine = sa.create_engine(url)
        with engine.connect() as c:
            for table in ("nas_runs", "nas_candidates", "studies", "study_user_attributes", "trial_user_attributes",
                          "trial_system_attributes"):
                dump = " ".join(map(str, c.execute(sa.text(f"SELECT * FROM {table}")).all()))
                assert secret not in dump, table
        engine.dispose()
    finally:
        gen.close()


def test_nothing_is_ever_unpickled():
    """Weights are safetensors, records are JSON; no code path may unpickle files or database values."""
    forbidden = re.compile(r"pickle\.loads?\(|torch\.load\(|allow_pickle\s*=\s*True|PickleType|joblib\.load")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "nas").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if forbidden.search(line)]
    assert hits == []
