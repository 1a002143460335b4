"""Search quality per training second against the peers at their best, replayed on two recorded tables.

Tables: ``benchmarks/table/table.json.gz`` (digits: 1,440 candidates, mixers included) and
``benchmarks/table_sat/table.json.gz`` (the FPE paper's sat task: 1,260 candidates, FPE with all three
splits), each every point of its space file trained once, 20 epochs, by a real ``nas run``.

Methods, each on the same table, budget, workers (2) and prior (each parameter's choices exactly as nas samples
them: the peers read the table's space file, ``syne_peers.TableSpace``):

- nas: every configuration is a real ``nas run`` (sampler, dedupe and reuse, constraints, multi-objective early
  stopping) whose training is answered from the table epoch by epoch on a simulated clock
  (``nas.search.replay``); ``tpe+es2`` is nas's default (tpe, early stopping η = 2), beside ``tpe`` (no early
  stopping) and ``random``. The other configurations (``ABLATIONS``) run when named in ``--methods``.
- Syne Tune 0.16 through its own simulated back end (``syne_peers.py``; ``pip install -e .[bench]``): its
  multi-objective random search; MOASHA as shipped and with a rank-correct priority (``moasha_rc``: its
  shipped priority returns indices where ranks are read, ``benchmarks/moasha_rank_bug.py``), each at η = 2
  and 3; multi-objective regularized evolution with the rank-correct priority.
- ``optuna_tpe_hb``: what a user could write with Optuna alone: TPE and Optuna's Hyperband pruner on a
  scalarised validation objective (``optuna_peer.py``, which states the scalarisation).
- The model-based, in their own command (``--model-based``: a model fit per suggestion, minutes per study):
  nas's ``gp`` configuration (Optuna's GP sampler, noisy objective) and Syne Tune's ``EHVI``.

Every method is driven by validation scores: nas's searches and early stopping read the best checkpoint's
validation score (a table recorded before evaluator 3 is read so, ``nas.search.replay.selected``), the peers
the per-epoch validation curve. Accounting, the same for every method: compute is recorded training seconds
(each epoch's CPU seconds of its worker), and a training of a candidate costs only the epochs beyond those
already paid for that candidate (a repeat of a complete candidate costs nothing, as nas's reuse makes it;
Syne Tune and Optuna would train it again, and are not charged for it). The front after each end: the
complete candidates non-dominated on their validation score, params and bandwidth; its hypervolume is
computed on their **test** scores (the record), on one reference point per table derived from the whole
table (``nas.search.quality``).

Target and ratio: the median, over the seeds, of nas's random search's final hypervolume (independent runs,
not one same-seed run) within the budget; a study's ratio is the training seconds it needed to reach that
target over the median training seconds random search spent in all. Per method: the median ratio and its
quartiles over the seeds (a study that never reaches the target counts as +inf), and the curves (median and
quartiles of the hypervolume against training seconds) drawn in ``--plot``.

    python benchmarks/search_quality.py [--seeds 20] [--cache FILE] [--plot benchmarks/results/search_quality.png]
    python benchmarks/search_quality.py --model-based --seeds 10     # nas's gp and Syne Tune's EHVI (a model per ask)

Last line: ``compute_ratio=<nas default's median over both tables> best_peer=<name> best_peer_ratio=<its
median> seeds=<n> tables=<n>``, then each table's ``<table>_compute_ratio`` and ``<table>_best_peer``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
TABLES = [ROOT / "benchmarks" / "table" / "table.json.gz", ROOT / "benchmarks" / "table_sat" / "table.json.gz"]
DEFAULT = "tpe+es2"  # nas's default configuration

# nas: name -> (sampler, pruning or None)
ES3 = {"min_epochs": 1, "reduction_factor": 3}  # rungs at epochs 1, 3, 9 of 20
ES2 = {"min_epochs": 1, "reduction_factor": 2}  # rungs at epochs 1, 2, 4, 8, 16
CONFIGS = {
    "random": ("random", None), "tpe": ("tpe", None), "nsga2": ("nsga2", None),
    "random+es2": ("random", ES2), "tpe+es": ("tpe", ES3), "tpe+es2": ("tpe", ES2), "nsga2+es2": ("nsga2", ES2),
    "gp": ("gp", None),
    # nas's tpe with each fit used for one proposal only (Optuna's TPE: the default before 2026-12-07), and with a
    # fit serving proposals until the study changed by 10 % of its finished trials (at a study's ~200 finished
    # trials, a fit per ~10 proposals: what the default's 1 % gives at its 2,000-trial history bound)
    "tpe+es2/refit=none": ("tpe", ES2), "tpe+es2/refit=0.1": ("tpe", ES2),
}
OPTIONS = {"tpe+es2/refit=none": {"refit_share": None}, "tpe+es2/refit=0.1": {"refit_share": 0.1}}
# peers: name -> (runner, method, reduction factor)
PEERS = {
    "syne_random": ("syne", "morandom", 3), "moasha_eta2": ("syne", "moasha", 2), "moasha_eta3": ("syne", "moasha", 3),
    "moasha_rc_eta2": ("syne", "moasha_rc", 2), "moasha_rc_eta3": ("syne", "moasha_rc", 3),
    "morea_rc": ("syne", "morea_rc", 3), "optuna_tpe_hb": ("optuna", "tpe_hb", 3),
    "syne_ehvi": ("syne", "ehvi", 3),
}
MODEL_BASED = ("gp", "syne_ehvi")  # refit a model at every ask: their own command (--model-based)
# nas configurations outside the default command (each a replay of nas's full driver, the slow part): the old
# default nsga2, η = 3 and random with early stopping; run them with --methods
ABLATIONS = ("nsga2", "nsga2+es2", "tpe+es", "random+es2", "tpe+es2/refit=none", "tpe+es2/refit=0.1")


def space_doc(text: str, config: str, seed: int, trials: int, workers: int) -> dict:
    """The space file ``text`` set to search as nas configuration ``config`` does (study name ``CONFIG-sSEED``)."""
    sampler, pruning = CONFIGS[config]
    doc = yaml.safe_load(text)
    doc["name"] = f"{re.sub('[^A-Za-z0-9_.-]', '-', config)}-s{seed}"
    doc["search"] = {"sampler": sampler, "trials": trials, "workers": workers, "seed": seed,
                     **({"options": OPTIONS[config]} if config in OPTIONS else {})}
    doc["pruning"] = pruning if pruning is not None else False
    return doc


def replay_nas(table: dict, config: str, seed: int, budget_s: float, workers: int, work: Path,
               max_candidates: int) -> list[dict]:
    """One replayed ``nas run`` of ``config``: its candidates' ends in finishing order, each ``{"key",
    "epochs", "complete"}`` (a reused candidate: epochs 0)."""
    import sqlalchemy as sa

    from nas.search.replay import ReplayEvaluator, SimulatedPool, key_of
    from nas.search.execution.driver import RunOptions, run
    from nas.search.store.models import Candidate, Progress
    from nas.spaces import parse_space

    doc = space_doc(table["space"], config, seed, max_candidates, workers)
    name = doc["name"]
    space = parse_space(yaml.safe_dump(doc, sort_keys=False), f"<replay {name}>")
    dims = table["dims"]
    pools = []

    def make_pool(n, evaluator):
        pools.append(SimulatedPool(n, evaluator))
        return pools[-1]

    url = f"sqlite:///{work / (name + '-' + hashlib.sha1(table['space'].encode()).hexdigest()[:8] + '.db')}"
    run(space, RunOptions(storage=url, progress=False, evaluator=ReplayEvaluator(table, clock="cpu_seconds"),
                          dims=(dims["d_in"], dims["d_out"]), in_shape=tuple(dims["in_shape"]),
                          pool=make_pool, weights=False, stop_when=lambda: pools[0].spent >= budget_s))
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            order = [r.trial_number for r in c.execute(
                sa.select(Progress.trial_number).where(Progress.study_name == name).order_by(Progress.id))]
            rows = {r.trial_number: r for r in c.execute(sa.select(Candidate).where(Candidate.study_name == name))}
    finally:
        engine.dispose()
    return [{"key": key_of(rows[n].arch, rows[n].train), "complete": rows[n].state == "COMPLETE",
             "epochs": 0 if rows[n].reused_from is not None else int(rows[n].epochs_trained or 0)} for n in order]


def replay_peer(table: dict, peer: str, seed: int, budget_s: float, workers: int) -> list[dict]:
    """One peer study on the table, its ends as ``replay_nas`` gives them."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    runner, method, eta = PEERS[peer]
    epochs = len(next(iter(table["candidates"].values()))["curve"])
    # simulated wall time with every worker busy: budget_s / workers of it spends budget_s training seconds;
    # repeats cost nothing in the accounting, so give the peers room (3×) and cut every method at budget_s
    wall = 3.0 * budget_s / workers
    if runner == "syne":
        from syne_peers import run_syne

        trials = run_syne(table, method, seed=seed, workers=workers, max_trials=None, max_seconds=wall,
                          reduction_factor=eta, clock="cpu_seconds")
    else:
        from optuna_peer import run_optuna_hb

        trials = run_optuna_hb(table, seed=seed, workers=workers, max_seconds=wall)
    return [{"key": t["key"], "epochs": t["epochs_trained"], "complete": t["epochs_trained"] == epochs} for t in trials]


