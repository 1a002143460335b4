"""Candidates of the examples trained on a CUDA GPU through nas's own training loop.

What a GPU worker of ``nas run`` does, without Ray or Optuna (a GPU machine may
have neither): candidates drawn at random from an example's space file (seeded;
its constraints applied, an infeasible draw redrawn), each trained by
``nas.evaluators.evaluate`` exactly as a worker trains it, on ``cuda``.

1. **Kernels on and off**: the same candidates with ``NAS_KERNELS=auto`` (the
   Triton kernels) and ``NAS_KERNELS=torch`` (the PyTorch references), in one
   process, each space's candidates once before timing (Triton and cuBLAS
   warm-up): candidates per minute and the GPU's utilisation (``nvidia-smi``
   sampled every 100 ms: the share of time a kernel was running).
2. **Where a candidate's time goes**: one candidate per space under
   ``torch.profiler``: wall time, the GPU's busy time (sum of the kernels'
   device time), the optimizer, the per-step host syncs, validation and test
   scoring, the latency measurement.
3. **Workers sharing one GPU**: W processes (W = 1, 2, 4, 8), each loading the
   task once (as a worker does) and training its share of the same candidates,
   started together: candidates per minute summed over the workers, and the
   GPU's utilisation. The W past which the sum stops growing is how many workers
   should share one GPU.

    python benchmarks/gpu_train.py [--candidates 8] [--budget-s 240]
    python benchmarks/gpu_train.py --dry-run      # every code path on the CPU, tiny (checks the script)

Each part is time-boxed (``--budget-s`` in all) and prints its rows as it goes.
Last line: ``key=value`` pairs.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SPACES = ("quickstart", "combined")


class _RandomSuggest:
    """A seeded random ``nas.spaces.Suggest`` (what an Optuna trial offers, without Optuna)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def categorical(self, label, choices):
        return self.rng.choice(list(choices))

    def int(self, label, low, high, log, step):
        if log:
            return int(round(math.exp(self.rng.uniform(math.log(low), math.log(high)))))
        step = step or 1
        return low + step * self.rng.randrange((high - low) // step + 1)

    def float(self, label, low, high, log, step):
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        return self.rng.uniform(low, high)


def draw(name: str, n: int, seed: int, dry: bool):
    """(task, [(ArchSpec, TrainSpec)]) of ``n`` feasible candidates of ``examples/NAME.yaml``."""
    from nas.evaluators import load_task, static_objectives
    from nas.spaces import load_space

    space = load_space(ROOT / "examples" / f"{name}.yaml")
    task = load_task(space.task.dataset, space.task.kind, ROOT / "examples",
                     space.task.sat.model_dump() if space.task.sat is not None else None)
    rng, out = random.Random(seed), []
    while len(out) < n:
        arch, train = space.freeze(space.sample(_RandomSuggest(rng)), task.d_in, task.d_out, task.in_shape)
        try:
            static = static_objectives(arch)
        except ValueError:  # a shape that cannot be built: infeasible, as nas run records it
            continue
        if any(v > 0 for v in space.violations(static).values()):
            continue
        if dry:  # the code path only
            train = type(train).from_json({**train.to_json(), "epochs": 2})
        out.append((arch, train))
    if dry:
        task = _shrink(task)
    return task, out


def _shrink(task):
    """The first 256 training samples only (a dry run)."""
    import dataclasses

    return dataclasses.replace(task, x_train=task.x_train[:256], y_train=task.y_train[:256])


class Utilisation:
    """``nvidia-smi``'s utilization.gpu sampled every 100 ms while the block runs (None without nvidia-smi)."""

    def __enter__(self):
        self.samples: list[float] = []
        try:
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                          "-lms", "100"], stdout=subprocess.PIPE, text=True)
        except OSError:
            self.proc = None
            return self
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.samples.append(float(line.split(",")[0]))
            except ValueError:
                pass

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.reader.join(timeout=2)

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def _fmt_util(u: float | None) -> str:
    return "n/a" if u is None else f"{u:.0f}%"


