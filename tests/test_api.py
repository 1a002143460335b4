"""The Python surface for notebooks: nas.run (a file or a dict), nas.trials (a DataFrame), nas.export."""

import pytest

import nas
from nas.errors import NasInputError

SPACE = {
    "name": "notebook",
    "task": {"dataset": "digits"},
    "space": {"hidden_width": [8, 16], "depth": 1, "activation": ["relu", "gelu"]},
    "train": {"epochs": 1},
    "search": {"sampler": "random", "trials": 3, "seed": 0},  # no workers: the default for the cluster Ray sees
}


@pytest.mark.slow  # a real run (Ray)
def test_run_a_dict_then_read_its_trials_and_export_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = nas.run(SPACE)
    assert summary.study == "notebook" and summary.complete == 3 and summary.failed == 0
    import sqlalchemy as sa

    with sa.create_engine(nas.DEFAULT_STORAGE).connect() as c:  # no GPU here: one worker, as before GPUs counted
        assert c.execute(sa.text("SELECT workers FROM nas_runs")).scalar_one() == 1
    df = nas.trials("notebook")
    assert len(df) == 3 and set(df["state"]) == {"COMPLETE"}
    assert {"number", "pareto", "arch_id", "hidden_width", "activation", "accuracy", "params", "bandwidth"} <= set(
        df.columns)
    assert df["accuracy"].between(0, 1).all() and df["pareto"].any()
    assert set(df["hidden_width"]) <= {8, 16} and (df["depth"] == 1).all()  # fixed parameters are columns too
    assert "test_accuracy" in df.columns  # the record beside the validation score the search read
    best = nas.export("notebook", tmp_path / "best", pick="accuracy")  # storage= a keyword, as in run and trials
    assert (best / "model.py").is_file()
    with pytest.warns(DeprecationWarning, match=r"nas.export\(storage, study, out, ...\) is deprecated"):
        old = nas.export(nas.DEFAULT_STORAGE, "notebook", tmp_path / "old", pick="accuracy")  # the form before
    assert (old / "model.py").read_text() == (best / "model.py").read_text()
    with pytest.raises(TypeError, match="takes 2 positional arguments"):
        nas.export("notebook", tmp_path / "x", 3)
    # the same study again, from a file: resumed (its trials are complete), nothing trained twice
    (tmp_path / "notebook.yaml").write_text(__import__("yaml").safe_dump(SPACE, sort_keys=False))
    again = nas.run(tmp_path / "notebook.yaml", resume=True)
    assert again.complete == 3 and len(nas.trials("notebook")) == 3


def test_bad_input_raises_the_commands_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NasInputError, match="needs a name"):
        nas.run({k: v for k, v in SPACE.items() if k != "name"})
    with pytest.raises(NasInputError, match=r"space\.depth: must be at least 1"):
        nas.run({**SPACE, "space": {"depth": 0}})
    with pytest.raises(NasInputError, match="no database at"):
        nas.trials("notebook", storage=f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "nas.db").exists()


def test_the_root_default_storage_is_the_stores():
    from nas.search.store.storage import DEFAULT_STORAGE

    assert nas.DEFAULT_STORAGE == DEFAULT_STORAGE
