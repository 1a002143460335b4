"""4 workers × 120 zero-cost candidates while a reader polls the study: nothing lost, nothing doubled,
no 'database is locked', and the reader never blocks the writer."""

import threading
import time

import pytest
import sqlalchemy as sa

from child import run_child
from nas.search.read.results import study_report

pytestmark = pytest.mark.slow

SPACE = """\
name: busy
task: {dataset: digits}
space: {hidden_width: {int: [8, 100000]}, depth: {int: [1, 5]}}
train: {lr: {float: [1.0e-4, 1.0e-2], log: true}}
search: {sampler: random, trials: 120, workers: 4, seed: 0}
"""


def test_four_workers_120_candidates_with_a_reader(storage_url):
    stop = threading.Event()
    reads, read_errors = [], []

    def reader():
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                report = study_report(storage_url, "busy")
                reads.append((time.perf_counter() - t0, len(report["trials"])))
            except Exception as exc:  # before the study exists the reader is told so: anything else is a bug
                if "no study 'busy'" not in str(exc) and "no database at" not in str(exc):
                    read_errors.append(repr(exc))
            time.sleep(0.5)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        summary = run_child(SPACE, storage_url, "zero", "m.ZeroCost()")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not read_errors, read_errors[:3]
    assert summary == {"complete": 120, "failed": 0}
    assert len(reads) > 5 and max(n for _, n in reads) > 0, "the reader saw the study while it ran"

    engine = sa.create_engine(storage_url)
    with engine.connect() as c:
        numbers = [r[0] for r in c.execute(sa.text("SELECT number FROM trials ORDER BY number"))]
        states = {r[0] for r in c.execute(sa.text("SELECT state FROM trials"))}
        cands = c.execute(sa.text("SELECT trial_number, state FROM nas_candidates")).all()
        workers = {r[0].rsplit(":", 1)[-1] for r in c.execute(sa.text(
            "SELECT worker FROM nas_candidates WHERE worker IS NOT NULL"))}
    engine.dispose()
    assert numbers == list(range(120)), "no lost or duplicated trial numbers"
    assert states == {"COMPLETE"}
    assert sorted(n for n, _ in cands) == list(range(120)) and {s for _, s in cands} == {"COMPLETE"}
    assert len(workers) == 4, "all four workers ran candidates"
