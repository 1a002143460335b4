"""What selecting on the test split was worth: the optimism of nas before 2026-12-07, replayed on the recorded table.

Every study is a real ``nas run`` (its default sampler and early stopping, dedupe, 2 workers on a simulated
clock) whose training is answered from ``benchmarks/table/table.json.gz`` (1,440 digits candidates trained
20 epochs each, one seed, by a real ``nas run``; ``nas.search.replay``). Per search seed, two studies:

- **validation** (nas since 2026-12-07): the search is told each candidate's best validation score; the
  pick is the complete candidate with the best validation score; its **test** score is what is reported.
- **test** (nas before): the same replay with the search told the test score instead (what evaluator 2
  stored as ``accuracy``), and the pick the best test score: the number nas used to report.

Within each validation study, the test score of the candidate picked by its test score against the one
picked by its validation score isolates the pick's optimism on the same candidates; the test study adds the
search's own (it steered toward high test scores). Candidates tied at the best validation score count as
the mean of their test scores. Compute: ``--budget-s`` recorded training seconds per study.

    python benchmarks/selection.py [--seeds 20] [--budget-s 350] [--jobs 2]

The last line: ``optimism_pick=<median points> optimism_old_nas=<median points> seeds=<n> budget_s=<s>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "benchmarks" / "table" / "table.json.gz"


class TestToldEvaluator:
    """nas before 2026-12-07, replayed: the table's answers with the test score where the search reads its
    score (``accuracy``), as evaluator 2 stored it; the validation score kept as ``val_best``."""

    def __init__(self, inner):
        self.inner = inner

    def setup(self, threads: int, device: str) -> None:
        self.inner.setup(threads, device)

    def __call__(self, job):
        out = self.inner(job)
        obj = out["objectives"]
        if not out.get("stopped_early") and "test_accuracy" in obj:
            out["objectives"] = {**obj, "accuracy": obj["test_accuracy"], "val_best": obj["accuracy"]}
        return out


def replay(table: dict, told: str, seed: int, budget_s: float, workers: int, work: Path) -> list[tuple[float, float]]:
    """One replayed study (the search told ``told``: validation or test): (validation, test) of each complete
    candidate it trained or reused."""
    import sqlalchemy as sa

    from nas.search.store.models import Candidate
    from nas.search.replay import ReplayEvaluator, SimulatedPool
    from nas.search.execution.driver import RunOptions, run
    from nas.spaces import parse_space

    doc = yaml.safe_load(table["space"])
    doc["name"] = f"{told}-s{seed}"
    doc["search"] = {"sampler": "tpe", "trials": 2000, "workers": workers, "seed": seed}  # nas's defaults
    doc.pop("pruning", None)  # nas's default early stopping
    space = parse_space(yaml.safe_dump(doc, sort_keys=False), f"<replay {doc['name']}>")
    evaluator = ReplayEvaluator(table, clock="cpu_seconds")
    if told == "test":
        evaluator = TestToldEvaluator(evaluator)
    pools: list[SimulatedPool] = []

    def make_pool(n, ev):
        pools.append(SimulatedPool(n, ev))
        return pools[-1]

    url = f"sqlite:///{work / (doc['name'] + '.db')}"
    dims = table["dims"]
    run(space, RunOptions(storage=url, progress=False, evaluator=evaluator, dims=(dims["d_in"], dims["d_out"]),
                          in_shape=tuple(dims["in_shape"]), pool=make_pool, weights=False,
                          stop_when=lambda: pools[0].spent >= budget_s))
    engine = sa.create_engine(url)
    with engine.connect() as c:
        rows = c.execute(sa.select(Candidate.objectives).where(Candidate.state == "COMPLETE")).all()
    engine.dispose()
    val = "val_best" if told == "test" else "accuracy"
    return [(float(o[val]), float(o["test_accuracy"])) for (o,) in rows]


def picked_test(points: list[tuple[float, float]], by: int) -> float:
    """The test score of the candidate with the best score ``by`` (0: validation, 1: test); ties: their mean."""
    best = max(p[by] for p in points)
    return statistics.mean(p[1] for p in points if p[by] == best)


_TABLE: dict = {}


def one(path: Path, seed: int, budget_s: float, workers: int, work: Path) -> dict:
    from nas.search.replay import load_table

    if "t" not in _TABLE:
        _TABLE["t"] = load_table(path)
    table = _TABLE["t"]
    v = replay(table, "validation", seed, budget_s, workers, work)
    t = replay(table, "test", seed, budget_s, workers, work)
    return {"seed": seed, "candidates": (len(v), len(t)),
            "val_pick": picked_test(v, 0), "test_pick_same": picked_test(v, 1),
            "old_nas": picked_test(t, 1), "old_nas_val_pick": picked_test(t, 0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget-s", type=float, default=350.0, help="recorded training seconds per study")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2, help="seeds replayed at once, in processes")
    args = ap.parse_args()
    t0 = time.perf_counter()
    shm = Path("/dev/shm")
    print(f"table {args.table.name}; nas's default search (tpe, early stopping η = 2), {args.workers} workers, "
          f"budget {args.budget_s:.0f} recorded training seconds per study, seeds 0–{args.seeds - 1}", flush=True)
    print(f"{'seed':>4} {'cands v/t':>10} {'val pick':>9} {'test pick':>10} {'old nas':>8}  (test accuracy)")
    with tempfile.TemporaryDirectory(prefix="nas-selection-", dir=shm if shm.is_dir() else None) as tmp, \
            ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(one, args.table, s, args.budget_s, args.workers, Path(tmp)) for s in range(args.seeds)]
        results = []
        for f in futures:
            r = f.result()
            results.append(r)
            print(f"{r['seed']:>4} {r['candidates'][0]:>4}/{r['candidates'][1]:<5} {r['val_pick']:>9.4f} "
                  f"{r['test_pick_same']:>10.4f} {r['old_nas']:>8.4f}", flush=True)

    def pts(xs):
        a = 100 * np.array(xs)
        return f"median {np.median(a):+.2f} points [25 %: {np.percentile(a, 25):+.2f}, 75 %: {np.percentile(a, 75):+.2f}]"

    pick = [r["test_pick_same"] - r["val_pick"] for r in results]
    old = [r["old_nas"] - r["val_pick"] for r in results]
    print(f"\nthe pick's optimism (same study: test of the best-test candidate − test of the best-validation one): "
          f"{pts(pick)}; above 0 on {sum(x > 0 for x in pick)}/{len(pick)} seeds")
    print(f"old nas's optimism (searched and picked on test, against searched and picked on validation): "
          f"{pts(old)}; above 0 on {sum(x > 0 for x in old)}/{len(old)} seeds")
    print(f"mean test accuracy reported: old nas {statistics.mean(r['old_nas'] for r in results):.4f}, "
          f"nas now {statistics.mean(r['val_pick'] for r in results):.4f}")
    print(f"{time.perf_counter() - t0:.0f} s in all")
    print(f"optimism_pick={100 * statistics.median(pick):.2f} optimism_old_nas={100 * statistics.median(old):.2f} "
          f"seeds={args.seeds} budget_s={args.budget_s:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
