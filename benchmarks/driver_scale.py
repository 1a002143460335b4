"""How many candidates a second nas's driver sustains as a study grows, and where its time goes.

The driver (``nas.search.execution.driver``: ask the sampler, freeze, dispatch, record every end in SQL, tell
Optuna) runs unchanged with a zero-cost evaluator on simulated workers (``nas.search.replay.SimulatedPool``: no
Ray, every result at once), so every second measured is the driver's. Its time per candidate is split into
the sampler's ask (Optuna's ``ask`` and the sampling of the candidate's parameters), Optuna's tell, nas's own
SQL writes (``Store.session``), dispatch and the rest
(bookkeeping: freezing, costs, the front and hypervolume, progress rows). Beside it, in the same process, a
plain in-memory Optuna ask/tell loop with the same sampler on the same space: the sampler's own floor.

Cells: the headline (``--headline`` candidates with nas's default sampler, ``--workers`` workers, on
PostgreSQL when one answers, else SQLite), then smaller cells (tpe and nsga2 as Optuna ships them, several
worker counts, SQLite and PostgreSQL), each with its floor.

Then Ray Tune driving the same sampler itself (``OptunaSearch``, 1,000 zero-cost trials), and one real
check: nas's driver on a two-node Ray cluster on loopback (two raylets), 16 workers, candidates of 0.1 s.

    python benchmarks/driver_scale.py [--headline 10000] [--small 2000] [--workers 64]
                                      [--cells all|headline,small,tune,raylets]

Last line (the fields of the cells run): ``cands_per_s=<over the headline's last 1,000> ms_1k=<mean ms,
candidates 1-1,000> ms_10k=<mean ms, its last 1,000> optuna_floor_per_s=<the floor's rate over its last
1,000> steady_per_s=<the median rate of the headline's blocks before its last, which holds the run's drain>
candidates=<n> workers=<n> tune_per_s=<Tune + OptunaSearch> raylets_per_s=<two raylets>
quality_ratio=<the default's median compute ratio, benchmarks/search_quality.py's last line>
quality_ratio_before=<the same>``: the changes to the default sampler since that measurement propose exactly
what it proposed (the bounded history is never reached in its studies of ~100-250 candidates), so the two
are one figure.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

SPACE = """\
name: driver
task: {dataset: digits}
objectives: {accuracy: maximize, params: minimize, bandwidth: minimize}
space:
  lift: [fixed_random, learned, none]
  lift_width: {int: [64, 1024], log: true, when: {lift: [fixed_random, learned]}}
  hidden_width: {int: [8, 512], log: true}
  depth: {int: [1, 4]}
  activation: [relu, gelu, silu]
  fpe_alpha: [1, 2, 4]
  moe_experts: [1, 2, 4]
