"""What `nas confirm` changes on a real front: a search's front before and after K more training seeds.

For each example given, a real ``nas run`` of the space file (a new study in a fresh database; its own
seed, workers and budget), then ``nas confirm STUDY --seeds K`` on its front, both through the command line.
Per front member: the search's single-seed validation and test scores (what the front was built on), the
K seeds' mean ± sd and 95 % interval, how far the first seed sat from the mean, and the verdict of the
intervals (``nas.search.read.intervals.significance``). Per study: how many members stay significantly
non-dominated (no other confirmed member has costs no higher and an interval wholly above), how many are
distinct (their interval above every cheaper member's), and the mean gap first seed − mean (the winner's
curse: positive when the search's single seeds were lucky draws).

    python benchmarks/confirm_fronts.py [--seeds 5] [--keep DIR] examples/quickstart.yaml examples/combined.yaml

The last line: ``<study>_front=<n> <study>_nondominated=<n> <study>_distinct=<n> <study>_gap=<points> ...``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def nas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nas.cli", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"nas {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spaces", nargs="+", type=Path)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="run in this folder and keep its nas.db")
    args = ap.parse_args()
    tail = []
    with tempfile.TemporaryDirectory(prefix="nas-confirm-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for space in args.spaces:
            space = space.resolve()
            t0 = time.perf_counter()
            nas("run", str(space), "--no-progress", cwd=work)
            searched = time.perf_counter() - t0
            name = _study_name(space)
            t1 = time.perf_counter()
            nas("confirm", name, "--seeds", str(args.seeds), "--no-progress", cwd=work)
            confirmed = time.perf_counter() - t1
            report = json.loads(nas("show", name, "--format", "json", cwd=work).stdout)
            tail.append(_print(report, space, searched, confirmed, args.seeds))
    print(" ".join(tail))
    return 0


def _study_name(space: Path) -> str:
    import yaml

    return yaml.safe_load(space.read_text()).get("name") or space.stem


def _print(report: dict, space: Path, searched: float, confirmed: float, k: int) -> str:
    name = report["study"]
    score = next(m for m in ("accuracy", "psnr") if m in report["directions"])
    front = sorted((t for t in report["trials"] if t["pareto"]), key=lambda t: t["values"]["params"])
    done = sum(t["state"] == "COMPLETE" for t in report["trials"])
    print(f"\n{space.name}: study {name}, {done} complete candidates, front of {len(front)} "
          f"(search {searched:.0f} s; nas confirm --seeds {k}: {confirmed:.0f} s)")
    print(f"{'trial':>5} {'params':>9} {'bandwidth':>10} {'val (1st)':>9} {'val mean ± sd':>17} {'95 % interval':>17} "
          f"{'1st − mean':>10} {'test (1st)':>10} {'test mean ± sd':>17}  verdict")
    gaps = []
    for t in front:
        c = t["confirmed"]
        v, te = c["val"], c["test"]
        first = t["values"][score]
        gaps.append(first - v["mean"])
        mark = t.get("significance", {})
        verdict = mark.get("status", "-") + (f" (trial {mark['by']})" if mark.get("by") is not None else "")
        print(f"{t['number']:>5} {t['values']['params']:>9,.0f} {t['values'].get('bandwidth', 0):>10,.0f} "
              f"{first:>9.4f} {v['mean']:>9.4f} ± {v['sd']:.4f} [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}] "
              f"{100 * (first - v['mean']):>+9.2f}p {t['test'][score]:>10.4f} {te['mean']:>9.4f} ± {te['sd']:.4f}  "
              f"{verdict}")
    status = [t.get("significance", {}).get("status") for t in front]
    nondominated = sum(s in ("distinct", "indistinguishable") for s in status)
    distinct = status.count("distinct")
    print(f"significantly non-dominated: {nondominated} of {len(front)} (distinct: {distinct}, within the noise of "
          f"a cheaper member: {status.count('indistinguishable')}, beaten: {status.count('dominated')}); first seed − "
          f"{k}-seed mean: mean {100 * statistics.mean(gaps):+.2f} points, mean |gap| "
          f"{100 * statistics.mean(map(abs, gaps)):.2f} points, largest {100 * max(gaps, key=abs):+.2f}")
    return (f"{name}_front={len(front)} {name}_nondominated={nondominated} {name}_distinct={distinct} "
            f"{name}_gap={100 * statistics.mean(gaps):.2f}")


if __name__ == "__main__":
    sys.exit(main())
