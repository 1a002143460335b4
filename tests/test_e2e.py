"""A real ``nas run``: real Ray workers, a real SQLite database, real training on `digits`."""

import json

import pytest
import sqlalchemy as sa
from safetensors.torch import load_file

from nas.evaluators import load_task
from nas.evaluators.train import accuracy
from nas.spaces import ArchSpec, build
from child import nas_cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="e2e")]  # its module fixture runs once

SPACE = """\
name: tiny
task: {dataset: digits}
objectives: {accuracy: maximize, params: minimize, bandwidth: minimize}
space:
  lift: [fixed_random, learned, none]
  lift_width: {int: [64, 256], log: true, when: {lift: [fixed_random, learned]}}
  hidden_width: {int: [8, 64], log: true}
  depth: {int: [1, 2]}
  activation: [relu, gelu]
train:
  epochs: 3
  lr: {float: [1.0e-3, 1.0e-2], log: true}
search: {sampler: nsga2, trials: 8, workers: 2, seed: 0}
pruning: false  # every candidate complete: the counts below
"""




@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    (root / "tiny.yaml").write_text(SPACE)
    proc = nas_cli("run", "tiny.yaml", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, proc


def test_run_writes_every_trial_to_sql(finished):
    root, proc = finished
    assert "8/8 candidates: 8 complete (0 reused), 0 stopped early, 0 failed" in proc.stderr
    engine = sa.create_engine(f"sqlite:///{root / 'nas.db'}")
    with engine.connect() as c:
        assert c.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        states = dict(c.execute(sa.text("SELECT state, COUNT(*) FROM trials GROUP BY state")).all())
        assert states == {"COMPLETE": 8}
        rows = c.execute(sa.text(
            "SELECT state, objectives, curve, weights_path, worker, arch FROM nas_candidates")).all()
        run = c.execute(sa.text("SELECT state, workers, target_trials FROM nas_runs")).one()
    assert tuple(run) == ("FINISHED", 2, 8)
    assert len(rows) == 8 and {r.state for r in rows} == {"COMPLETE"}
    workers = {r.worker.rsplit(":", 1)[-1] for r in rows if r.worker}
    assert len(workers) == 2, "both workers must have run candidates"
    for r in rows:
        obj = json.loads(r.objectives)
        assert 0.0 <= obj["accuracy"] <= 1.0 and obj["params"] > 0 and obj["bandwidth"] > 0 and obj["latency_ms"] > 0
        curve = json.loads(r.curve)
        assert [p["epoch"] for p in curve] == [1, 2, 3]
        assert all(0 <= p["val_accuracy"] <= 1 for p in curve)


def test_weights_reproduce_the_recorded_accuracy(finished):
    root, _ = finished
    engine = sa.create_engine(f"sqlite:///{root / 'nas.db'}")
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT arch, objectives, weights_path FROM nas_candidates "
                                 "WHERE reused_from IS NULL")).all()
    task = load_task("digits")
    for arch, objectives, path in rows:
        model = build(ArchSpec.from_json(json.loads(arch)))
        model.load_state_dict(load_file(path))  # the fixed lift is not in the file: regenerated from its seed
        objectives = json.loads(objectives)
        # accuracy: the validation split's (what the search selected on); test_accuracy: the test split's
        assert accuracy(model, task.x_val, task.y_val) == pytest.approx(objectives["accuracy"], abs=1e-9)
        assert accuracy(model, task.x_test, task.y_test) == pytest.approx(objectives["test_accuracy"], abs=1e-9)


def test_show_json_has_the_contract_shape_and_a_pareto_front(finished):
    root, _ = finished
    proc = nas_cli("show", "tiny", "--format", "json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["study"] == "tiny"
    assert report["directions"] == {"accuracy": "maximize", "params": "minimize", "bandwidth": "minimize"}
    assert len(report["trials"]) == 8
    for t in report["trials"]:
        assert set(t) >= {"number", "state", "params", "values", "pareto", "arch_id", "error"}
        assert t["state"] == "COMPLETE" and set(t["values"]) == {"accuracy", "params", "bandwidth"}
        assert isinstance(t["arch_id"], str) and len(t["arch_id"]) == 16 and t["error"] is None
    front = [t for t in report["trials"] if t["pareto"]]
    assert front
    # nobody on the front is dominated by anybody
    for f in front:
        v = f["values"]
        for o in report["trials"]:
            w = o["values"]
            assert not (w["accuracy"] >= v["accuracy"] and w["params"] <= v["params"]
                        and w["bandwidth"] <= v["bandwidth"] and w != v)


def test_show_table_and_ls(finished):
    root, _ = finished
    table = nas_cli("show", "tiny", cwd=root)
    assert table.returncode == 0 and "Pareto front" in table.stdout
    listing = nas_cli("ls", "--format", "json", cwd=root)
    rows = json.loads(listing.stdout)
    assert [r["study"] for r in rows] == ["tiny"]
    assert rows[0]["counts"] == {"COMPLETE": 8, "FAIL": 0, "PRUNED": 0, "RUNNING": 0, "QUEUED": 0}
    assert rows[0]["state"] == "finished"


def test_same_command_again_resumes_and_more_trials_extend(finished):
    root, _ = finished
    again = nas_cli("run", "tiny.yaml", "--trials", "10", "--no-progress", cwd=root)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "10/10 candidates: 10 complete" in again.stderr
    changed = (root / "tiny.yaml").read_text().replace("epochs: 3", "epochs: 4")
    (root / "other.yaml").write_text(changed)
    proc = nas_cli("run", "other.yaml", cwd=root)
    assert proc.returncode == 2 and "was run from a different space file" in proc.stderr


def test_identical_candidates_are_trained_once(tmp_path):
    (tmp_path / "dup.yaml").write_text(
        "name: dup\ntask: {dataset: digits}\nspace: {hidden_width: [8, 16], depth: 1}\n"
        "train: {epochs: 1}\nsearch: {sampler: random, trials: 6, workers: 2, seed: 1}\n"
    )
    proc = nas_cli("run", "dup.yaml", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'nas.db'}")
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT arch_id, reused_from, objectives FROM nas_candidates")).all()
    assert len(rows) == 6
    trained = [r for r in rows if r.reused_from is None]
    assert len(trained) == len({r.arch_id for r in rows}) <= 2
    by_arch = {r.arch_id: r.objectives for r in trained}
    assert all(r.objectives == by_arch[r.arch_id] for r in rows)

    # results an earlier evaluator recorded (another version in the reuse key) are never served again
    with engine.begin() as c:
        c.execute(sa.text("UPDATE nas_candidates SET train_key = replace(train_key, '.e', '.old')"))
    resumed = nas_cli("run", "dup.yaml", "--no-progress", cwd=tmp_path)  # the old study itself: refused
    assert resumed.returncode == 2, resumed.stderr[-2000:]
    assert "scored by another version of nas's evaluator" in resumed.stderr
    proc = nas_cli("run", "dup.yaml", "--study", "dup_new", "--trials", "2", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with engine.connect() as c:
        new = c.execute(sa.text("SELECT train_key, reused_from FROM nas_candidates WHERE study_name = 'dup_new'")).all()
        old_ids = {r.id for r in c.execute(sa.text("SELECT id FROM nas_candidates WHERE study_name = 'dup'"))}
    assert len(new) == 2 and all(r.reused_from not in old_ids for r in new)
    from nas.evaluators.train import EVALUATOR_VERSION

    assert all(r.train_key.endswith(f".e{EVALUATOR_VERSION}") for r in new)