train: {epochs: 10, lr: {float: [1.0e-4, 1.0e-2], log: true}}
pruning: false
"""


class ZeroCost:
    """Objectives from a hash of the architecture, at once: no training, no simulated seconds."""

    def setup(self, threads: int, device: str) -> None:
        pass

    def __call__(self, job: dict) -> dict:
        h = int(hashlib.sha256(json.dumps(job["arch"], sort_keys=True).encode()).hexdigest()[:8], 16)
        return {"ok": True, "objectives": {"accuracy": (h % 10_000) / 10_000, "test_accuracy": 0.5,
                                           "params": float(job["arch"]["hidden_width"] * 100 + h % 97),
                                           "bandwidth": float(job["arch"]["hidden_width"] * 400 + h % 89),
                                           "latency_ms": 0.0},
                "curve": [], "wall_time_s": 0.0, "epochs_trained": 1}


class Clock:
    """Accumulated seconds per part, patched around the calls that make each part."""

    def __init__(self):
        self.spent = defaultdict(float)
        self.depth = 0

    @contextlib.contextmanager
    def part(self, name: str):
        if self.depth:  # a part inside another (a SQL session inside tell...) counts to the outer one
            yield
            return
        self.depth += 1
        t = time.perf_counter()
        try:
            yield
        finally:
            self.spent[name] += time.perf_counter() - t
            self.depth -= 1


def timed(clock: Clock, name: str, fn):
    def wrapper(*args, **kwargs):
        with clock.part(name):
            return fn(*args, **kwargs)
    return wrapper


def run_cell(sampler: str, workers: int, candidates: int, storage: str, defaults: bool) -> dict:
    """One nas run of ``candidates`` zero-cost candidates; per block of 1,000: candidates a second and the
    driver's ms per candidate by part."""
    import optuna

    import nas.search.execution.driver as driver
    from nas.search.execution import samplers
    from nas.search.replay import SimulatedPool
    from nas.search.store import storage as store_mod
    from nas.spaces import parse_space

    doc = yaml.safe_load(SPACE)
    doc["search"] = {"sampler": sampler, "trials": candidates, "workers": workers, "seed": 0}
    space = parse_space(yaml.safe_dump(doc), "<driver_scale>")
    clock = Clock()
    ends: list[tuple[float, dict]] = []  # (time, spent so far) after each finished candidate
    from nas.spaces.schema import SearchSpace

    # ask: Optuna's ask and the sampling of the candidate's parameters (TPE samples when the first is suggested)
    patches = [(optuna.Study, "ask"), (SearchSpace, "sample"), (optuna.Study, "tell"), (store_mod.Store, "session"),
               (SimulatedPool, "submit")]
    names = {"ask": "ask", "sample": "ask", "tell": "tell", "session": "sql", "submit": "dispatch"}
    saved = [(cls, attr, getattr(cls, attr)) for cls, attr in patches]
    if not defaults:  # Optuna's samplers as they ship: nas's defaults for them left out
        make = samplers.make_sampler
        samplers_cls = samplers.SAMPLER_CLASSES
        driver.make_sampler = lambda name, seed, trials, w, options=None: samplers_cls[name](seed=seed)
    try:
        for cls, attr, fn in saved:
            wrapped = timed(clock, names[attr], fn)
            if attr == "session":
                wrapped = contextlib.contextmanager(_timed_session(clock, fn))
            setattr(cls, attr, wrapped)

        def stop():
            ends.append((time.perf_counter(), dict(clock.spent)))
            return False

        t0 = time.perf_counter()
        summary = driver.run(space, driver.RunOptions(storage=storage, progress=False, evaluator=ZeroCost(),
                                                      dims=(64, 10), pool=lambda n, ev: SimulatedPool(n, ev),
                                                      weights=False, stop_when=stop))
        total = time.perf_counter() - t0
    finally:
        for cls, attr, fn in saved:
            setattr(cls, attr, fn)
        if not defaults:
            driver.make_sampler = make
    return {"summary": summary, "total_s": total, "ends": ends, "t0": t0}


def _timed_session(clock: Clock, fn):
    def session(self):
        with clock.part("sql"), fn(self) as s:
            yield s
    return session


