"""The documentation site builds from a clean checkout with warnings as errors, its key tables are the code's
declarations, and the README stays a short front page that keeps the two set-up commands first."""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists():
        pytest.fail("mkdocs is not installed: pip install -e '.[test]' installs it")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-4000:]
    return out


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_every_page_builds_and_the_key_tables_are_the_declarations(site):
    from nas.spaces import vocabulary
    from nas.spaces.arch import ArchSpec, TrainSpec

    for page in ("index.html", "space-file/index.html", "cli/index.html", "scores/index.html",
                 "benchmarks/index.html"):
        assert (site / page).is_file(), page
    html = (site / "space-file" / "index.html").read_text()
    assert "nas:keys" not in html  # every marker replaced by its table
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    table = {}
    for r in rows:
        cells = [_text(c).strip() for c in re.findall(r"<td>(.*?)</td>", r, flags=re.S)]
        if len(cells) == 6:
            table[cells[0]] = cells
    for cls in (ArchSpec, TrainSpec):
        for f in dataclasses.fields(cls):
            k = f.metadata["key"]
            if not k.in_space:
                assert f.name not in table
                continue
            assert f.name in table, f"{f.name} is missing from the generated key table"
            assert table[f.name][5] == k.meaning
            if k.registry:  # a registry's names, all of them, in its order
                assert table[f.name][2].split(" , ") == list(getattr(vocabulary, k.registry))


def test_the_readme_is_a_short_front_page_with_the_set_up_commands_first():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    blocks = re.findall(r"```\n(.*?)\n```", readme, flags=re.S)
    assert blocks[0].startswith("python3 -m venv .venv && . .venv/bin/activate && pip install \"torch==2.13.0\" -e . "
                                "&& nas run examples/quickstart.yaml")
    assert blocks[1].endswith("python -m pytest -q") and blocks[1] in (ROOT / ".ci" / "run").read_text()
    for part in ("nas/spaces/", "nas/evaluators/", "nas/search/", "execution/", "store/", "read/", "nas/exporter/",
                 "nas/kernels/", "nas/dashboard/", "docs/"):
        assert part in readme, f"the README's Layout does not show {part}"