def scored(table: dict) -> dict[str, dict]:
    """Per candidate: its validation objectives (what selects) and its test ones (the record), and the
    cumulative recorded CPU seconds of its epochs."""
    from nas.search.replay import selected

    out = {}
    metrics = list(table["directions"])
    for key, entry in table["candidates"].items():
        epochs = len(entry["curve"])
        score = next(k for k in entry["curve"][0] if k.startswith("val_"))
        obj = selected(entry, epochs, score)
        m = score[len("val_"):]
        out[key] = {"val": [float(obj[x]) for x in metrics],
                    "test": [float(obj[f"test_{m}"] if x == m else obj[x]) for x in metrics],
                    "cum": np.cumsum([float(p["cpu_seconds"]) for p in entry["curve"]]).tolist()}
    return out


def curve(ends: list[dict], cand: dict, directions: list[str], reference, budget_s: float) -> list[tuple[float, float]]:
    """(training seconds so far, hypervolume of the validation front's test scores) after each end, the same
    accounting for every method (the module's docstring), up to the end that spends the budget."""
    import moocore

    from nas.search import quality

    paid: dict[str, int] = {}
    seconds, front_keys, out = 0.0, [], []
    maximise = [d == "maximize" for d in directions]
    for e in ends:
        if seconds >= budget_s:
            break
        k, ep = e["key"], e["epochs"]
        before = paid.get(k, 0)
        if ep > before:
            cum = cand[k]["cum"]
            seconds += cum[ep - 1] - (cum[before - 1] if before else 0.0)
            paid[k] = ep
        if e["complete"] and k not in front_keys:
            front_keys.append(k)
            vals = np.array([cand[x]["val"] for x in front_keys])
            keep = moocore.is_nondominated(vals, maximise=maximise, keep_weakly=True)
            front_keys = [x for x, kept in zip(front_keys, keep) if kept]
        hv = (quality.hypervolume(np.array([cand[x]["test"] for x in front_keys]), directions, reference)
              if front_keys else 0.0)
        out.append((seconds, hv))
    return out


