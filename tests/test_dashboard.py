"""The dashboard on databases made by real `nas run`s: Streamlit's AppTest for the page logic and a real
headless Chromium (Debian's, driven by Playwright) for what a person sees."""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from child import nas_cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(name="dashboard")]  # its module fixture runs once

APP = str(Path(__file__).resolve().parent.parent / "nas" / "dashboard" / "app.py")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

GOOD = """\
name: good
task: {dataset: digits}
space:
  lift: [fixed_random, none]
  lift_width: {int: [64, 256], log: true, when: {lift: fixed_random}}
  hidden_width: {int: [8, 64], log: true}
  depth: {int: [1, 2]}
train: {epochs: 2, lr: {float: [1.0e-3, 1.0e-2], log: true}}
search: {sampler: random, trials: 8, workers: 2, seed: 0}
pruning: false
"""
FAILING = """\
name: broken
task: {dataset: digits}
space: {hidden_width: 32}
train: {epochs: 100000, timeout_s: 0.05, lr: {float: [1.0e-3, 1.0e-2]}}
search: {sampler: random, trials: 2, workers: 2, seed: 0}
"""




@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    (root / "good.yaml").write_text(GOOD)
    (root / "broken.yaml").write_text(FAILING)
    assert nas_cli("run", "good.yaml", "--no-progress", cwd=root).returncode == 0
    confirm = nas_cli("confirm", "good", "--seeds", "2", "--no-progress", cwd=root)  # the front's intervals
    assert confirm.returncode == 0, confirm.stderr[-3000:]
    assert nas_cli("run", "broken.yaml", "--no-progress", cwd=root).returncode == 1  # every candidate fails
    return root / "nas.db"


