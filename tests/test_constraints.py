"""Constraints, sampler options, early stopping, the stored hypervolume and `nas compare`.

Two studies in one database, run by real `nas run` drivers and Ray workers with evaluators
that do not train (tests/zero.py): one with constraints, one with early stopping.
"""

import json

import numpy as np
import pytest
import sqlalchemy as sa

from child import nas_cli, run_child

from nas.search import quality
from nas.spaces import ArchSpec, model_cost

MAX_PARAMS = 20_000
SPACE = f"""\
name: small
task: {{dataset: digits}}
space:
  hidden_width: {{int: [8, 512], log: true}}
  depth: {{int: [1, 3]}}
constraints:
  params: {{max: {MAX_PARAMS}}}
search: {{sampler: nsga3, options: {{population_size: 6}}, trials: 12, workers: 1, seed: 0}}
"""


RUNGS = """\
name: rungs
task: {dataset: digits}
space: {hidden_width: {int: [8, 512], log: true}}
train: {epochs: 9}
pruning: {min_epochs: 1, reduction_factor: 3}
search: {sampler: random, trials: 16, workers: 1, seed: 0}
"""

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="constraints")]  # its module fixture runs once


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    url = f"sqlite:///{root / 'nas.db'}"
    assert run_child(SPACE, url, "zero", "m.ZeroCost()", dims=(64, 10), cwd=root) == {"complete": 12, "failed": 0}
    assert run_child(RUNGS, url, "zero", "m.Curves()", dims=(64, 10), cwd=root)["failed"] == 0
    return root, url


def test_infeasible_candidates_are_pruned_untrained_and_the_budget_is_trained_ones(db):
    tmp_path, url = db
    show = nas_cli("show", "small", "--format", "json", "--storage", url, cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    trials = json.loads(show.stdout)["trials"]
    done = [t for t in trials if t["state"] == "COMPLETE"]
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert len(done) == 12
    for t in done:  # every trained candidate keeps within the limit, by nas's own cost model
        assert model_cost(ArchSpec(d_in=64, d_out=10, **t["params"])).params <= MAX_PARAMS
    assert pruned, "a space of up to 3 blocks of width 512 must have candidates over 20,000 params"
    for t in pruned:
        params = model_cost(ArchSpec(d_in=64, d_out=10, **t["params"])).params
        assert params > MAX_PARAMS
        assert t["error"].startswith("infeasible: params ") and f"> max {MAX_PARAMS:,}" in t["error"]
        assert not t["pareto"]

    # the hypervolume after every complete candidate, with a reference point derived and kept with the study
    engine = sa.create_engine(url)
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT trial_number, n_complete, hypervolume FROM nas_progress "
                                 "WHERE study_name = 'small' ORDER BY id")).all()
        ref = json.loads(c.execute(sa.text("SELECT value_json FROM study_user_attributes "
                                           "WHERE key = :k"), {"k": quality.REFERENCE_ATTR}).scalar())
    engine.dispose()
    assert [r.n_complete for r in rows] == list(range(1, 13))
    assert all(r.hypervolume is not None for r in rows)  # the first rows were filled in once the reference existed
    hv = [r.hypervolume for r in rows]
    assert hv == sorted(hv) and hv[-1] > 0  # a front only grows
    order = {t["number"]: t for t in done}
    metrics = ["accuracy", "params", "bandwidth"]
    values = np.array([[order[r.trial_number]["values"][m] for m in metrics] for r in rows])
    dirs = ["maximize", "minimize", "minimize"]
    assert np.allclose(quality.history(values, dirs, [ref[m] for m in metrics]), hv)
    assert np.allclose([ref[m] for m in metrics], quality.derive_reference(values[:quality.REFERENCE_AFTER], dirs))


def test_a_study_with_pruning_stops_dominated_candidates_and_counts_their_epochs(db):
    tmp_path, url = db
    trials = json.loads(nas_cli("show", "rungs", "--format", "json", "--storage", url, cwd=tmp_path).stdout)["trials"]
    stopped = [t for t in trials if t["state"] == "PRUNED"]
    done = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(stopped) + len(done) == 16  # the budget counts stopped candidates
    assert stopped and done
    engine = sa.create_engine(url)
    with engine.connect() as c:
        rows = {r.trial_number: r for r in c.execute(sa.text(
            "SELECT trial_number, state, epochs_trained, curve, error FROM nas_candidates "
            "WHERE study_name = 'rungs'"))}
        spent = c.execute(sa.text("SELECT MAX(epochs_total) FROM nas_progress WHERE study_name = 'rungs'")).scalar()
    engine.dispose()
    for t in stopped:
        r = rows[t["number"]]
        assert r.epochs_trained in (1, 3) and len(json.loads(r.curve)) == r.epochs_trained
        assert r.error.startswith("stopped early at epoch")
        assert not t["pareto"]
    assert spent == sum(r.epochs_trained for r in rows.values()) < 16 * 9


def test_compare_puts_two_studies_on_one_reference_point(db):
    tmp_path, url = db
    res = nas_cli("compare", "small", "rungs", "--format", "json", "--storage", url, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    first, second = report["studies"]
    assert [first["sampler"], second["sampler"]] == ["nsga3", "random"]
    assert first["complete"] == 12 and second["complete"] + second["early_stopped"] == 16
    for s in (first, second):
        assert s["epochs"] == s["curve"][-1]["epochs"] > 0
        hv = [p["hypervolume"] for p in s["curve"]]
        assert hv == sorted(hv) and s["hypervolume"] == hv[-1] > 0
    assert first["epochs_to_first"] == next(p["epochs"] for p in first["curve"]
                                            if p["hypervolume"] >= first["hypervolume"])
    assert first["compute_ratio"] == first["epochs_to_first"] / first["epochs"]
    # a reference point far beyond everything: every point counts
    wide = nas_cli("compare", "small", "rungs", "--format", "json", "--storage", url,
                   "--reference", "accuracy=-1", "--reference", "params=1e9", "--reference", "bandwidth=1e9",
                   cwd=tmp_path)
    assert json.loads(wide.stdout)["reference"] == {"accuracy": -1.0, "params": 1e9, "bandwidth": 1e9}
    table = nas_cli("compare", "small", "rungs", "--storage", url, cwd=tmp_path)
    assert table.returncode == 0 and "hypervolume" in table.stdout and "rungs" in table.stdout
    bad = nas_cli("compare", "small", "nope", "--storage", url, cwd=tmp_path)
    assert bad.returncode == 2 and "no study 'nope'" in bad.stderr
    bad_ref = nas_cli("compare", "small", "--reference", "params", "--storage", url, cwd=tmp_path)
    assert bad_ref.returncode == 2 and "expected METRIC=NUMBER" in bad_ref.stderr
