"""Fronts a scientist can trust: the search selects on the validation split and never sees the test labels;
`nas confirm` gives the front's candidates seeds and intervals, resumably; `nas show`, the export and the
dashboard read them. Real `nas run` and `nas confirm` commands (Ray workers, SQLite)."""

import json

import numpy as np
import pytest
import sqlalchemy as sa
from child import nas_cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="selection")]

SPACE = """\
name: {name}
task: {{dataset: "npz:{npz}"}}
space:
  lift: [fixed_random, none]
  lift_width: {{int: [64, 256], log: true, when: {{lift: fixed_random}}}}
  hidden_width: {{int: [8, 64], log: true}}
  depth: {{int: [1, 2]}}
train: {{epochs: 2, lr: {{float: [1.0e-3, 1.0e-2], log: true}}}}
search: {{sampler: tpe, trials: 7, workers: 1, seed: 3}}
"""


ONE_RAY = """
import json, logging, os, sys
import ray
import sqlalchemy as sa
import nas
from nas.search.execution.confirm import confirm
from nas.search.execution.dispatch import _LOCAL_ENV

for k, v in _LOCAL_ENV.items():
    os.environ.setdefault(k, v)
# one local Ray for the whole module's commands (each `nas run` would start and stop its own)
ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
         logging_level=logging.ERROR, log_to_driver=False)
url = "sqlite:///nas.db"
for name in ("same", "shuffled"):
    nas.run(name + ".yaml", storage=url)
first = confirm(url, "same", seeds=2, progress=False)
engine = sa.create_engine(url)
with engine.begin() as c:  # a confirm stopped before its last training ended: that row was never written
    c.execute(sa.text("DELETE FROM nas_confirmations WHERE id = (SELECT MAX(id) FROM nas_confirmations)"))
engine.dispose()
again = confirm(url, "same", seeds=2, progress=False)
ray.shutdown()
print(json.dumps({"first": first.__dict__, "again": again.__dict__}))
"""


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Two seeded one-worker studies on npz files that differ only in a permutation of y_test; then the first's
    front confirmed with 2 seeds, and confirmed again after losing its last row (one Ray for all of it)."""
    import subprocess
    import sys

    from nas.evaluators.datasets import _packaged_csv

    root = tmp_path_factory.mktemp("selection")
    data = _packaged_csv("sklearn", "datasets/data/digits.csv.gz")
    x, y = data[:, :-1] / 16.0, data[:, -1].astype(np.int64)
    rest, test = slice(360, None), slice(0, 360)
    np.savez(root / "same.npz", X=x[rest], y=y[rest], X_test=x[test], y_test=y[test])
    shuffled = np.random.default_rng(7).permutation(y[test])
    assert (shuffled != y[test]).mean() > 0.8
    np.savez(root / "shuffled.npz", X=x[rest], y=y[rest], X_test=x[test], y_test=shuffled)
    for name in ("same", "shuffled"):
        (root / f"{name}.yaml").write_text(SPACE.format(name=name, npz=f"{name}.npz"))
    proc = subprocess.run([sys.executable, "-c", ONE_RAY], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root, json.loads(proc.stdout.strip().splitlines()[-1])


def show(root, study):
    """What `nas show STUDY --format json` prints (its function, in this process)."""
    from nas.search.read.results import study_report

    return json.loads(json.dumps(study_report(f"sqlite:///{root / 'nas.db'}", study), default=str))


def test_the_search_never_sees_the_test_labels(studies):
    root, _ = studies
    a, b = show(root, "same"), show(root, "shuffled")
    assert a["selection"] == b["selection"] == "validation"
    assert len(a["trials"]) == len(b["trials"]) == 7
    # the same candidates proposed in the same order, the same validation scores and costs, the same front
    for ta, tb in zip(a["trials"], b["trials"]):
        assert (ta["number"], ta["state"], ta["params"]) == (tb["number"], tb["state"], tb["params"])
        assert ta["values"] == tb["values"] and ta["pareto"] == tb["pareto"]
    # only the record differs: the test scores (a permuted y_test makes them near chance)
    done = [(ta, tb) for ta, tb in zip(a["trials"], b["trials"]) if ta["state"] == "COMPLETE"]
    assert done and all(ta["test"]["accuracy"] != tb["test"]["accuracy"] for ta, tb in done)
    mean = {k: np.mean([pair[i]["test"]["accuracy"] for pair in done]) for i, k in enumerate(("same", "shuffled"))}
    assert max(tb["test"]["accuracy"] for _, tb in done) < 0.4 and mean["same"] > mean["shuffled"] + 0.3


@pytest.fixture(scope="module")
def confirmed(studies):
    return studies[0]


def test_confirm_trains_the_front_with_fresh_seeds_on_the_same_splits(confirmed):
    import torch

    from nas.evaluators import evaluate, load_task
    from nas.spaces import ArchSpec, TrainSpec

    report = show(confirmed, "same")
    front = [t for t in report["trials"] if t["pareto"]]
    assert front and all("confirmed" not in t for t in report["trials"] if not t["pareto"])
    for t in front:
        c = t["confirmed"]
        assert c["seeds"] == 2 and c["seed_list"] == [1, 2] and c["metric"] == "accuracy"
        for split in ("val", "test"):
            s = c[split]
            assert s["n"] == 2 and s["ci95"][0] <= s["mean"] <= s["ci95"][1]
            assert s["sd"] >= 0 and s["ci95"][1] - s["ci95"][0] == pytest.approx(2 * 12.706 * s["sd"] / 2 ** 0.5,
                                                                                 rel=1e-3)  # t(0.975, 1) = 12.706
        assert t["significance"]["status"] in ("distinct", "indistinguishable", "dominated")
    # a confirmation is the same candidate trained with another seed on the same splits: retrained here, equal
    engine = sa.create_engine(f"sqlite:///{confirmed / 'nas.db'}")
    with engine.connect() as conn:
        arch, train = conn.execute(sa.text("SELECT arch, train FROM nas_candidates WHERE study_name = 'same' AND "
                                           "trial_number = :n"), {"n": front[0]["number"]}).one()
        stored = json.loads(conn.execute(sa.text(
            "SELECT objectives FROM nas_confirmations WHERE study_name = 'same' AND trial_number = :n AND seed = 2"),
            {"n": front[0]["number"]}).scalar())
    engine.dispose()
    task = load_task(f"npz:{confirmed / 'same.npz'}")
    torch.set_num_threads(2)
    again = evaluate(ArchSpec.from_json(json.loads(arch)), TrainSpec(**{**json.loads(train), "seed": 2}), task)
    assert again.objectives["accuracy"] == pytest.approx(stored["accuracy"], abs=1e-9)
    assert again.objectives["test_accuracy"] == pytest.approx(stored["test_accuracy"], abs=1e-9)


def test_confirm_resumes_where_it_stopped(studies):
    root, summaries = studies
    first, again = summaries["first"], summaries["again"]
    n = 2 * len(first["trials"])  # the front, 2 seeds each
    assert (first["trained"], first["found"], first["failed"]) == (n, 0, 0)
    assert (again["trained"], again["found"], again["failed"]) == (1, n - 1, 0)  # only the lost training again
    engine = sa.create_engine(f"sqlite:///{root / 'nas.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT trial_number, seed FROM nas_confirmations WHERE state = 'COMPLETE'")).all()
    engine.dispose()
    assert sorted(rows) == sorted((t, s) for t in first["trials"] for s in (1, 2))


def test_show_export_and_dashboard_read_the_intervals(confirmed, monkeypatch):
    proc = nas_cli("show", "same", cwd=confirmed)
    assert proc.returncode == 0 and "(2 seeds)" in proc.stdout and "95 % front" in proc.stdout
    report = show(confirmed, "same")
    conf = [t for t in report["trials"] if "confirmed" in t]
    best = max(conf, key=lambda t: (t["confirmed"]["val"]["mean"], -t["values"]["params"]))
    proc = nas_cli("export", "same", "--pick", "accuracy", "--out", "best", cwd=confirmed)
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads((confirmed / "best" / "arch.json").read_text())
    assert card["trial"] == best["number"]  # the pick reads the confirmed mean, not the first seed's score
    assert card["confirmed"]["val"]["mean"] == pytest.approx(best["confirmed"]["val"]["mean"])
    readme = (confirmed / "best" / "README.md").read_text()
    assert "Over training seeds" in readme and "fresh training seeds (1, 2" in readme
    assert "what the search selected on" in readme and "for the record, never selected on" in readme

    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    import nas.dashboard

    monkeypatch.setenv("NAS_STORAGE", f"sqlite:///{confirmed / 'nas.db'}")
    at = AppTest.from_file(str(Path(nas.dashboard.__file__).parent / "app.py"), default_timeout=120).run()
    at.sidebar.selectbox[0].select("same").run()
    assert not at.exception, [e.value for e in at.exception]
    front = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = [t for t in front["data"] if t.get("error_y", {}).get("visible", True) and "error_y" in t]
    assert sum(len(t["customdata"]) if isinstance(t["customdata"], list) else 1 for t in bars) >= 1
    drawn = {t["name"] for t in bars}
    assert drawn <= {"95 %: distinct", "95 %: within the noise of a cheaper one", "95 %: beaten by a cheaper one"}
    table = next(d.value for d in at.dataframe if "val over seeds" in d.value.columns)
    assert table["val over seeds"].notna().sum() == len(conf) and "test_accuracy" in table.columns