def train_all(task, cands, device: str, deadline: float) -> tuple[int, float]:
    """Train the candidates in turn until ``deadline``; (how many, seconds)."""
    from nas.evaluators import evaluate

    t0, done = time.perf_counter(), 0
    for arch, train in cands:
        if time.perf_counter() > deadline:
            break
        evaluate(arch, train, task, device=device)
        done += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return done, time.perf_counter() - t0


def part_kernels(tasks, device, deadline, results):
    """Each space's candidates with the kernels on until its share of the time box, then the same ones off."""
    print("\n## 1. kernels on and off (one process, the same candidates in both modes)")
    print(f"{'space':<11} {'NAS_KERNELS':<12} {'candidates':>10} {'seconds':>8} {'per min':>8} {'GPU util':>9}")
    for i, (name, (task, cands)) in enumerate(tasks.items()):
        share = time.perf_counter() + (deadline - time.perf_counter()) / (len(tasks) - i) / 2
        for mode in ("auto", "torch"):
            os.environ["NAS_KERNELS"] = mode
            train_all(task, cands[:1], device, math.inf)  # warm-up (JIT, cuBLAS)
            with Utilisation() as util:
                done, secs = train_all(task, cands, device, share)
            per_min = 60 * done / secs if secs > 0 else 0.0
            results[f"{name}_{mode}_per_min"] = f"{per_min:.1f}"
            results[f"{name}_{mode}_util"] = _fmt_util(util.mean)
            print(f"{name:<11} {mode:<12} {done:>10} {secs:>8.1f} {per_min:>8.1f} {_fmt_util(util.mean):>9}",
                  flush=True)
            cands, share = cands[:done], math.inf  # kernels off: exactly the candidates trained with them on
    os.environ["NAS_KERNELS"] = "auto"


