"""A database and exports written by nas on 2026-12-04 (tests/fixtures/release-2026-12-04, made by
tests/fixtures/make_release_fixture.py) still read and export the same with today's code.

The fixture is never written: each test works on a copy in a temporary folder. Its weights paths are absolute
(nas stores them so), so the copy's are rewritten to the copy's folder first.
"""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from safetensors.torch import load_file

FIXTURE = Path(__file__).parent / "fixtures" / "release-2026-12-04"
TRIALS = 10


@pytest.fixture
def copy(tmp_path):
    root = tmp_path / "release"
    shutil.copytree(FIXTURE, root)
    engine = sa.create_engine(f"sqlite:///{root / 'nas.db'}")
    with engine.begin() as c:
        paths = [p for (p,) in c.execute(sa.text("SELECT weights_path FROM nas_candidates WHERE weights_path IS NOT NULL"))]
        old_root = paths[0].split("/nas_weights/")[0]
        c.execute(sa.text("UPDATE nas_candidates SET weights_path = replace(weights_path, :old, :new)"),
                  {"old": old_root, "new": str(root)})
    engine.dispose()
    return root


def test_every_study_candidate_curve_and_weights_path_still_reads(copy):
    from nas.search.read.results import list_studies, study_report

    url = f"sqlite:///{copy / 'nas.db'}"
    assert [s["study"] for s in list_studies(url)] == ["release"]
    report = study_report(url, "release")
    complete = [t for t in report["trials"] if t["state"] == "COMPLETE"]
    assert len(complete) == TRIALS
    engine = sa.create_engine(url)
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT trial_number, curve, weights_path, objectives FROM nas_candidates "
                                 "WHERE study_name = 'release' ORDER BY trial_number")).all()
    engine.dispose()
    assert [r.trial_number for r in rows] == list(range(TRIALS))
    for r in rows:
        curve = json.loads(r.curve)
        assert [p["epoch"] for p in curve] == [1, 2] and all("val_accuracy" in p for p in curve)
        assert Path(r.weights_path).is_file()
        assert 0 <= json.loads(r.objectives)["accuracy"] <= 1


def _load(folder: Path, name: str):
    """The model an export folder's own model.py loads."""
    spec = importlib.util.spec_from_file_location(f"release_export_{name}", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load(folder)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_each_trial_exports_the_same_weights_and_outputs(copy, trial, tmp_path):
    import nas

    out = nas.export(f"sqlite:///{copy / 'nas.db'}", "release", tmp_path / f"t{trial}", trial=trial)
    before = FIXTURE / "exports" / f"trial_{trial}"
    old, new = load_file(before / "weights.safetensors"), load_file(Path(out) / "weights.safetensors")
    assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
    stored = load_file(FIXTURE / "outputs.safetensors")
    with torch.no_grad():
        now, then = _load(Path(out), f"now_{trial}")(stored["inputs"]), _load(before, f"then_{trial}")(stored["inputs"])
    assert torch.equal(now, then)  # today's export computes what the release's export computes, bit for bit
    # ... and what it computed where the fixture was made: the same up to the last bits of float32 sums, which
    # MKL orders by the CPU (this test's machine may lack the AVX-512 of the one that wrote outputs.safetensors)
    torch.testing.assert_close(now, stored[f"trial_{trial}"], rtol=1e-5, atol=1e-5)
    assert json.loads((Path(out) / "arch.json").read_text())["arch"] == json.loads(
        (before / "arch.json").read_text())["arch"]


def test_its_study_reads_as_selected_on_test_and_cannot_be_resumed(copy, capsys):
    """Scored by evaluator 2 (the test split selected): still read, marked so everywhere, never resumed."""
    import re

    from nas.cli import main
    from nas.dashboard import data
    from nas.search.read.results import list_studies, study_report
    from nas.search.store.storage import read_engine

    url = f"sqlite:///{copy / 'nas.db'}"
    report = study_report(url, "release")
    assert report["selection"] == "test" and list_studies(url)[0]["selection"] == "test"
    done = [t for t in report["trials"] if t["state"] == "COMPLETE"]
    assert all(t["evaluator"] == 2 and t["test"] == {"accuracy": t["values"]["accuracy"]} for t in done)
    engine = read_engine(url)
    assert data.selected_on_test(data.candidates(engine, "release"))
    assert data.confirmed(engine, "release", data.candidates(engine, "release"), data.directions(url, "release")).empty
    engine.dispose()
    for args in (["show", "release"], ["ls"]):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--storage", url])
        assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert "the search selected on the test split" in out and "(test: before 2026-12-07)" in out
    space = copy / "release.yaml"
    engine = sa.create_engine(url)
    with engine.connect() as c:
        space.write_text(c.execute(sa.text("SELECT space_text FROM nas_runs LIMIT 1")).scalar())
    engine.dispose()
    import hashlib

    before = hashlib.sha256((copy / "nas.db").read_bytes()).hexdigest()
    with pytest.raises(SystemExit) as exc:
        main(["run", str(space), "--storage", url, "--no-progress"])
    assert exc.value.code == 2
    assert re.search(r"scored by another version of nas's evaluator \(this nas scores with version 3", capsys.readouterr().err)
    # nor are its candidates confirmed: seeds would be weighed against test scores
    with pytest.raises(SystemExit) as exc:
        main(["confirm", "release", "--storage", url, "--no-progress"])
    assert exc.value.code == 2 and "scored by nas before 2026-12-07" in capsys.readouterr().err
    # both refusals wrote nothing: the file an older nas reads is the file it wrote
    assert hashlib.sha256((copy / "nas.db").read_bytes()).hexdigest() == before
    assert not (copy / "nas.db-wal").exists() or (copy / "nas.db-wal").stat().st_size == 0


def test_compare_refuses_to_mix_test_scored_and_validation_scored_studies(copy):
    import warnings

    import optuna

    from nas.errors import NasInputError
    from nas.search.read.results import compare

    url = f"sqlite:///{copy / 'nas.db'}"
    new = optuna.create_study(study_name="new", storage=url, directions=["maximize", "minimize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        new.set_metric_names(["accuracy", "params", "bandwidth"])
    with pytest.raises(NasInputError, match=r"'release' scored by nas before 2026-12-07 .* different splits"):
        compare(url, ["release", "new"])


def test_the_old_export_call_with_its_out_dir_keyword_still_works(copy, tmp_path):
    import nas

    url = f"sqlite:///{copy / 'nas.db'}"
    with pytest.warns(DeprecationWarning):
        out = nas.export(url, "release", out_dir=tmp_path / "kw", trial=0)
    assert (out / "model.py").is_file()
