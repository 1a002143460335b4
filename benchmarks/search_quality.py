"""Search quality per training second, replayed on the recorded table (``benchmarks/table/table.json.gz``).

Every nas configuration is a real ``nas run`` (``nas.search.execution.driver.run``: its Optuna sampler, dedupe and
reuse, constraints, multi-objective early stopping) in which only training is replaced: each candidate is
answered from the table's recorded learning curve (``nas.search.replay.ReplayEvaluator``, epoch by epoch, so
early stopping acts as it would), on a simulated clock with ``--workers`` workers
(``nas.search.replay.SimulatedPool``: results reach the driver in the order real training would finish
them). Syne Tune's multi-objective methods (MOASHA, and its multi-objective random search) run on the same
table through Syne Tune's own simulated back end (``benchmarks/syne_peers.py``; ``pip install -e .[bench]``).

- **Compute** is counted in recorded training seconds: each epoch's CPU seconds of the worker that trained
  it (``cpu_seconds`` in the table; one thread each; wall seconds were measured on a machine shared with
  other work), summed over every candidate trained, complete or stopped early; a repeated candidate costs
  nothing, as in a real run. Epochs are reported beside.
- **Budget**: every study, of every method, runs until ``--budget-s`` training seconds are spent (the
  candidates in flight then finish).
- **Hypervolume**: of the complete candidates' recorded test objectives (accuracy, params, bandwidth; a
  candidate stopped early is not on the front), on one reference point derived from the whole table
  (``nas.search.quality.derive_reference``), after each candidate in finishing order.
- **Ratio**: for each seed, the training seconds a method needed to first reach random search's final
  hypervolume (random: nas's random sampler without early stopping, same seed), over random's total
  training seconds. A method that never reaches it within the budget has no ratio for that seed (counted
  as above every ratio: the median is taken with those seeds at +inf).

    python benchmarks/search_quality.py [--seeds 20] [--budget-s 2000] [--configs random,tpe,...]

The last line: ``compute_ratio=<best nas configuration's median> moasha_ratio=<median> seeds=<n> ...``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
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

# name: (sampler, sampler options, pruning settings or None)
ES3 = {"min_epochs": 1, "reduction_factor": 3}  # rungs at epochs 1, 3, 9 of 20
ES2 = {"min_epochs": 1, "reduction_factor": 2}  # rungs at epochs 1, 2, 4, 8, 16
CONFIGS = {
    "random": ("random", {}, None),
    "tpe": ("tpe", {}, None),
    "nsga2": ("nsga2", {}, None),
    "gp": ("gp", {}, None),
    "random+es": ("random", {}, ES3),
    "tpe+es": ("tpe", {}, ES3),
    "nsga2+es": ("nsga2", {}, ES3),
    "random+es2": ("random", {}, ES2),
    "tpe+es2": ("tpe", {}, ES2),
    "nsga2+es2": ("nsga2", {}, ES2),
}
PEERS = ("moasha", "morandom")
# left out of the default run: Optuna's GP sampler refits its model at every candidate, and a study here (some 150
# candidates) took about 12 minutes on 2 cores against 10-100 s for the others; --configs gp,... runs it
SLOW = ("gp",)


def space_doc(text: str, config: str, seed: int, trials: int, workers: int) -> dict:
    """The space file ``text`` set to search as nas configuration ``config`` does (study name ``CONFIG-sSEED``)."""
    sampler, options, pruning = CONFIGS[config]
    doc = yaml.safe_load(text)
    doc["name"] = f"{config.replace('+', '-')}-s{seed}"
    doc["search"] = {"sampler": sampler, "options": options, "trials": trials, "workers": workers, "seed": seed}
    doc["pruning"] = pruning if pruning is not None else False  # off, whatever the default
    return doc


def replay_nas(table: dict, config: str, seed: int, budget_s: float, workers: int, work: Path,
               max_candidates: int) -> list[dict]:
    """One replayed ``nas run`` of ``config``: its candidates' ends in finishing order (``ends_of``)."""
    from nas.search.replay import ReplayEvaluator, SimulatedPool
    from nas.search.execution.driver import RunOptions, run
    from nas.spaces import parse_space

    doc = space_doc(table["space"], config, seed, max_candidates, workers)
    name = doc["name"]
    space = parse_space(yaml.safe_dump(doc, sort_keys=False), f"<replay {name}>")
    dims = table["dims"]
    pools: list[SimulatedPool] = []

    def make_pool(n, evaluator):
        pools.append(SimulatedPool(n, evaluator))
        return pools[-1]

    url = f"sqlite:///{work / (name + '.db')}"
    run(space, RunOptions(storage=url, progress=False, evaluator=ReplayEvaluator(table, clock="cpu_seconds"),
                          dims=(dims["d_in"], dims["d_out"]), in_shape=tuple(dims["in_shape"]),
                          pool=make_pool, weights=False, stop_when=lambda: pools[0].spent >= budget_s))
    return ends_of(url, name, "wall_time_s")