def part_profile(tasks, device, results, out_dir: Path | None):
    """Where one candidate's time goes, by torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    from nas.evaluators import evaluate
    from nas.spaces.stages import summary

    print("\n## 2. where a candidate's time goes (torch.profiler, NAS_KERNELS=auto)")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    for name, (task, cands) in tasks.items():
        arch, train = cands[0]
        evaluate(arch, train, task, device=device)  # warm
        with profile(activities=activities) as prof:
            t0 = time.perf_counter()
            ev = evaluate(arch, train, task, device=device)
            if device == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
        events = prof.key_averages()
        gpu_us = sum(e.self_device_time_total for e in events) if device == "cuda" else 0.0

        def cpu_ms(key):
            return sum(e.cpu_time_total for e in events if e.key == key) / 1e3

        n = len(task.y_train)
        bs = min(train.batch_size, n)
        steps = train.epochs * (n // bs if n % bs < 2 else n // bs + 1)
        row = {"wall_s": wall, "gpu_busy_s": gpu_us / 1e6, "steps": steps,
               "per_step_ms": 1e3 * sum(p["seconds"] for p in ev.curve) / steps,
               "optimizer_ms": cpu_ms("Optimizer.step#AdamW.step"),
               "item_sync_ms": cpu_ms("aten::_local_scalar_dense"),
               }
        results[f"{name}_gpu_busy"] = f"{row['gpu_busy_s'] / wall:.2f}"
        results[f"{name}_step_ms"] = f"{row['per_step_ms']:.2f}"
        print(f"{name}: {summary(arch)}")
        print(f"  wall {wall:.2f} s for {steps} steps ({row['per_step_ms']:.2f} ms per training step incl. validation); "
              f"GPU kernels busy {row['gpu_busy_s']:.2f} s ({100 * row['gpu_busy_s'] / wall:.0f}% of wall); "
              f"AdamW step {row['optimizer_ms'] / 1e3:.2f} s; host syncs (.item) {row['item_sync_ms'] / 1e3:.2f} s")
        table = events.table(sort_by="self_cpu_time_total", row_limit=12)
        print("  top host-side ops by self CPU time:")
        print("\n".join("    " + line for line in table.splitlines()))
        if device == "cuda":
            print("  top device kernels:")
            print("\n".join("    " + line for line in
                            events.table(sort_by="self_cuda_time_total", row_limit=8).splitlines()))
        if out_dir is not None:
            prof.export_chrome_trace(str(out_dir / f"trace_{name}.json"))


def _worker(rank, name, seed, n, dry, device, mode, barrier, queue, share):
    os.environ["NAS_KERNELS"] = mode
    torch.set_num_threads(1)
    task, cands = draw(name, n, seed, dry)
    mine = cands[rank::share]
    train_all(task, mine[:1], device, math.inf)  # warm (each process compiles or loads its kernels)
    barrier.wait()
    done, secs = train_all(task, mine, device, math.inf)
    queue.put((done, secs))


def part_workers(n, seed, dry, device, budget_end, results, counts):
    import multiprocessing as mp

    print("\n## 3. workers sharing one GPU (quickstart candidates, NAS_KERNELS=auto)")
    print(f"{'workers':>7} {'candidates':>10} {'seconds':>8} {'per min':>8} {'GPU util':>9}")
    ctx = mp.get_context("spawn")
    per_worker = {}
    for w in counts:
        if time.perf_counter() > budget_end:
            print(f"{w:>7} (time box reached)")
            break
        total = max(n, 2 * w)
        barrier, queue = ctx.Barrier(w + 1), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(r, "quickstart", seed, total, dry, device, "auto", barrier, queue, w))
                 for r in range(w)]
        for p in procs:
            p.start()
        barrier.wait()
        with Utilisation() as util:
            t0 = time.perf_counter()
            outs = [queue.get() for _ in procs]
            secs = time.perf_counter() - t0
        for p in procs:
            p.join()
        done = sum(o[0] for o in outs)
        per_min = 60 * done / secs
        per_worker[w] = per_min
        results[f"workers{w}_per_min"] = f"{per_min:.1f}"
        results[f"workers{w}_util"] = _fmt_util(util.mean)
        print(f"{w:>7} {done:>10} {secs:>8.1f} {per_min:>8.1f} {_fmt_util(util.mean):>9}", flush=True)
    if per_worker:  # the fewest workers within 15 % of the best sum
        top = max(per_worker.values())
        results["workers_per_gpu"] = str(min(w for w, v in per_worker.items() if v >= top / 1.15))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=8, help="candidates per space (default 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-s", type=float, default=240.0, help="time box of the whole script, seconds")
    ap.add_argument("--out", type=Path, default=None, help="a folder for the profiler traces")
    ap.add_argument("--parts", default="1,2,3", help="which parts to run (default 1,2,3)")
    ap.add_argument("--spaces", default=",".join(SPACES), help=f"example spaces of parts 1 and 2 (default {','.join(SPACES)})")
    ap.add_argument("--workers", default="1,2,4,8", help="worker counts of part 3 (default 1,2,4,8)")
    ap.add_argument("--dry-run", action="store_true", help="every code path on the CPU at tiny sizes")
    args = ap.parse_args()
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu_train.py needs a CUDA GPU (or --dry-run)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    n = 2 if args.dry_run else args.candidates
    gpu = torch.cuda.get_device_name().replace(" ", "_") if device == "cuda" else "dry-run-cpu"
    print(f"{gpu}, torch {torch.__version__}, {n} candidates per space, budget {args.budget_s:.0f} s")
    results: dict[str, str] = {"gpu": gpu}
    parts = set(args.parts.split(","))
    tasks = {name: draw(name, n, args.seed, args.dry_run) for name in args.spaces.split(",")} if parts & {"1", "2"} else {}
    if "1" in parts:
        part_kernels(tasks, device, start + 0.35 * args.budget_s, results)
    if "2" in parts:
        part_profile(tasks, device, results, args.out)
    if "3" in parts:
        part_workers(n, args.seed, args.dry_run, device, start + 0.9 * args.budget_s, results,
                     [int(w) for w in args.workers.split(",")])
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    print(" ".join(f"{k}={v}" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
