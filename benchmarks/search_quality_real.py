"""The replayed search-quality figure checked with real training: two real ``nas run`` studies on the table's
space (``benchmarks/table/space.yaml``), random search without early stopping and nas's default
configuration, each until the same budget of training seconds is spent or it has asked for
``--max-candidates`` candidates (repeats included, as the replay caps its studies: once TPE has converged
on the finite space it mostly proposes architectures already trained, which cost no training seconds but
about 0.1 s of the driver's time each).

Training is real (Ray workers, the candidates trained from scratch: nothing comes from the table), so the
seconds are measured, as in the table, as each epoch's CPU seconds of its worker, summed over candidates.
Printed per study: candidates, training seconds, final hypervolume (of the validation front's test scores,
on the table's reference point, as ``search_quality.py``), and for the default the training seconds it
needed to reach random search's final hypervolume, as a ratio of random's.

    python benchmarks/search_quality_real.py [--budget-s 350] [--seed 100] [--default tpe+es2] [--max-candidates 2000] [--keep DIR]

Last line: ``real_ratio=<default's ratio> budget_s=... seed=...``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import CONFIGS, TABLES, space_doc  # noqa: E402

TABLE = TABLES[0]  # the digits table's space and reference point


def ends_of(url: str, name: str) -> list[dict]:
    """A real study's candidates' ends in finishing order (its ``nas_progress`` rows): each its training seconds
    (its curve's CPU seconds; 0 for a reused one) and, for a complete one, its validation and test objectives."""
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
    return [{"seconds": 0.0 if rows[n].reused_from is not None else sum(float(p.get("cpu_seconds", 0.0))
                                                                         for p in rows[n].curve or []),
             "objectives": rows[n].objectives if rows[n].state == "COMPLETE" else None} for n in order]


def spent_seconds(url: str, name: str) -> float:
    """Training seconds (CPU) of every candidate of ``name`` trained so far."""
    return sum(e["seconds"] for e in ends_of(url, name))


def curve(ends: list[dict], metrics: list[str], directions: list[str], reference, budget_s: float) -> list[tuple]:
    """(training seconds, candidates, hypervolume) after each end: the validation front's test scores, as
    ``search_quality.curve`` counts them."""
    import moocore

    from nas.search import quality

    seconds, front, out = 0.0, [], []
    maximise = [d == "maximize" for d in directions]
    for n, e in enumerate(ends, start=1):
        if seconds >= budget_s:
            break
        seconds += e["seconds"]
        if e["objectives"] is not None:
            o = e["objectives"]
            front.append(([float(o[m]) for m in metrics],
                          [float(o.get(f"test_{m}", o[m])) for m in metrics]))
            keep = moocore.is_nondominated(np.array([v for v, _ in front]), maximise=maximise, keep_weakly=True)
            front = [f for f, k in zip(front, keep) if k]
        hv = quality.hypervolume(np.array([t for _, t in front]), directions, reference) if front else 0.0
        out.append((seconds, n, hv))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=350.0, help="training seconds per study (default 350, as the replay)")
    ap.add_argument("--seed", type=int, default=100, help="the samplers' seed (default 100: not a replayed one)")
    ap.add_argument("--default", default="tpe+es2", choices=sorted(CONFIGS), help="the configuration to check")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-candidates", type=int, default=2000,
                    help="a study's cap on candidates, repeats included (default 2000, as the replay)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the studies' database in this folder")
    args = ap.parse_args()

    from nas.search import quality
    from nas.search.replay import load_table
    from nas.search.execution.driver import RunOptions, run
    from nas.spaces import parse_space

    table = load_table(TABLE)
    metrics = list(table["directions"])
    directions = [table["directions"][m] for m in metrics]
    from search_quality import scored

    reference = quality.derive_reference(np.array([c["test"] for c in scored(table).values()]), directions)
    work = args.keep or Path(tempfile.mkdtemp(prefix="nas-search-real-"))
    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{work / 'real.db'}"
    space_file = Path(__file__).resolve().parent / "table" / "space.yaml"
    curves = {}
    for config in ("random", args.default):
        doc = space_doc(space_file.read_text(), config, args.seed, args.max_candidates, args.workers)
        name = doc["name"]
        space = parse_space(yaml.safe_dump(doc, sort_keys=False), str(space_file), base_dir=space_file.parent)
        last = [0.0, 0.0]  # when the budget was last checked, and what was spent then

        def budget_spent() -> bool:  # the SQL sum at most once a second
            if time.monotonic() - last[0] > 1.0:
                last[:] = [time.monotonic(), spent_seconds(url, name)]
            return last[1] >= args.budget_s

        t = time.perf_counter()
        run(space, RunOptions(storage=url, progress=False, weights=False, stop_when=budget_spent))
        curves[config] = curve(ends_of(url, name), metrics, directions, reference, args.budget_s)
        print(f"{config}: {len(curves[config])} candidates, {time.perf_counter() - t:.0f} s wall", flush=True)
    base = curves["random"]
    target, total = base[-1][2], base[-1][0]
    print(f"\nspace {space_file.relative_to(space_file.parents[2])}, seed {args.seed}, budget {args.budget_s:.0f} "
          f"training seconds, {args.workers} workers; reference point "
          + ", ".join(f"{m} {v:.4g}" for m, v in zip(metrics, reference)))
    print(f"{'method':<12} {'candidates':>10} {'seconds':>8} {'final hv':>9} {'ratio':>7}")
    ratio = math.nan
    for config, c in curves.items():
        reached = next((s for s, _, hv in c if hv >= target - 1e-12), math.inf)
        r = reached / total
        ratio = r if config != "random" else ratio
        print(f"{config:<12} {len(c):>10} {c[-1][0]:>8.0f} {c[-1][2]:>9.4f} "
              f"{'never' if not math.isfinite(r) else f'{r:.3f}':>7}")
    print(f"real_ratio={'never' if not math.isfinite(ratio) else f'{ratio:.3f}'} default={args.default} "
          f"budget_s={args.budget_s:.0f} seed={args.seed} max_candidates={args.max_candidates}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
