"""Bad space files and command lines: one clear message naming the place, exit 2, nothing written."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import main

BAD = Path(__file__).parent / "bad_inputs"
CASES = sorted(BAD.glob("*.yaml"))


def _header(path: Path) -> tuple[str, int | None]:
    expect, line = None, None
    for text in path.read_text().splitlines():
        if text.startswith("# expect: "):
            expect = text[len("# expect: "):]
        elif text.startswith("# line: "):
            line = int(text[len("# line: "):])
    assert expect, f"{path.name} has no '# expect:' header"
    return expect, line


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def test_there_are_many_bad_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_bad_space_file(path, in_tmp, capsys):
    for extra in BAD.glob("*.npz"):
        shutil.copy(extra, in_tmp)
    space = in_tmp / path.name
    shutil.copy(path, space)
    expect, line = _header(path)
    code, out, err = run_cli(["run", str(space), "--no-progress"], capsys)
    assert code == 2
    assert err.startswith("nas: error: "), err
    assert re.search(expect, err), f"expected /{expect}/ in:\n{err}"
    if line is not None:
        assert f"{space}:{line}:" in err, f"expected the place {space}:{line}: in:\n{err}"
    assert "Traceback" not in err
    assert not (in_tmp / "nas.db").exists(), "a bad space file must not create the database"
    assert not (in_tmp / "nas_weights").exists()


def test_all_errors_are_reported_at_once(in_tmp, capsys):
    (in_tmp / "two.yaml").write_text("task: {dataset: digits}\nspace:\n  depth: 0\n  norm: batchnrm\n")
    code, _, err = run_cli(["run", "two.yaml"], capsys)
    assert code == 2
    assert "two.yaml:3: space.depth" in err and "two.yaml:4: space.norm" in err
    assert "did you mean 'batchnorm'" in err


def test_missing_space_file(in_tmp, capsys):
    code, _, err = run_cli(["run", "nothere.yaml"], capsys)
    assert code == 2 and "nothere.yaml: no such file" in err
    assert not (in_tmp / "nas.db").exists()


GOOD = "task: {dataset: digits}\nspace: {hidden_width: 8}\nsearch: {trials: 1, workers: 1}\n"


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--trials", "0"], r"--trials: must be at least 1, found 0"),
        (["--workers", "0"], r"--workers: must be at least 1, found 0"),
        (["--storage", "not a url"], r"--storage: not a database URL"),
        (["--storage", "mongodb://127.0.0.1/x"], r"unsupported database 'mongodb'"),
        (["--storage", "postgresql+psycopg://nas:secret@127.0.0.1:1/nas"], r"cannot connect"),
        (["--resume"], r"--resume: no study 'good' in sqlite:///nas.db to resume"),
        (["--address", "127.0.0.1:1"], r"--address 127.0.0.1:1: no Ray head answers there"),
        (["--address", "somewhere"], r"--address 'somewhere': expected HOST:PORT"),
        (["--timeout", "soon"], r"--timeout: not a duration: 'soon'; expected seconds or e.g. 90s, 30m, 2h"),
    ],
    ids=["trials0", "workers0", "storage-garbage", "storage-scheme", "storage-unreachable", "resume-missing",
         "ray-unreachable", "ray-garbage", "timeout-garbage"],
)
def test_bad_run_options(args, expect, in_tmp, capsys):
    (in_tmp / "good.yaml").write_text(GOOD)
    code, _, err = run_cli(["run", "good.yaml", "--no-progress", *args], capsys)
    assert code == 2
    assert re.search(expect, err), err
    assert "secret" not in err, "a database password must never be printed"
    if args[0] not in ("--storage", "--resume"):
        assert not (in_tmp / "nas.db").exists()


def test_resume_of_missing_study_writes_no_rows(in_tmp, capsys):
    import sqlalchemy as sa

    (in_tmp / "good.yaml").write_text(GOOD)
    code, _, _ = run_cli(["run", "good.yaml", "--resume"], capsys)
    assert code == 2
    engine = sa.create_engine("sqlite:///nas.db")
    with engine.connect() as c:
        tables = sa.inspect(engine).get_table_names()
        for t in ("studies", "trials", "nas_runs", "nas_candidates"):
            if t in tables:
                assert c.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar() == 0, t


def test_show_and_ls_without_a_database(in_tmp, capsys):
    code, _, err = run_cli(["ls"], capsys)
    assert code == 2 and "no database at nas.db" in err
    code, _, err = run_cli(["show", "quickstart"], capsys)
    assert code == 2 and "no database at nas.db" in err
    assert not (in_tmp / "nas.db").exists()


def test_console_script_exits_2_without_traceback(in_tmp):
    (in_tmp / "bad.yaml").write_text("task: {dataset: digits}\nspace:\n  depth: {int: [3, 1]}\n")
    proc = subprocess.run([sys.executable, "-m", "nas.cli", "run", "bad.yaml"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "bad.yaml:3: space.depth: empty or inverted range" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def a_study(in_tmp):
    """A study in ./nas.db made with Optuna alone (no training): trial 0 complete, 1 failed, 2 pruned."""
    import warnings

    import optuna

    from nas.search.store.storage import Store

    Store("sqlite:///nas.db").close()  # nas's tables, empty
    study = optuna.create_study(study_name="tiny", storage="sqlite:///nas.db", directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["accuracy", "params"])
    dist = {"depth": optuna.distributions.IntDistribution(1, 3)}
    study.add_trial(optuna.trial.create_trial(params={"depth": 1}, distributions=dist, values=[0.9, 100.0]))
    study.add_trial(optuna.trial.create_trial(params={"depth": 2}, distributions=dist,
                                              state=optuna.trial.TrialState.FAIL))
    study.add_trial(optuna.trial.create_trial(params={"depth": 3}, distributions=dist,
                                              state=optuna.trial.TrialState.PRUNED))
    return in_tmp / "nas.db"


@pytest.mark.parametrize(
    "args, expect",
    [
        (["tiny", "--seeds", "1"], r"--seeds: must be at least 2 \(one seed gives no interval\), found 1"),
        (["other"], r"no study 'other' in sqlite:///nas.db; studies there: tiny"),
        (["tiny", "--trial", "7"], r"--trial 7: study 'tiny' has no trial 7; its trials are 0 to 2"),
        (["tiny", "--trial", "1"], r"--trial 1: trial 1 of study 'tiny' failed; only a complete candidate"),
        (["tiny", "--trial", "2"], r"--trial 2: trial 2 of study 'tiny' was pruned; only a complete candidate"),
        (["tiny", "--front", "--trial", "0"], r"pass --front or --trial N, not both"),
        (["tiny", "--workers", "0"], r"--workers: must be at least 1, found 0"),
    ],
    ids=["seeds1", "unknown-study", "unknown-trial", "failed-trial", "pruned-trial", "front-and-trial", "workers0"],
)
def test_bad_confirm_commands(args, expect, a_study, capsys):
    import hashlib

    before = hashlib.sha256(a_study.read_bytes()).hexdigest()
    code, _, err = run_cli(["confirm", *args, "--no-progress"], capsys)
    assert code == 2, err
    assert err.startswith("nas: error: ") and re.search(expect, err), err
    assert hashlib.sha256(a_study.read_bytes()).hexdigest() == before, "a bad confirm must write nothing"


def test_confirm_without_a_database(in_tmp, capsys):
    code, _, err = run_cli(["confirm", "quickstart"], capsys)
    assert code == 2 and "no database at nas.db" in err
    assert not (in_tmp / "nas.db").exists()