def ends_of(url: str, name: str, clock: str) -> list[dict]:
    """A study's candidates' ends in finishing order (the order of its ``nas_progress`` rows), each
    ``{"seconds", "epochs", "objectives" (of a complete candidate, else None)}``; ``seconds``: the candidate's
    ``wall_time_s`` (in a replay, the recorded seconds it trained), or with ``cpu_seconds`` the sum of its
    curve's CPU seconds (a real run); 0 for a reused candidate."""
    import sqlalchemy as sa

    from nas.search.store.models import Candidate, Progress

    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            order = [r.trial_number for r in c.execute(
                sa.select(Progress.trial_number).where(Progress.study_name == name).order_by(Progress.id))]
            rows = {r.trial_number: r for r in c.execute(sa.select(Candidate).where(Candidate.study_name == name))}
    finally:
        engine.dispose()
    ends = []
    for number in order:
        r = rows[number]
        trained = r.reused_from is None
        seconds = (float(r.wall_time_s or 0.0) if clock == "wall_time_s"
                   else sum(float(p.get("cpu_seconds", 0.0)) for p in r.curve or []))
        ends.append({"seconds": seconds if trained else 0.0, "epochs": int(r.epochs_trained or 0) if trained else 0,
                     "objectives": r.objectives if r.state == "COMPLETE" else None})
    return ends