def app(url, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NAS_STORAGE", url)
    return AppTest.from_file(APP, default_timeout=120).run()


def test_page_shows_the_study_its_fronts_and_candidates(db, monkeypatch):
    at = app(f"sqlite:///{db}", monkeypatch)
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.selectbox[0].options == ["good", "broken"]
    at.sidebar.selectbox[0].select("good").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["complete"] == "8" and metrics["fail"] == "0"
    charts = at.get("plotly_chart")
    assert len(charts) >= 5  # two fronts, the 3-D view, hypervolume, best-so-far per objective
    front = json.loads(charts[0].proto.spec)
    names = [t["name"] for t in front["data"]]
    assert names[:3] == ["dominated", "front in this plane", "Pareto-optimal"]
    # then the confirmed front members (nas confirm, 2 seeds): mean validation accuracy and its 95 % error bar
    assert names[3:] and set(names[3:]) <= {"95 %: distinct", "95 %: within the noise of a cheaper one",
                                            "95 %: beaten by a cheaper one"}
    points = sum(len(_values(t["x"])) for t in front["data"] if t["mode"] == "markers" and "error_y" not in t)
    assert points == 8
    bars = [t for t in front["data"] if "error_y" in t]
    assert sum(len(_values(t["x"])) for t in bars) == len(_values(front["data"][2]["x"]))  # the front, confirmed
    assert front["layout"]["xaxis"]["tickformat"] == "~s"  # readable units: k, M
    assert front["layout"]["xaxis"]["title"]["text"] == "params"
    table = at.dataframe[0].value
    assert len(table) == 8 and {"trial", "state", "pareto", "architecture", "accuracy"} <= set(table.columns)
    assert table["pareto"].sum() == len(_values(front["data"][2]["x"]))
    specs = [json.loads(c.proto.spec) for c in charts]
    # Progress: the hypervolume nas run stored after each candidate, against the epochs trained
    progress = next(f for f in specs if "as nas run stored it" in f["layout"].get("title", {}).get("text", ""))
    with sa.create_engine(f"sqlite:///{db}").connect() as c:
        stored = c.execute(sa.text("SELECT epochs_total, hypervolume FROM nas_progress WHERE study_name = 'good' "
                                   "AND hypervolume IS NOT NULL ORDER BY id")).all()
    assert len(stored) >= 3
    assert list(_values(progress["data"][0]["x"])) == [r[0] for r in stored]
    assert np.allclose(_values(progress["data"][0]["y"]), [r[1] for r in stored])
    # Compare: nas compare's hypervolume against the epochs trained, drawn and tabled
    hv = [f for f in specs if "hypervolume against epochs trained" in f["layout"].get("title", {}).get("text", "")]
    assert len(hv) == 1 and [t["name"] for t in hv[0]["data"]] == ["good"]
    quality = next(d.value for d in at.dataframe if "early stopped" in d.value.columns)
    with sa.create_engine(f"sqlite:///{db}").connect() as c:
        epochs = c.execute(sa.text("SELECT SUM(epochs_trained) FROM nas_candidates WHERE study_name = 'good' "
                                   "AND state = 'COMPLETE' AND reused_from IS NULL")).scalar()
    row = quality.iloc[0]
    assert row["study"] == "good" and row["sampler"] == "random" and row["complete"] == 8
    assert row["epochs"] == epochs and max(_values(hv[0]["data"][0]["x"])) == epochs
    assert 0 < row["ratio"] <= 1  # the study reaches its own final hypervolume by its last epoch at the latest


def test_fronts_coloured_by_family_with_readable_log_ticks(db, monkeypatch):
    from nas.search.read.format import human_count

    at = app(f"sqlite:///{db}", monkeypatch)
    at.sidebar.selectbox[0].select("good").run()
    colour = next(s for s in at.selectbox if s.label == "colour by")
    assert colour.options == ["Pareto-optimal or not", "lift", "FPE α", "MoE experts", "mixer", "weights",
                              "connections", "activation", "exits"]
    colour.select("lift").run()
    assert not at.exception, [e.value for e in at.exception]
    front = json.loads(at.get("plotly_chart")[0].proto.spec)
    families = [t for t in front["data"] if "error_y" not in t]  # the confirmed front's error bars drawn apart
    names = [t["name"] for t in families]
    # hourglass where d_h < d_z (the lift's width, or the 64 inputs without a lift), else conventional; each
    # family once in the legend, every candidate drawn once
    with sa.create_engine(f"sqlite:///{db}").connect() as c:
        archs = [json.loads(a) for (a,) in c.execute(sa.text(
            "SELECT arch FROM nas_candidates WHERE study_name = 'good' AND state = 'COMPLETE'"))]
    want = {f"lift: {'hourglass' if a['hidden_width'] < (a.get('lift_width') or 64) else 'conventional'} "
            f"({a['lift']})" for a in archs}
    assert names[0] == "front in this plane" and sorted(names[1:]) == sorted(want)
    assert sum(len(_values(t["x"])) for t in families[1:]) == 8
    # the log axis carries its own ticks: 1-2-5 per decade in SI units, never Plotly's crowded minor labels
    axis = front["layout"]["xaxis"]
    assert axis["type"] == "log" and axis["tickmode"] == "array"
    assert 2 <= len(axis["ticktext"]) <= 7 and all(t[0] in "125" for t in axis["ticktext"])
    assert axis["ticktext"] == [human_count(v) for v in axis["tickvals"]]


def test_log_ticks():
    from nas.dashboard.data import log_ticks
    from nas.search.read.format import human_bytes

    # the bandwidth axis that printed "400k500k600k700k800k1MB": two ticks of 1-2-5 now, in the tables' units
    assert log_ticks(4.0e5, 1.05e6, human_bytes) == ([5e5, 1e6], ["500 KB", "1 MB"])
    assert log_ticks(14_000, 160_000) == ([2e4, 5e4, 1e5], ["20k", "50k", "100k"])
    values, labels = log_ticks(1e3, 1e8)  # 16 ticks of 1-2-5 would crowd: whole decades
    assert labels == ["1k", "10k", "100k", "1M", "10M", "100M"]
    assert log_ticks(2.1e5, 2.9e5)[1] == ["210k", "290k"]  # inside one step: the ends themselves
    assert log_ticks(0, 10) == ([], [])


def _values(array):
    """A plotly array: a plain list, or a typed array {dtype, bdata (base64)}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return array


def test_a_study_with_only_failed_candidates(db, monkeypatch):
    at = app(f"sqlite:///{db}", monkeypatch)
    at.sidebar.selectbox[0].select("broken").run()
    assert not at.exception, [e.value for e in at.exception]
    assert int({m.label: m.value for m in at.metric}["fail"]) >= 10  # the run stops after 10 failures
    assert any("Every candidate so far failed" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert (table["state"] == "FAIL").all() and table["error"].str.contains("exceeded train.timeout_s").all()
    assert any("exceeded train.timeout_s" in e.value for e in at.error)  # the detail view shows the reason


def test_an_empty_database_and_a_missing_one(tmp_path, monkeypatch):
    from nas.search.store.storage import Store, optuna_storage

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).close()
    optuna_storage(url)
    at = app(url, monkeypatch)
    assert not at.exception and any("No studies in this database yet" in i.value for i in at.info)
    at = app(f"sqlite:///{tmp_path / 'none.db'}", monkeypatch)
    assert not at.exception and any("no database at" in i.value for i in at.info)
    assert not (tmp_path / "none.db").exists(), "the dashboard must not create a database"


def test_the_page_never_writes(db, monkeypatch):
    before = db.stat().st_mtime_ns, sa.create_engine(f"sqlite:///{db}").connect().execute(
        sa.text("SELECT COUNT(*) FROM trials")).scalar()
    at = app(f"sqlite:///{db}", monkeypatch)
    at.sidebar.selectbox[0].select("good").run()
    assert not at.exception
    assert (db.stat().st_mtime_ns, before[1]) == before


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_in_a_real_browser(db, tmp_path):
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "nas.cli", "dashboard", "--port", str(port),
                               "--storage", f"sqlite:///{db}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "the dashboard did not come up"
            time.sleep(0.5)
        listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening

        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
                viewport={"width": 1500, "height": 1400})
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_test_id("stMetric").first.wait_for(timeout=60000)
            page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").click()
            page.get_by_role("option", name="good").click()
            page.get_by_text("best accuracy").wait_for(timeout=60000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60000)
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=60000)
            points, confirmed, bars = page.evaluate("""() => {
                const plot = document.querySelectorAll('.js-plotly-plot')[0];
                // _fullData: the traces as plotly.js drew them (typed arrays decoded, _length points each)
                const markers = plot._fullData.filter(t => t.mode === 'markers');
                const withBars = markers.filter(t => t.error_y && t.error_y.visible);
                const count = ts => ts.reduce((n, t) => n + t._length, 0);
                // the error bars plotly drew as SVG: one path per confirmed point
                return [count(markers) - count(withBars), count(withBars),
                        plot.querySelectorAll('g.errorbar path').length];
            }""")
            assert points == 8
            assert confirmed >= 1 and bars == confirmed  # every confirmed front member's 95 % interval, drawn
            page.screenshot(path=str(Path(os.environ.get("NAS_SCREENSHOT_DIR", tmp_path)) / "dashboard-fronts.png"))
            page.get_by_role("tab", name="Candidates").click()
            grid = page.locator('[data-testid="stDataFrame"]:visible').first  # the open tab's, not a hidden tab's
            grid.wait_for(timeout=60000)
            rows = grid.locator("[aria-rowcount]").first.get_attribute("aria-rowcount")
            assert int(rows) == 8 + 1  # the header row counts too
            shot = Path(os.environ.get("NAS_SCREENSHOT_DIR", tmp_path)) / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    # stopping `nas dashboard` stopped the page's server too: no Streamlit process serves that port any more
    serving = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended meanwhile
            continue
        if b"streamlit" in b" ".join(argv) and str(port).encode() in argv:
            serving.append(cmdline.parent.name)
    assert not serving, f"a Streamlit server outlived `nas dashboard`: pid {serving}"


def test_importances_and_the_export_download(db, monkeypatch):
    at = app(f"sqlite:///{db}", monkeypatch)
    at.sidebar.selectbox[0].select("good").run()
    n_charts = len(at.get("plotly_chart"))
    at.toggle(key="importance-on").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == n_charts + 2  # importances and parallel coordinates

    trial = at.selectbox(key="detail-trial").value
    at.button(key=f"export-{trial}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    download = at.get("download_button")
    assert len(download) == 1 and "download the exported module" in download[0].proto.label
    assert not at.error  # the export itself (nas.exporter, the code behind this button) is tested in test_export
