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

    python benchmarks/driver_scale.py [--headline 10000] [--small 2000] [--workers 64] [--cells all|headline]

Last line: ``cands_per_s=<over the headline's last 1,000> ms_1k=<mean ms, candidates 1-1,000> ms_10k=<mean
ms, its last 1,000> optuna_floor_per_s=<the floor's rate over its last 1,000> candidates=<n> workers=<n>``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--headline", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=2_000)
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--cells", default="all", choices=["all", "headline"])
    ap.add_argument("--block", type=int, default=1000)
    args = ap.parse_args()
    t_all = time.perf_counter()
    pg = pg_url()
    with tempfile.TemporaryDirectory(prefix="nas-driver-") as tmp:
        sqlite = f"sqlite:///{Path(tmp) / 'driver.db'}"
        head_storage = pg or sqlite
        print(f"headline: {args.headline} candidates, nas's default sampler (tpe), {args.workers} workers, "
              f"{'PostgreSQL' if pg else 'SQLite'}; zero-cost candidates on simulated workers", flush=True)
        cell = run_cell("tpe", args.workers, args.headline, head_storage, defaults=True)
        rows = blocks(cell, args.block)
        fl = floor("tpe", args.headline, args.workers, defaults=True)
        fl_blocks = [len(fl[i:i + args.block]) / sum(fl[i:i + args.block]) for i in range(0, len(fl), args.block)]
        print(f"{'candidates':>12} {'per s':>7} {'ms':>7} {'ask':>7} {'tell':>7} {'sql':>7} {'dispatch':>8} "
              f"{'rest':>7} {'floor/s':>8}")
        for r, f in zip(rows, fl_blocks):
            print(f"{r['from']:>5}–{r['to']:<6} {r['per_s']:>7.1f} {r['ms']:>7.1f} {r['ask']:>7.1f} {r['tell']:>7.1f} "
                  f"{r['sql']:>7.1f} {r['dispatch']:>8.2f} {r['rest']:>7.1f} {f:>8.1f}", flush=True)
        headline = (rows, fl_blocks)
        if args.cells == "all":
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
    rows, fl_blocks = headline
    print(f"\n{time.perf_counter() - t_all:.0f} s in all")
    print(f"cands_per_s={rows[-1]['per_s']:.1f} ms_1k={rows[0]['ms']:.1f} ms_10k={rows[-1]['ms']:.1f} "
          f"optuna_floor_per_s={fl_blocks[-1]:.1f} candidates={args.headline} workers={args.workers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
