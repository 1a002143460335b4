"""Search quality per unit of training: random, tpe, nsga2 and nsga2 with early stopping.

Runs ``nas run`` (real Ray workers, real training) on the combined example space
(``examples/combined.yaml``, mnist5k classification) once per sampler
configuration and seed, each study in its own SQLite database (in one database
a study would reuse the results of identical candidates another one trained,
and spend nothing on them), then puts every study on one hypervolume reference
point (derived over all of them as ``nas compare`` does) and reports, per
configuration, over the seeds:

- the hypervolume after the budget of candidates (complete + stopped early);
- the training spent (epochs actually trained, summed over candidates);
- the epochs it took to reach random search's final hypervolume of the same
  seed, over random's epochs (``compute_ratio``; "not reached" counts as
  missing, and the count of seeds that reached it is printed).

The last line is ``key=value`` pairs; ``compute_ratio`` is the best configuration's mean.

    python benchmarks/search_quality.py --trials 16 --epochs 3 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {  # name: (sampler, early stopping)
    "random": ("random", False),
    "tpe": ("tpe", False),
    "nsga2": ("nsga2", False),
    "nsga2+es": ("nsga2", True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default=str(ROOT / "examples" / "combined.yaml"))
    ap.add_argument("--trials", type=int, default=16, help="candidates per study (complete + stopped early)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--min-epochs", type=int, default=1, help="first rung of early stopping")
    ap.add_argument("--reduction-factor", type=int, default=2)
    ap.add_argument("--keep", default=None, help="folder to keep the studies' databases in (default: temporary)")
    args = ap.parse_args()

    base = yaml.safe_load(Path(args.space).read_text())
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nas-search-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    names: dict[tuple[str, int], str] = {}
    t0 = time.perf_counter()
    for seed in args.seeds:
        for config, (sampler, early) in CONFIGS.items():
            doc = yaml.safe_load(yaml.safe_dump(base))
            name = f"q-{config.replace('+', '-')}-s{seed}"
            doc["name"] = name
            doc["train"]["epochs"] = args.epochs
            doc["search"] = {"sampler": sampler, "trials": args.trials, "workers": args.workers, "seed": seed}
            doc.pop("pruning", None)
            if early:
                doc["pruning"] = {"min_epochs": args.min_epochs, "reduction_factor": args.reduction_factor}
            path = work / f"{name}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "nas.cli", "run", str(path), "--storage", _url(work, name),
                                   "--no-progress"], cwd=work, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{name}: nas run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            print(f"{name}: {time.perf_counter() - t:.0f} s", flush=True)
            names[(config, seed)] = name

    import numpy as np

    from nas.search import quality
    from nas.search.results import compare, study_report

    reports = {n: study_report(_url(work, n), n) for n in names.values()}
    dirs = next(iter(reports.values()))["directions"]
    values = [[t["values"][m] for m in dirs] for r in reports.values() for t in r["trials"] if t["state"] == "COMPLETE"]
    ref = dict(zip(dirs, (float(x) for x in quality.derive_reference(np.array(values), list(dirs.values())))))
    curves = {n: compare(_url(work, n), [n], ref)["studies"][0] for n in names.values()}
    rows = {c: {"hv": [], "epochs": [], "ratio": []} for c in CONFIGS}
    for seed in args.seeds:
        target = curves[names[("random", seed)]]
        for config in CONFIGS:
            s = curves[names[(config, seed)]]
            rows[config]["hv"].append(s["hypervolume"])
            rows[config]["epochs"].append(s["epochs"])
            reached = next((p["epochs"] for p in s["curve"] if p["hypervolume"] >= target["hypervolume"]), None)
            if reached is not None and target["epochs"]:
                rows[config]["ratio"].append(reached / target["epochs"])

    def ms(xs: list[float]) -> str:
        if not xs:
            return "-"
        return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"

    print(f"\nspace {Path(args.space).name}, {args.trials} candidates × {args.epochs} epochs, seeds {args.seeds}, "
          f"{args.workers} workers; reference point {', '.join(f'{m} {v:.4g}' for m, v in ref.items())}; "
          f"{time.perf_counter() - t0:.0f} s in all")
    print(f"{'config':<10} {'hypervolume':>18} {'epochs':>16} {'ratio to random':>18} {'reached':>8}")
    for config, r in rows.items():
        print(f"{config:<10} {ms(r['hv']):>18} {ms([float(e) for e in r['epochs']]):>16} {ms(r['ratio']):>18} "
              f"{len(r['ratio'])}/{len(args.seeds):>5}")
    candidates = {c: statistics.mean(r["ratio"]) for c, r in rows.items()
                  if c != "random" and len(r["ratio"]) == len(args.seeds)}
    best = min(candidates, key=candidates.get) if candidates else None
    head = [f"compute_ratio={candidates[best]:.3f}" if best else "compute_ratio=nan", f"best={best or '-'}"]
    head += [f"hv_{c.replace('+', '_')}={statistics.mean(r['hv']):.4f}" for c, r in rows.items()]
    head += [f"epochs_{c.replace('+', '_')}={statistics.mean(r['epochs']):.0f}" for c, r in rows.items()]
    print(" ".join(head))


def _url(work: Path, name: str) -> str:
    return f"sqlite:///{work / (name + '.db')}"


if __name__ == "__main__":
    main()