_TABLES: dict[str, tuple] = {}


def study(path: str, method: str, seed: int, budget: float, workers: int, work: str, max_candidates: int
          ) -> list[tuple[float, float]]:
    """One study of ``method`` (a nas configuration or a peer) on the table at ``path``: its curve."""
    from nas.search import quality
    from nas.search.replay import load_table

    if path not in _TABLES:
        table = load_table(path)
        cand = scored(table)
        directions = [table["directions"][m] for m in table["directions"]]
        reference = quality.derive_reference(np.array([c["test"] for c in cand.values()]), directions)
        _TABLES[path] = (table, cand, directions, reference)
    table, cand, directions, reference = _TABLES[path]
    if method in PEERS:
        ends = replay_peer(table, method, seed, budget, workers)
    else:
        ends = replay_nas(table, method, seed, budget, workers, Path(work), max_candidates)
    return curve(ends, cand, directions, reference, budget)


def reach(c: list[tuple[float, float]], target: float) -> float:
    return next((s for s, hv in c if hv >= target - 1e-12), math.inf)


def on_grid(c: list[tuple[float, float]], grid: np.ndarray) -> np.ndarray:
    """The curve's hypervolume at each training second of ``grid`` (a step function; 0 before the first end)."""
    secs = np.array([s for s, _ in c]) if c else np.zeros(0)
    hvs = np.array([h for _, h in c]) if c else np.zeros(0)
    idx = np.searchsorted(secs, grid, side="right") - 1
    return np.where(idx >= 0, hvs[np.clip(idx, 0, None)] if len(hvs) else 0.0, 0.0)


