"""Record the tabular benchmark: every candidate of ``benchmarks/table/space.yaml`` trained once, in full,
by a real ``nas run``.

The space is finite (every parameter a choice, the learning rate too). Every feasible point of it
(``SearchSpace.grid``; a point over a constraint or that cannot be built is left out, as ``nas run`` leaves
it untrained) is enqueued, in a seeded random order, in an Optuna study of the space's name
(``Study.enqueue_trial``), and ``nas run`` trains them with its Ray workers: the space's random sampler
(which, every point being enqueued, samples nothing), no early stopping, no weights kept (``--no-weights``),
every epoch's validation score, wall seconds and CPU seconds recorded in the learning curve.

Each call trains up to ``--chunk`` more candidates (those the table lacks), then writes the table, all
candidates so far, to ``benchmarks/table/table.json.gz`` (``nas.search.replay``'s ``nas-table/1`` format,
with how it was built). Run it until it says the table is whole, committing the table between calls: a
call that is stopped loses at most its chunk (the study database in ``--workdir`` resumes it; a lost
database costs only the candidates not yet in the table).

    python benchmarks/table_build.py [--space benchmarks/table/space.yaml] [--chunk 300] [--workers 2]

``--space benchmarks/table_sat/space.yaml`` records the second table (the FPE paper's sat task).

Last line: ``candidates=<in the table> points=<feasible points> missing=<n> seconds=<this call>``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import random
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPACE = ROOT / "benchmarks" / "table" / "space.yaml"
TABLE = ROOT / "benchmarks" / "table" / "table.json.gz"


def load_space_task(space):
    from nas.evaluators import load_task

    return load_task(space.task.dataset, space.task.kind, Path(space.file).parent,
                     space.task.sat.model_dump() if space.task.sat is not None else None,
                     float(space.task.test), float(space.task.validation))


def feasible_points(space) -> list[tuple[dict, str]]:
    """(values, table key) of every point of ``space`` that ``nas run`` would train, in file order."""
    from nas.evaluators import static_objectives
    from nas.search.replay import key_of

    task = load_space_task(space)
    out, seen = [], set()
    for values in space.grid():
        arch, train = space.freeze(values, task.d_in, task.d_out, task.in_shape)
        try:
            static = static_objectives(arch)
        except ValueError:  # cannot be built: infeasible
            continue
        if any(v > 0 for v in space.violations(static).values()):
            continue
        key = key_of(arch.to_json(), train.to_json())
        if key not in seen:
            seen.add(key)
            out.append((values, key))
    return out


def write_table(path: Path, table: dict) -> None:
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", compresslevel=9) as f:
        json.dump(table, f, separators=(",", ":"), sort_keys=True)
    tmp.replace(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunk", type=int, default=300, help="candidates to train in this call (default 300)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--space", type=Path, default=SPACE, help=f"the space file (default {SPACE.relative_to(ROOT)})")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the study's database lives between calls (default: work/ beside the space file; "
                         "not committed)")
    ap.add_argument("--seed", type=int, default=0, help="the order the points are enqueued in")
    ap.add_argument("--table", type=Path, default=None,
                    help=f"the table file (default: table.json.gz beside the space file, {TABLE.relative_to(ROOT)})")
    args = ap.parse_args()
    args.space = args.space.resolve()
    args.table = args.table or args.space.parent / "table.json.gz"
    args.workdir = args.workdir or args.space.parent / "work"

    import optuna

    from nas.evaluators.names import EVALUATOR_VERSION
    from nas.search.replay import FORMAT, load_table, table_from_study
    from nas.search.store.storage import optuna_storage
    from nas.spaces import load_space

    t0 = time.perf_counter()
    space = load_space(args.space)
    points = feasible_points(space)
    table = load_table(args.table) if args.table.is_file() else {"format": FORMAT, "candidates": {}, "built": []}
    missing = [(values, key) for values, key in points if key not in table["candidates"]]
    print(f"{len(points)} feasible points, {len(table['candidates'])} in the table, {len(missing)} missing", flush=True)
    if missing:
        args.workdir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{args.workdir / 'table.db'}"
        storage = optuna_storage(url)
        names = {s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)}
        if space.name not in names:
            study = optuna.create_study(study_name=space.name, storage=storage,
                                        directions=list(space.objectives.values()))
            random.Random(args.seed).shuffle(missing)
            chosen = {p.label for p in space.params if p.kind == "choice"}  # what nas asks the trial for
            for values, _ in missing:
                study.enqueue_trial({k: v for k, v in values.items() if k in chosen}, skip_if_exists=False)
            done = 0
        else:
            study = optuna.load_study(study_name=space.name, storage=storage)
            done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
        target = done + min(args.chunk, len(missing))
        command = [sys.executable, "-m", "nas.cli", "run", str(args.space), "--storage", url, "--trials", str(target),
                   "--workers", str(args.workers), "--no-weights", "--no-progress"]
        print(" ".join(command[1:]), flush=True)
        started = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT)
        if proc.returncode != 0:
            print(f"nas run failed ({proc.returncode}); run this script again to resume", file=sys.stderr)
            return 1
        recorded = table_from_study(url, space.name)
        wanted = {key for _, key in points}
        new = {k: v for k, v in recorded["candidates"].items() if k in wanted and k not in table["candidates"]}
        task = load_space_task(space)
        table.update(format=FORMAT, task_key=recorded["task_key"], directions=recorded["directions"],
                     space=space.text, dims={"d_in": task.d_in, "d_out": task.d_out, "in_shape": list(task.in_shape)})
        table["candidates"].update(new)
        table["built"].append({
            "command": "python benchmarks/table_build.py " + " ".join(sys.argv[1:]),
            "nas_run": " ".join(["nas"] + command[3:]), "candidates": len(new),
            "seconds": round(time.perf_counter() - started, 1), "evaluator": EVALUATOR_VERSION,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs"})
        write_table(args.table, table)
        missing = [(values, key) for values, key in points if key not in table["candidates"]]
        print(f"{len(new)} candidates added; the table holds {len(table['candidates'])}", flush=True)
    print(f"candidates={len(table['candidates'])} points={len(points)} missing={len(missing)} "
          f"seconds={time.perf_counter() - t0:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