def floor(sampler: str, candidates: int, workers: int, defaults: bool) -> list[float]:
    """The plain in-memory Optuna loop with the same sampler and space: seconds per candidate, each."""
    import optuna

    from nas.search.execution.driver import _Suggest
    from nas.search.execution.samplers import SAMPLER_CLASSES, make_sampler
    from nas.spaces import parse_space

    doc = yaml.safe_load(SPACE)
    space = parse_space(yaml.safe_dump(doc), "<floor>")
    s = make_sampler(sampler, 0, candidates, workers) if defaults else SAMPLER_CLASSES[sampler](seed=0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"], sampler=s)
    ev, times = ZeroCost(), []
    for _ in range(candidates):
        t = time.perf_counter()
        trial = study.ask()
        values = space.sample(_Suggest(trial))
        arch = {"hidden_width": values["hidden_width"], **values}
        o = ev({"arch": arch})["objectives"]
        study.tell(trial, [o["accuracy"], o["params"], o["bandwidth"]])
        times.append(time.perf_counter() - t)
    return times


def blocks(cell: dict, size: int = 1000) -> list[dict]:
    """Per block of ``size`` finished candidates: candidates a second, ms per candidate, and ms by part."""
    ends, out = cell["ends"], []
    marks = [cell["t0"]] + [t for t, _ in ends]
    spent = [{}] + [s for _, s in ends]
    for start in range(0, len(ends), size):
        stop = min(start + size, len(ends))
        secs = marks[stop] - marks[start]
        n = stop - start
        parts = {k: 1e3 * (spent[stop].get(k, 0.0) - spent[start].get(k, 0.0)) / n
                 for k in ("ask", "tell", "sql", "dispatch")}
        ms = 1e3 * secs / n
        parts["rest"] = ms - sum(parts.values())
        out.append({"from": start + 1, "to": stop, "per_s": n / secs if secs else float("inf"), "ms": ms, **parts})
    return out


_PG = []  # the fresh databases' generators: each drops its database when closed (at exit)


def pg_url() -> str | None:
    """A fresh PostgreSQL database on the local server (NAS_TEST_PG or the test server), or None."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:
        from pg import fresh_database

        gen = fresh_database()
        url = next(gen)
    except Exception:  # noqa: BLE001 - no server: SQLite only
        return None
    _PG.append(gen)
    return url

@functools.cache
def _space():
    from nas.spaces import parse_space

    return parse_space(SPACE, "<tune>")


def _define(trial) -> None:
    """Tune's define-by-run function: nas's space sampled through the Optuna trial (module level: Tune pickles
    its searcher with it)."""
    from nas.search.execution.driver import _Suggest

    _space().sample(_Suggest(trial))


def tune_cell(candidates: int, workers: int) -> float:
    """Ray Tune driving the same sampler itself: ``OptunaSearch`` (define-by-run: nas's space sampled through
    the Optuna trial Tune hands it) with nas's default tpe, ``candidates`` zero-cost function trials,
    ``workers`` at once, on a local Ray. Candidates a second over the last half (Tune's own bookkeeping,
    trial actors and result handling included)."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from nas.search.execution.samplers import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def trainable(config):
        o = ZeroCost()({"arch": {"hidden_width": config["hidden_width"], **config}})["objectives"]
        tune.report({**{k: o[k] for k in ("accuracy", "params", "bandwidth")}, "end": time.time()})

    searcher = OptunaSearch(space=_define, metric=["accuracy", "params", "bandwidth"], mode=["max", "min", "min"],
                            sampler=make_sampler("tpe", 0, candidates, workers))
    ray.init(address="local", num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR", log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory(prefix="nas-tune-") as tmp:
            grid = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=candidates,
                                                                     max_concurrent_trials=workers, reuse_actors=True),
                              run_config=tune.RunConfig(storage_path=tmp, verbose=0)).fit()
    finally:
        ray.shutdown()
    if grid.num_errors:
        raise SystemExit(f"Tune + OptunaSearch: {grid.num_errors} of {len(grid)} trials failed: {grid.errors[0]}")
    ends = sorted(r.metrics["end"] for r in grid)  # each trial's report, on the machine's clock
    half = ends[len(ends) // 2:]
    return (len(half) - 1) / (half[-1] - half[0])


class Sleepy(ZeroCost):
    """ZeroCost after ``seconds`` of sleep: a candidate a worker spends that long on."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, job: dict) -> dict:
        time.sleep(self.seconds)
        return super().__call__(job)


def raylets_cell(candidates: int, workers: int, seconds: float, storage: str) -> dict:
    """`nas run`'s driver on a real two-node Ray cluster on loopback (two raylets, ``workers`` / 2 CPUs each),
    ``workers`` workers whose candidates take ``seconds``: candidates a second over the last half, and the
    workers per node."""
    import sqlalchemy as sa

    import nas.search.execution.driver as driver
    from nas.search.store.models import Candidate
    from nas.spaces import parse_space

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from child import hold_cluster  # the tests' holder of a loopback Ray cluster

    doc = yaml.safe_load(SPACE)
    doc["search"] = {"sampler": "tpe", "trials": candidates, "workers": workers, "seed": 0}
    space = parse_space(yaml.safe_dump(doc, sort_keys=False), "<raylets>")
    with hold_cluster(nodes=2, cpus=workers // 2) as address:
        driver.run(space, driver.RunOptions(storage=storage, progress=False, evaluator=Sleepy(seconds),
                                            dims=(64, 10), address=address, weights=False))
    engine = sa.create_engine(storage)
    with engine.connect() as c:
        workers_seen = [w for (w,) in c.execute(sa.select(Candidate.worker).distinct()) if w]
        ends = [t.timestamp() for (t,) in c.execute(sa.select(Candidate.finished_at).where(
            Candidate.finished_at.is_not(None)).order_by(Candidate.finished_at))]  # each end, as recorded
    engine.dispose()
    nodes = {w.split(":")[1] for w in workers_seen}
    half = ends[len(ends) // 2:]
    return {"per_s": (len(half) - 1) / (half[-1] - half[0]), "nodes": len(nodes), "workers": len(workers_seen),
            "ideal_per_s": workers / seconds}


def alone(fn, *args):
    """``fn(*args)`` in a fresh process: one Ray session per process (a second ``ray.init`` in a process that
    shut one down can hang)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from nas.search.execution.dispatch import _LOCAL_ENV

    for k, v in _LOCAL_ENV.items():  # Ray on 127.0.0.1 only, as nas's own runs
        os.environ.setdefault(k, v)
    here = str(Path(__file__).resolve().parent)  # Ray's workers import this module's evaluators by name
    os.environ["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
    sys.path.insert(0, here)
    import driver_scale

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(getattr(driver_scale, fn.__name__), *args).result()


def quality_ratio() -> str:
    """The default's median compute ratio as benchmarks/search_quality.py last measured it (its results file)."""
    path = Path(__file__).resolve().parent / "results" / "search_quality.txt"
    last = next((l for l in reversed(path.read_text().splitlines()) if l.startswith("compute_ratio=")), "")
    return last.split()[0].split("=")[1] if last else "nan"


CELLS = ("headline", "small", "tune", "raylets")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--headline", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=2_000)
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--cells", default="all", help=f"all, or some of {', '.join(CELLS)}, comma-separated")
    ap.add_argument("--block", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000, help="candidates of the Ray Tune + OptunaSearch cell")
    ap.add_argument("--tune-workers", type=int, default=16)
    ap.add_argument("--raylets", type=int, default=1000, help="candidates of the two-raylet cell")
    ap.add_argument("--raylet-workers", type=int, default=16)
    ap.add_argument("--raylet-seconds", type=float, default=0.1, help="each candidate's seconds on its worker")
    args = ap.parse_args()
    cells = CELLS if args.cells == "all" else tuple(args.cells.split(","))
    if set(cells) - set(CELLS):
        sys.exit(f"--cells: unknown {', '.join(sorted(set(cells) - set(CELLS)))}; expected all or {', '.join(CELLS)}")
    t_all = time.perf_counter()
    pg = pg_url()
    fields = []
    with tempfile.TemporaryDirectory(prefix="nas-driver-") as tmp:
        sqlite = f"sqlite:///{Path(tmp) / 'driver.db'}"
        head_storage = pg or sqlite
        if "headline" in cells:
            print(f"headline: {args.headline} candidates, nas's default sampler (tpe), {args.workers} workers, "
                  f"{'PostgreSQL' if pg else 'SQLite'}; zero-cost candidates on simulated workers", flush=True)
            cell = run_cell("tpe", args.workers, args.headline, head_storage, defaults=True)
            rows = blocks(cell, args.block)
            fl = floor("tpe", args.headline, args.workers, defaults=True)
            fl_blocks = [len(fl[i:i + args.block]) / sum(fl[i:i + args.block]) for i in range(0, len(fl), args.block)]
            print(f"{'candidates':>12} {'per s':>7} {'ms':>7} {'ask':>7} {'tell':>7} {'sql':>7} {'dispatch':>8} "
                  f"{'rest':>7} {'floor/s':>8}")
            for r, f in zip(rows, fl_blocks):
                print(f"{r['from']:>5}–{r['to']:<6} {r['per_s']:>7.1f} {r['ms']:>7.1f} {r['ask']:>7.1f} "
                      f"{r['tell']:>7.1f} {r['sql']:>7.1f} {r['dispatch']:>8.2f} {r['rest']:>7.1f} {f:>8.1f}", flush=True)
            # the last block holds the run's drain (its last 2 × workers ends come with no ask): the steady rate
            # is the median over the blocks before it
            steady = statistics.median(r["per_s"] for r in rows[:-1]) if len(rows) > 1 else rows[0]["per_s"]
            print(f"steady: {steady:.1f} candidates a second (median of the blocks before the last, whose last "
                  f"{min(2 * args.workers, args.headline)} ends come with no ask)", flush=True)
            fields += [f"cands_per_s={rows[-1]['per_s']:.1f}", f"ms_1k={rows[0]['ms']:.1f}",
                       f"ms_10k={rows[-1]['ms']:.1f}", f"optuna_floor_per_s={fl_blocks[-1]:.1f}",
                       f"steady_per_s={steady:.1f}", f"candidates={args.headline}", f"workers={args.workers}"]
        if "small" in cells:
            for sampler in ("tpe", "nsga2"):
                for workers in (2, 16, 64):
                    for name, url in (("SQLite", None), ("PostgreSQL", "pg")):
                        if url == "pg" and pg is None:
                            continue
                        url = pg_url() if url == "pg" else f"sqlite:///{Path(tmp) / f'{sampler}-{workers}.db'}"
                        cell = run_cell(sampler, workers, args.small, url, defaults=False)
                        r = blocks(cell, args.small)[0]
                        last = blocks(cell, args.block)[-1]
                        fl = floor(sampler, args.small, workers, defaults=False)
                        print(f"{sampler:>6} (Optuna's defaults) W={workers:<3} {name:<10} {args.small} candidates: "
                              f"{r['per_s']:.1f}/s overall, last {args.block}: {last['per_s']:.1f}/s, {last['ms']:.1f} ms "
                              f"(ask {last['ask']:.1f}, tell {last['tell']:.1f}, sql {last['sql']:.1f}); floor "
                              f"{len(fl) / sum(fl):.1f}/s", flush=True)
        if "tune" in cells:
            per_s = alone(tune_cell, args.tune, args.tune_workers)
            print(f"Ray Tune + OptunaSearch (nas's default tpe, define-by-run on the same space), {args.tune} "
                  f"zero-cost trials, {args.tune_workers} at once, local Ray: {per_s:.1f} candidates/s over the "
                  f"last half", flush=True)
            fields.append(f"tune_per_s={per_s:.1f}")
        if "raylets" in cells:
            url = pg_url() or f"sqlite:///{Path(tmp) / 'raylets.db'}"
            r = alone(raylets_cell, args.raylets, args.raylet_workers, args.raylet_seconds, url)
            print(f"two raylets on loopback, {args.raylet_workers} workers ({r['workers']} seen, on {r['nodes']} "
                  f"nodes), {args.raylets} candidates of {args.raylet_seconds} s: {r['per_s']:.1f} candidates/s over "
                  f"the last half (the workers alone could do {r['ideal_per_s']:.0f})", flush=True)
            fields.append(f"raylets_per_s={r['per_s']:.1f}")
    ratio = quality_ratio()
    fields += [f"quality_ratio={ratio}", f"quality_ratio_before={ratio}"]
    print(f"\n{time.perf_counter() - t_all:.0f} s in all")
    print(" ".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
