"""Every seed experiment in examples/papers/ runs with `nas run` as shipped (one epoch, one candidate):
its task loads, its candidate trains and is recorded with the task's own score. One Ray head, started
once by a holder process on loopback, serves every run (`nas run --address`)."""

import json
import math
from pathlib import Path

import pytest
import yaml

from child import hold_cluster, nas_cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("papers")]

PAPERS = sorted((Path(__file__).resolve().parent.parent / "examples" / "papers").glob("*.yaml"))

@pytest.fixture(scope="module")
def ray_address():
    with hold_cluster() as address:  # one node on 127.0.0.1, for every run of the module
        yield address


def test_there_is_a_file_per_seed_experiment():
    assert {p.stem for p in PAPERS} >= {"hourglass_generative", "hourglass_denoise", "hourglass_superres",
                                        "fpe_sat", "maxstate_rows"}


@pytest.mark.parametrize("path", PAPERS, ids=lambda p: p.stem)
def test_nas_run_trains_the_papers_experiment(path, ray_address, tmp_path):
    doc = yaml.safe_load(path.read_text())
    doc["train"]["epochs"] = 1  # the file as shipped, but one epoch of one candidate
    doc["search"].update(trials=1, workers=1)
    (tmp_path / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))  # `when` reads earlier labels
    proc = nas_cli("run", path.name, "--address", ray_address, "--no-progress", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = json.loads(nas_cli("show", doc["name"], "--format", "json", cwd=tmp_path, timeout=60).stdout)
    [trial] = shown["trials"]
    score = "accuracy" if "accuracy" in doc["objectives"] else "psnr"  # generative classification: psnr
    assert trial["state"] == "COMPLETE" and set(trial["values"]) == set(doc["objectives"])
    assert math.isfinite(trial["values"][score]) and trial["values"]["params"] > 0
    if trial["params"].get("fpe_alpha", 1) > 1:  # the FPE paper's interference measures, before and after
        assert {"fpe_capacity_dense", "fpe_capacity", "fpe_abs_cos_dense", "fpe_abs_cos"} <= set(trial["measured"])