def fmt(x: float) -> str:
    return "never" if not math.isfinite(x) else f"{x:.3f}"


def _open(path: Path, mode: str):
    """The cache file: gzip-compressed when its name ends in .gz (appending adds a gzip member)."""
    import gzip

    return gzip.open(path, mode) if path.suffix == ".gz" else path.open(mode)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default=",".join(str(t) for t in TABLES))
    ap.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 (default 20)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="training seconds per study (default: what 100 candidates of the table cost on average)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default=None, help="nas configurations and peers, comma-separated (default: random, tpe, tpe+es2 and every peer but the "
                    f"model-based ones; also {', '.join(ABLATIONS)})")
    ap.add_argument("--model-based", action="store_true", help=f"run {', '.join(MODEL_BASED)} (and random, the "
                    "target) instead: they refit a model at every ask")
    ap.add_argument("--jobs", type=int, default=2, help="studies replayed at once, in processes (default 2)")
    ap.add_argument("--max-candidates", type=int, default=2000, help="a nas study's cap on candidates")
    ap.add_argument("--cache", type=Path, default=None, help="a JSON-lines file (.gz: compressed) of finished studies' curves: a rerun "
                    "with the same table, budget, workers and cap takes them from it")
    ap.add_argument("--plot", type=Path, default=None, help="draw the median and quartile curves to this PNG")
    args = ap.parse_args()
    if args.methods:
        methods = args.methods.split(",")
    elif args.model_based:
        methods = ["random", *MODEL_BASED]
    else:
        methods = [m for m in (*CONFIGS, *PEERS) if m not in MODEL_BASED and m not in ABLATIONS]
    unknown = [m for m in methods if m not in CONFIGS and m not in PEERS]
    if unknown or "random" not in methods:
        sys.exit(f"--methods: unknown {', '.join(unknown)}" if unknown else "--methods must include random (the target)")

    from nas.search.replay import load_table

    t0 = time.perf_counter()
    tables = [Path(t) for t in args.tables.split(",")]
    results: dict[tuple[str, str], list] = {}
    budgets = {}
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="nas-search-quality-", dir=shm if shm.is_dir() else None) as tmp, \
            ProcessPoolExecutor(args.jobs) as pool:
        for path in tables:
            table = load_table(path)
            cands = list(table["candidates"].values())
            full = [sum(p["cpu_seconds"] for p in c["curve"]) for c in cands]
            budget = args.budget_s if args.budget_s is not None else round(100 * statistics.mean(full), -1)
            budgets[path.parent.name] = budget
            print(f"table {path.parent.name}/{path.name}: {len(cands)} candidates × {len(cands[0]['curve'])} epochs, "
                  f"a candidate {statistics.median(full):.1f} s (median), {min(full):.1f}–{max(full):.1f} s; budget "
                  f"{budget:.0f} training seconds per study, {args.workers} workers, seeds 0–{args.seeds - 1}",
                  flush=True)
            setting = {"table": hashlib.sha256(path.read_bytes()).hexdigest()[:16], "budget_s": budget,
                       "workers": args.workers, "max_candidates": args.max_candidates, "accounting": 2}
            done = {}
            if args.cache is not None and args.cache.exists():
                for line in _open(args.cache, "rt").read().splitlines():
                    entry = json.loads(line)
                    if entry["setting"] == setting:
                        done[(entry["method"], entry["seed"])] = [tuple(p) for p in entry["curve"]]
            futures = {(m, s): pool.submit(study, str(path), m, s, budget, args.workers, tmp, args.max_candidates)
                       for m in methods for s in range(args.seeds) if (m, s) not in done}
            keys = {f: k for k, f in futures.items()}
            for n, f in enumerate(as_completed(keys), 1):  # cached as each ends: a stopped run loses only the running
                m, s = keys[f]
                done[(m, s)] = [tuple(p) for p in f.result()]
                if args.cache is not None:
                    with _open(args.cache, "at") as out:
                        out.write(json.dumps({"setting": setting, "method": m, "seed": s, "curve": done[(m, s)]}) + "\n")
                print(f"  {m} seed {s}: {n}/{len(futures)} studies, {time.perf_counter() - t0:.0f} s so far", flush=True)
            for m in methods:
                results[(path.parent.name, m)] = [done[(m, s)] for s in range(args.seeds)]

    summary = {}
    for path in tables:
        name = path.parent.name
        base = results[(name, "random")]
        target = statistics.median(c[-1][1] for c in base)
        total = statistics.median(c[-1][0] for c in base)
        print(f"\n## table {name}: target = random search's median final hypervolume {target:.4f} (test scores of the "
              f"validation front), its median training seconds {total:.0f}")
        print(f"{'method':<16} {'ratio median':>12} {'[25%, 75%]':>18} {'reached':>8} {'final hv median':>16} "
              f"{'ends':>6}")
        for m in methods:
            curves = results[(name, m)]
            ratios = [reach(c, target) / total for c in curves]
            q1, med, q3 = np.percentile(ratios, [25, 50, 75]) if all(map(math.isfinite, ratios)) else (
                np.percentile(ratios, 25), statistics.median(ratios), np.percentile(ratios, 75))
            summary[(name, m)] = (med, q1, q3, ratios)
            print(f"{m:<16} {fmt(med):>12} {'[' + fmt(q1) + ', ' + fmt(q3) + ']':>18} "
                  f"{sum(map(math.isfinite, ratios)):>4}/{args.seeds:<3} {statistics.median(c[-1][1] for c in curves):>16.4f} "
                  f"{statistics.median(len(c) for c in curves):>6.0f}")
    if args.plot is not None:
        plot(args.plot, tables, methods, results, summary, budgets)
        print(f"\ncurves drawn to {args.plot}")

    def pooled(m):  # the median over every (table, seed)
        return statistics.median(r for name in budgets for r in summary[(name, m)][3])

    print(f"\n{time.perf_counter() - t0:.0f} s in all")
    peers = [m for m in methods if m in PEERS]
    focus = DEFAULT if DEFAULT in methods else next(m for m in methods if m != "random")
    fields = [f"compute_ratio={fmt(pooled(focus))}"]
    if peers:
        best = min(peers, key=pooled)
        fields += [f"best_peer={best}", f"best_peer_ratio={fmt(pooled(best))}"]
    fields += [f"seeds={args.seeds}", f"tables={len(tables)}"]
    for name in budgets:
        fields.append(f"{name}_compute_ratio={fmt(summary[(name, focus)][0])}")
        if peers:
            best = min(peers, key=lambda m: summary[(name, m)][0])
            fields.append(f"{name}_best_peer={best}:{fmt(summary[(name, best)][0])}")
    if args.model_based:
        fields.insert(0, f"method={focus}")
    print(" ".join(fields))
    return 0


