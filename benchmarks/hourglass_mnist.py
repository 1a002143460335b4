"""Hourglass against conventional residual MLPs on mnist5k image tasks, at matched parameter budgets.

The hourglass paper's claim (SEEDS.md §1): a wide-narrow-wide MLP whose residual
stream lives in a fixed random lift (d_z > d_in, bottleneck d_h < d_z) reaches a
given PSNR with fewer trainable parameters than the conventional narrow-wide-narrow
MLP (no lift: d_z = d_in = 784, hidden d_h > d_z).

For each task (denoise, generative_classification) and each budget, the
conventional model (lift none, depth L_c, hidden d_h) is trained, and the
hourglass model (fixed_random lift of width ``--lift-width``, depth 4) whose
bottleneck d_h makes its parameter count (``nas.spaces.model_cost``:
L·2·d_z·d_h + d_z·d_out) nearest the conventional one's (within 10 %).
Each pair is trained with ``--seeds`` seeds through nas's own ``evaluate``
(AdamW, lr decayed linearly to 0, best-validation-PSNR checkpoint scored on
the test split: the paper's PSNR in dB, of each batch of 128's pooled MSE, averaged).

    python benchmarks/hourglass_mnist.py --epochs 4 --seeds 2 > benchmarks/results/hourglass_mnist.txt
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from nas.evaluators.datasets import load_task
from nas.evaluators.train import evaluate
from nas.spaces import ArchSpec, TrainSpec, model_cost

CONVENTIONAL = [(1, 800), (1, 1200), (2, 800)]  # (depth, hidden width d_h > d_z = 784): the three budgets
HOURGLASS_DEPTH = 4  # the paper's choice; gains saturate at 4-5 blocks


def params(spec: ArchSpec) -> int:
    return model_cost(spec).params


def matched_hourglass(target: int, d_in: int, d_out: int, d_z: int, in_shape: tuple) -> ArchSpec:
    """The fixed-random-lift hourglass of depth 4 and width d_z whose d_h (< d_z) gives params nearest ``target``."""
    best = min(
        (ArchSpec(d_in=d_in, d_out=d_out, lift="fixed_random", lift_width=d_z, hidden_width=h,
                  depth=HOURGLASS_DEPTH, in_shape=in_shape) for h in range(1, d_z)),
        key=lambda s: abs(params(s) - target),
    )
    if abs(params(best) - target) > 0.1 * target:
        raise SystemExit(f"no hourglass of width {d_z} within 10 % of {target} params")
    return best


def mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):6.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:4.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--lift-width", type=int, default=1024, help="d_z of the hourglass models")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--tasks", default="denoise,generative_classification")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    print(f"# python benchmarks/hourglass_mnist.py {' '.join(sys.argv[1:])}")
    print(f"# torch {torch.__version__}, device {args.device}, {args.threads} thread(s); mnist5k "
          f"(3,612 train / 638 val / 750 test); AdamW lr {args.lr}, batch {args.batch_size}, "
          f"{args.epochs} epochs, seeds 0..{args.seeds - 1}; PSNR = the paper's test PSNR (dB; pooled MSE per batch of 128, averaged)")
    summary: dict[str, float] = {}
    for kind in args.tasks.split(","):
        task = load_task("mnist5k", kind)
        print(f"\n## {kind}: d_in {task.d_in} -> d_out {task.d_out}")
        print(f"{'budget':>6}  {'conventional (L×d_h)':>22} {'params':>9} {'PSNR':>14}   "
              f"{'hourglass (d_z/d_h×L)':>22} {'params':>9} {'PSNR':>14}   {'Δ dB':>6}")
        rows = []
        for b, (depth, width) in enumerate(CONVENTIONAL):
            conv = ArchSpec(d_in=task.d_in, d_out=task.d_out, lift="none", hidden_width=width, depth=depth,
                            in_shape=task.in_shape)
            hg = matched_hourglass(params(conv), task.d_in, task.d_out, args.lift_width, task.in_shape)
            scores = {}
            for name, spec in (("conv", conv), ("hg", hg)):
                scores[name] = [
                    evaluate(spec, TrainSpec(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed),
                             task, device=args.device).objectives["psnr"]
                    for seed in range(args.seeds)
                ]
            delta = statistics.mean(scores["hg"]) - statistics.mean(scores["conv"])
            rows.append((params(conv), statistics.mean(scores["conv"]), params(hg), statistics.mean(scores["hg"])))
            print(f"{b + 1:>6}  {f'784 | {width}×{depth}':>22} {params(conv):>9,} {mean_std(scores['conv']):>14}   "
                  f"{f'{args.lift_width}/{hg.hidden_width}×{HOURGLASS_DEPTH}':>22} {params(hg):>9,} "
                  f"{mean_std(scores['hg']):>14}   {delta:+6.2f}", flush=True)
            summary[f"{kind}_b{b + 1}_delta_db"] = round(delta, 3)
        wins = sum(hg_psnr >= conv_psnr for _, conv_psnr, _, hg_psnr in rows)
        # fewer params for the same PSNR: the smallest hourglass that reaches each conventional PSNR
        fewer = []
        for conv_params, conv_psnr, _, _ in rows:
            reach = [hg_params for _, _, hg_params, hg_psnr in rows if hg_psnr >= conv_psnr]
            fewer.append(f"{min(reach) / conv_params:.2f}×" if reach else "not reached")
        print(f"hourglass ≥ conventional at matched params: {wins} of {len(rows)} budgets; the smallest hourglass "
              f"reaching each conventional PSNR has {', '.join(fewer)} its params")
        summary[f"{kind}_wins"] = wins
    summary["minutes"] = round((time.perf_counter() - t_start) / 60, 1)
    print("\n" + " ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