def replay_peer(table: dict, method: str, seed: int, budget_s: float, workers: int) -> list[dict]:
    """One Syne Tune study on the table (``benchmarks/syne_peers.py``), as ``replay_nas`` returns its ends."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from syne_peers import run_syne

    epochs = len(next(iter(table["candidates"].values()))["curve"])
    ends = []
    # Syne Tune's budget is simulated wall time: with every worker busy (asynchronous), budget_s / workers of it
    # spends budget_s training seconds; 1.2 times that leaves room, and curve() cuts every method at budget_s
    for t in run_syne(table, method, seed=seed, workers=workers, max_trials=None,
                      max_seconds=1.2 * budget_s / workers, clock="cpu_seconds"):
        entry = table["candidates"][t["key"]]
        ends.append({"seconds": t["seconds"], "epochs": t["epochs_trained"],
                     "objectives": entry["objectives"] if t["epochs_trained"] == epochs else None})
    return ends


def curve(ends: list[dict], metrics: list[str], directions: list[str], reference, budget_s: float
          ) -> list[tuple[float, int, float]]:
    """(training seconds so far, epochs so far, hypervolume) after each end, up to the one that spends the budget."""
    from nas.search import quality

    seconds, epochs, out, points = 0.0, 0, [], []
    for e in ends:
        if seconds >= budget_s:
            break
        seconds += e["seconds"]
        epochs += e["epochs"]
        if e["objectives"] is not None:
            points.append([e["objectives"][m] for m in metrics])
        hv = quality.hypervolume(np.array(points), directions, reference) if points else 0.0
        out.append((seconds, epochs, hv))
    return out


_TABLES: dict[Path, dict] = {}  # each worker process reads the table once


def study(path: Path, config: str, seed: int, budget: float, workers: int, work: Path, max_candidates: int,
          metrics: list[str], directions: list[str], reference) -> list[tuple[float, int, float]]:
    """One study of ``config`` (a nas configuration or a peer) on the table at ``path``: its curve."""
    from nas.search.replay import load_table

    if path not in _TABLES:
        _TABLES[path] = load_table(path)
    table = _TABLES[path]
    if config in PEERS:
        ends = replay_peer(table, config, seed, budget, workers)
    else:
        ends = replay_nas(table, config, seed, budget, workers, work, max_candidates)
    return curve(ends, metrics, directions, reference, budget)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 (default 20)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="training seconds per study (default: what 100 candidates of the table cost on average)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--configs", default=",".join([c for c in CONFIGS if c not in SLOW] + list(PEERS)),
                    help=f"nas configurations and peers to run (default: all but {', '.join(SLOW)})")
    ap.add_argument("--jobs", type=int, default=2, help="studies replayed at once, in processes (default 2)")
    ap.add_argument("--max-candidates", type=int, default=2000, help="a study's cap on candidates (repeats included)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="a JSON-lines file: each finished study's curve is appended to it, and a rerun with the same "
                         "table, budget, workers and candidate cap takes the studies it already holds from it")
    args = ap.parse_args()

    from nas.search import quality
    from nas.search.replay import load_table

    t0 = time.perf_counter()
    table = load_table(args.table)
    cands = list(table["candidates"].values())
    metrics = list(table["directions"])
    directions = [table["directions"][m] for m in metrics]
    reference = quality.derive_reference(np.array([[c["objectives"][m] for m in metrics] for c in cands]), directions)
    full = [sum(p["cpu_seconds"] for p in c["curve"]) for c in cands]
    budget = args.budget_s if args.budget_s is not None else round(100 * statistics.mean(full), -1)
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS and c not in PEERS]
    if unknown or "random" not in configs:
        sys.exit(f"--configs: unknown {', '.join(unknown)}" if unknown else "--configs must include random")
    print(f"table {args.table.name}: {len(cands)} candidates × {len(cands[0]['curve'])} epochs, "
          f"{sum(full):.0f} training seconds in all (a candidate: median {statistics.median(full):.1f} s, "
          f"{min(full):.1f}–{max(full):.1f} s); budget {budget:.0f} training seconds per study, {args.workers} workers, "
          f"seeds 0–{args.seeds - 1}; reference point "
          + ", ".join(f"{m} {v:.4g}" for m, v in zip(metrics, reference)), flush=True)

    shm = Path("/dev/shm")  # the studies' SQLite files in memory where the OS offers it: commits without fsync
    with tempfile.TemporaryDirectory(prefix="nas-search-quality-", dir=shm if shm.is_dir() else None) as tmp, \
            ProcessPoolExecutor(args.jobs) as pool:
        setting = {"table": hashlib.sha256(args.table.read_bytes()).hexdigest()[:16], "budget_s": budget,
                   "workers": args.workers, "max_candidates": args.max_candidates}
        done = {}
        if args.cache is not None and args.cache.exists():
            for line in args.cache.read_text().splitlines():
                entry = json.loads(line)
                if entry["setting"] == setting:
                    done[(entry["config"], entry["seed"])] = [tuple(p) for p in entry["curve"]]
        # the cheap studies first, so that an interrupted run (with --cache) has the most configurations whole
        order = sorted(configs, key=lambda c: c == "gp")
        tasks = {(config, seed): pool.submit(study, args.table, config, seed, budget, args.workers, Path(tmp),
                                             args.max_candidates, metrics, directions, reference)
                 for config in order for seed in range(args.seeds) if (config, seed) not in done}
        results = {c: [] for c in configs}
        for config in order:
            for seed in range(args.seeds):
                if (config, seed) in done:
                    results[config].append(done[(config, seed)])
                    continue
                results[config].append(tasks[(config, seed)].result())
                if args.cache is not None:
                    with args.cache.open("a") as f:
                        f.write(json.dumps({"setting": setting, "config": config, "seed": seed,
                                            "curve": results[config][-1]}) + "\n")
            print(f"  {config}: {args.seeds} studies, {time.perf_counter() - t0:.0f} s so far", flush=True)
    print(f"  {len(tasks)} studies replayed ({len(done)} taken from --cache) in {time.perf_counter() - t0:.0f} s",
          flush=True)

    def reach(c: list[tuple[float, int, float]], target: float) -> float:
        return next((s for s, _, hv in c if hv >= target - 1e-12), math.inf)

    rows, medians = [], {}
    for config in configs:
        ratios, finals, seconds, epochs, ends = [], [], [], [], []
        for seed, c in enumerate(results[config]):
            base = results["random"][seed]
            target, total = base[-1][2], base[-1][0]
            ratios.append(reach(c, target) / total)
            finals.append(c[-1][2])
            seconds.append(c[-1][0])
            epochs.append(c[-1][1])
            ends.append(len(c))
        medians[config] = statistics.median(ratios)
        q1, q3 = np.percentile(ratios, [25, 75]) if all(map(math.isfinite, ratios)) else (
            np.percentile(ratios, 25), np.percentile(ratios, 75))
        rows.append((config, medians[config], q1, q3, sum(map(math.isfinite, ratios)), statistics.median(finals),
                     statistics.median(seconds), statistics.median(epochs), statistics.median(ends)))

    def fmt(x: float) -> str:
        return "never" if not math.isfinite(x) else f"{x:.3f}"

    print(f"\n{'method':<12} {'ratio median':>12} {'[25%, 75%]':>16} {'reached':>8} {'final hv':>9} "
          f"{'seconds':>8} {'epochs':>7} {'candidates':>10}")
    for config, med, q1, q3, n, hv, s, e, k in rows:
        print(f"{config:<12} {fmt(med):>12} {'[' + fmt(q1) + ', ' + fmt(q3) + ']':>16} {n:>4}/{args.seeds:<3} "
              f"{hv:>9.4f} {s:>8.0f} {e:>7.0f} {k:>10.0f}")
    nas_configs = {c: m for c, m in medians.items() if c in CONFIGS and c != "random"}
    best = min(nas_configs, key=nas_configs.get) if nas_configs else "random"
    print(f"\n{time.perf_counter() - t0:.0f} s in all")
    print(f"compute_ratio={fmt(medians[best])} moasha_ratio={fmt(medians.get('moasha', math.nan))} "
          f"seeds={args.seeds} best={best} budget_s={budget:.0f} "
          + " ".join(f"{c.replace('+', '_')}={fmt(m)}" for c, m in medians.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