def plot(path: Path, tables: list[Path], methods: list[str], results: dict, summary: dict, budgets: dict) -> None:
    """The median hypervolume against training seconds per method, its quartiles shaded, one panel per table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(7 * len(tables), 5), squeeze=False)
    for ax, t in zip(axes[0], tables):
        name = t.parent.name
        grid = np.linspace(0, budgets[name], 200)
        for m in methods:
            hv = np.array([on_grid(c, grid) for c in results[(name, m)]])
            q1, med, q3 = np.percentile(hv, [25, 50, 75], axis=0)
            style = dict(lw=2.5, color="black") if m == DEFAULT else dict(lw=1.2)
            line, = ax.plot(grid, med, label=f"{m} ({fmt(summary[(name, m)][0])})", **style)
            ax.fill_between(grid, q1, q3, alpha=0.12, color=line.get_color())
        target = statistics.median(c[-1][1] for c in results[(name, "random")])
        ax.axhline(target, ls=":", color="gray", lw=1)
        finals = [statistics.median(c[-1][1] for c in results[(name, m)]) for m in methods]
        spread = max(finals) - min(finals)
        ax.set_ylim(min(finals) - 0.5 * spread, max(finals) + 0.25 * spread)  # where the methods differ
        ax.set(title=f"{name}: hypervolume of the validation front, test scores", xlabel="training seconds (CPU)",
               ylabel="hypervolume (dotted: the target)")
        ax.legend(fontsize=7, loc="lower right", title="method (median ratio)", title_fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
