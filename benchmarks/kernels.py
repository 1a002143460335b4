"""The Triton kernels of ``nas.kernels`` against PyTorch, on a CUDA GPU.

For every kernel and shape: the median time (``triton.testing.do_bench``),
the bytes and floating-point operations the op must do at minimum, the
achieved GB/s and TFLOP/s, the percent of the roofline
``max(bytes / copy bandwidth, flops / bf16 matmul rate)`` (both measured in
the same run: a device-to-device copy of 1 GiB and a 8192³ bf16 product),
and the speed-up over the baselines:

- hashed lift (bf16), forward, y = x Rᵀ: ``stored`` is the product with R
  read from memory (what ``fixed_random`` does: ``x @ R.t()``, R in bf16),
  ``eager`` and ``compile`` are ``hashed_lift_reference`` (R hashed in PyTorch
  each call) eager and under ``torch.compile``. Shapes: d_in 784 and 3072,
  d_z 2048 and 8192, batch 1, 64, 1024;
- maxstate (bf16), forward and forward+backward of the scan and
  combination: ``eager`` and ``compile`` are ``maxstate_combine_reference``;
- mixture of dense experts (bf16), forward of W2 relu(W1 x) over all expert
  segments: ``loop`` is ``grouped_matmul_reference`` (one product per
  expert), ``compile`` the same under ``torch.compile``;
- FPE sparse layer (bf16), y = x (W ⊙ M)ᵀ for an expanded layer of α·d_h
  rows whose mask is a random split of d_h dense rows (each input of each
  neuron to one of its α children: the same d_h·d_z non-zeros), α = 2 and
  4: ``fpe`` is the kernel on the stored non-zeros (``ell_forward``);
  ``dense_nnz`` is the dense layer with the same non-zeros (x @ W_hᵀ, W_h
  (d_h, d_z)), the issue's target being ≥ 0.8 (within 1.25×); ``masked``
  is the masked dense product (``masked_linear_reference``, α× the work),
  ``compile`` the same under ``torch.compile``. ``fpe f+b`` rows: forward
  and backward through ``masked_linear`` (the layout cached, the values
  gathered from the dense weight as FPEPair does) against the masked
  product's forward and backward.

  A ``feature`` split (every neuron's children read the same input
  groups) runs W1 as α dense products after one permutation
  (``grouped_forward``): the ``fpe grouped`` rows, against the same
  ``dense_nnz`` layer and the masked product, and ``fpe grouped f+b``:
  forward and backward through ``masked_linear(..., groups=α)`` against the
  masked product's.

Every kernel is first checked against its reference. Needs a GPU: without
one it says so and exits with status 2, unless ``--dry-run``: then every
code path runs once on tiny shapes on the CPU through Triton's interpreter
(the timings mean nothing; it checks the script itself), which the tests do.

    python benchmarks/kernels.py [--no-compile] [--only=lift,maxstate,moe,fpe]
    TRITON_INTERPRET=1 python benchmarks/kernels.py --dry-run

Last line: ``key=value`` pairs: the GPU, the measured roofline, and per
kernel the smallest and largest speed-ups.
"""

from __future__ import annotations

import os
import sys
import time

import torch

DRY = "--dry-run" in sys.argv[1:]
DEV = "cpu" if DRY else "cuda"
NO_COMPILE = "--no-compile" in sys.argv[1:]  # skip the torch.compile baselines (each shape recompiles: minutes)
ONLY = next((a.split("=", 1)[1].split(",") for a in sys.argv[1:] if a.startswith("--only=")), None)


def _bench(fn) -> float:
    """Median milliseconds of ``fn()``."""
    if DRY:  # one call, timed by the clock: checks the code path only
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    from triton.testing import do_bench

    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def _compile(fn):
    """``torch.compile(fn)``, or ``fn`` itself in a dry run (no compiler needed on the CPU); None with
    ``--no-compile``."""
    if NO_COMPILE:
        return None
    return fn if DRY else torch.compile(fn)


def _baselines(**fns) -> dict[str, float]:
    """Median milliseconds of each baseline; the compiled ones left out under ``--no-compile``."""
    return {k: _bench(f) for k, f in fns.items() if f is not None}


def shapes(full: list, dry: list) -> list:
    return dry if DRY else full


def roofline() -> tuple[float, float]:
    """(copy GB/s, bf16 matmul TFLOP/s) of this GPU, measured now."""
    n, k = (1 << 20, 256) if DRY else (1 << 29, 8192)  # 1 GiB, 8192³ on the GPU
    src = torch.empty(n, dtype=torch.bfloat16, device=DEV)
    dst = torch.empty_like(src)
    ms = _bench(lambda: dst.copy_(src))
    gbps = 2 * src.numel() * 2 / ms / 1e6  # read + write
    a = torch.randn(k, k, dtype=torch.bfloat16, device=DEV)
    ms = _bench(lambda: a @ a)
    return gbps, 2 * k**3 / ms / 1e9


def row(name: str, shape: str, ms: float, nbytes: float, flops: float, roof: tuple[float, float],
        baselines: dict[str, float]) -> dict[str, float]:
    gbps, tflops = nbytes / ms / 1e6, flops / ms / 1e9
    bound_ms = max(nbytes / roof[0] / 1e6, flops / roof[1] / 1e9)
    ratios = {k: v / ms for k, v in baselines.items()}
    print(f"{name:<14} {shape:<24} {ms * 1e3:>9.1f} µs {gbps:>8.1f} GB/s {tflops:>7.2f} TFLOP/s "
          f"{100 * bound_ms / ms:>5.1f}% roof  " + "  ".join(f"×{r:.2f} vs {k.split('_vs_')[-1]}" for k, r in ratios.items()))
    return ratios


def bench_lift(roof: tuple[float, float]) -> dict[str, list[float]]:
    from nas.kernels._lift_triton import hashed_lift_forward
    from nas.kernels.lift import hashed_lift_reference, hashed_matrix

    out: dict[str, list[float]] = {"stored": [], "eager": [], "compile": []}
    compiled = _compile(hashed_lift_reference)
    for d_in in shapes([784, 3072], [37]):
        for d_z in shapes([2048, 8192], [70]):
            r = hashed_matrix(7, d_z, d_in, DEV).to(torch.bfloat16)
            for m in shapes([1, 64, 1024], [3]):
                x = torch.randn(m, d_in, device=DEV, dtype=torch.bfloat16)
                y = hashed_lift_forward(x, 7, d_z)
                torch.testing.assert_close(y, hashed_lift_reference(x, 7, d_z), rtol=2e-2, atol=2e-2)
                ms = _bench(lambda: hashed_lift_forward(x, 7, d_z))
                base = _baselines(stored=lambda: x @ r.t(), eager=lambda: hashed_lift_reference(x, 7, d_z),
                                  compile=compiled and (lambda: compiled(x, 7, d_z)))
                ratios = row("hashed_lift", f"B={m} {d_in}->{d_z}", ms, 2 * m * (d_in + d_z), 2 * m * d_in * d_z,
                             roof, base)
                for k, v in ratios.items():
                    out[k].append(v)
    return out


def bench_maxstate(roof: tuple[float, float]) -> dict[str, list[float]]:
    from nas.kernels._maxstate_triton import MaxStateFunction
    from nas.kernels.maxstate import maxstate_combine_reference

    out: dict[str, list[float]] = {"eager": [], "compile": [], "eager_fwdbwd": [], "compile_fwdbwd": []}
    compiled = _compile(maxstate_combine_reference)
    for bsz, t, d in shapes([(64, 196, 64), (32, 256, 256), (8, 1024, 512), (16, 64, 1024)], [(2, 9, 8)]):
        heads = max(1, d // 64)
        p = torch.randn(bsz, t, 4 * d, device=DEV, dtype=torch.bfloat16, requires_grad=True)
        g = torch.randn(heads, 5 * heads, device=DEV, dtype=torch.bfloat16, requires_grad=True)
        alpha = torch.full((3,), 0.5, device=DEV, dtype=torch.bfloat16, requires_grad=True)
        gy = torch.randn(bsz, t, d, device=DEV, dtype=torch.bfloat16)
        torch.testing.assert_close(MaxStateFunction.apply(p, g, alpha, heads),
                                   maxstate_combine_reference(p.float(), g.float(), alpha.float(), heads)
                                   .to(torch.bfloat16), rtol=2e-2, atol=2e-2)
        tokens = bsz * t
        flops = tokens * d * (2 * 5 * heads + 16)  # the head mix (5H multiply-adds) and the combination
        fwd = (p.detach(), g.detach(), alpha.detach(), heads)  # inference: the kernel does not save e
        ms = _bench(lambda: MaxStateFunction.apply(*fwd))
        base = _baselines(eager=lambda: maxstate_combine_reference(*fwd), compile=compiled and (lambda: compiled(*fwd)))
        for k, v in row("maxstate fwd", f"B={bsz} T={t} D={d}", ms, tokens * 5 * d * 2, flops, roof, base).items():
            out[k].append(v)

        def step(fn):
            return lambda: torch.autograd.grad(fn(p, g, alpha, heads), (p, g, alpha), gy)

        ms = _bench(step(MaxStateFunction.apply))
        base = _baselines(eager_fwdbwd=step(maxstate_combine_reference), compile_fwdbwd=compiled and step(compiled))
        # forward: read p, write y and e; backward: read p, e, grad_y, write dp
        nbytes = tokens * (5 * d + d + 4 * d + d + d + 4 * d) * 2
        for k, v in row("maxstate f+b", f"B={bsz} T={t} D={d}", ms, nbytes, 3 * flops, roof, base).items():
            out[k].append(v)
    return out


def bench_moe(roof: tuple[float, float]) -> dict[str, list[float]]:
    from nas.kernels._moe_triton import grouped_matmul_forward
    from nas.kernels.moe import grouped_matmul_reference

    out: dict[str, list[float]] = {"loop": [], "compile": []}
    compiled = _compile(grouped_matmul_reference)
    for tokens, experts, top_k, d_z, d_h in shapes([(4096, 8, 2, 1024, 256), (1024, 16, 1, 512, 128),
                                                    (256, 4, 2, 784, 64)], [(10, 3, 2, 20, 9)]):
        counts = torch.bincount(torch.randint(experts, (tokens * top_k,)), minlength=experts).tolist()
        x = torch.randn(tokens * top_k, d_z, device=DEV, dtype=torch.bfloat16)
        w1 = torch.randn(experts, d_h, d_z, device=DEV, dtype=torch.bfloat16) / d_z**0.5
        w2 = torch.randn(experts, d_z, d_h, device=DEV, dtype=torch.bfloat16) / d_h**0.5

        def layer(mm):  # W2 relu(W1 x) on every segment
            return lambda: mm(torch.relu(mm(x, w1, counts)), w2, counts)

        torch.testing.assert_close(layer(grouped_matmul_forward)(), layer(grouped_matmul_reference)(),
                                   rtol=2e-2, atol=2e-2)
        ms = _bench(layer(grouped_matmul_forward))
        base = _baselines(loop=layer(grouped_matmul_reference), compile=compiled and layer(compiled))
        rows = tokens * top_k
        nbytes = 2 * (2 * experts * d_z * d_h + rows * (d_z + d_h) * 2)  # weights once, x, h (twice), y
        flops = 2 * rows * d_z * d_h * 2
        for k, v in row("moe W1+W2", f"N={tokens} E={experts} k={top_k} {d_z}x{d_h}", ms, nbytes, flops, roof,
                        base).items():
            out[k].append(v)
    return out


def bench_fpe(roof: tuple[float, float]) -> dict[str, list[float]]:
    from nas.kernels._fpe_triton import ell_forward
    from nas.kernels.fpe import (cached_layout, ell_values, grouped_forward, grouped_layout, grouped_values,
                                 masked_linear, masked_linear_reference)

    out: dict[str, list[float]] = {"dense_nnz": [], "masked": [], "compile": [], "masked_fwdbwd": [],
                                   "grouped_vs_dense_nnz": [], "grouped_vs_masked": [], "grouped_vs_masked_fwdbwd": []}
    compiled = _compile(masked_linear_reference)
    for d_z, d_h in shapes([(784, 256), (1024, 1024), (4096, 1024)], [(33, 7)]):
        for alpha in (2, 4):
            groups = torch.randint(alpha, (d_z,), device=DEV)  # a feature split: one grouping for all neurons
            fmask = (groups[None, None, :] == torch.arange(alpha, device=DEV)[None, :, None]).expand(d_h, alpha, d_z)
            fmask = fmask.reshape(alpha * d_h, d_z).to(torch.bfloat16)
            glay = grouped_layout(fmask, alpha)
            w = torch.randn(alpha * d_h, d_z, device=DEV, dtype=torch.bfloat16) / d_z**0.5
            assign = torch.randint(alpha, (d_h, d_z), device=DEV)  # child of each input of each neuron
            mask = (assign.unsqueeze(1) == torch.arange(alpha, device=DEV).view(1, alpha, 1))
            mask = mask.reshape(alpha * d_h, d_z).to(torch.bfloat16)
            w_nnz = torch.randn(d_h, d_z, device=DEV, dtype=torch.bfloat16) / d_z**0.5
            layout = cached_layout(mask)
            vals = ell_values(w, layout)
            nnz = layout.nnz
            for m in shapes([1, 64, 1024], [5]):
                x = torch.randn(m, d_z, device=DEV, dtype=torch.bfloat16)
                torch.testing.assert_close(ell_forward(x, vals, layout), masked_linear_reference(x, w, mask),
                                           rtol=2e-2, atol=2e-2)
                blocks = grouped_values(w, fmask, glay)
                torch.testing.assert_close(grouped_forward(x, blocks, glay), masked_linear_reference(x, w, fmask),
                                           rtol=2e-2, atol=2e-2)
                ms = _bench(lambda: grouped_forward(x, blocks, glay))
                base = {"grouped_vs_dense_nnz": _bench(lambda: x @ w_nnz.t()),
                        "grouped_vs_masked": _bench(lambda: masked_linear_reference(x, w, fmask))}
                nbytes = 2 * m * (d_z + alpha * d_h) + 2 * d_h * d_z + 4 * d_z  # x, y, the blocks, the permutation
                for k, v in row("fpe grouped", f"a={alpha} B={m} {d_z}->{alpha}x{d_h}", ms, nbytes,
                                2 * m * d_h * d_z, roof, base).items():
                    out[k].append(v)
                # training: forward and backward through masked_linear as FPEPair calls it (blocks gathered each step)
                xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
                gy = torch.randn(m, alpha * d_h, device=DEV, dtype=torch.bfloat16)
                ms = _bench(lambda: torch.autograd.grad(masked_linear(xg, wg, fmask, alpha), (xg, wg), gy))
                base = {"grouped_vs_masked_fwdbwd": _bench(
                    lambda: torch.autograd.grad(masked_linear_reference(xg, wg, fmask), (xg, wg), gy))}
                for k, v in row("fpe grouped f+b", f"a={alpha} B={m} {d_z}->{alpha}x{d_h}", ms, 3 * nbytes,
                                6 * m * d_h * d_z, roof, base).items():
                    out[k].append(v)
                ms = _bench(lambda: ell_forward(x, vals, layout))
                base = _baselines(dense_nnz=lambda: x @ w_nnz.t(), masked=lambda: masked_linear_reference(x, w, mask),
                                  compile=compiled and (lambda: compiled(x, w, mask)))
                nbytes = 2 * m * (d_z + alpha * d_h) + nnz * (2 + 4) + layout.shape[0] * 4  # x, y, values + columns
                shape = f"a={alpha} B={m} {d_z}->{alpha}x{d_h}"
                for k, v in row("fpe fwd", shape, ms, nbytes, 2 * m * nnz, roof, base).items():
                    out[k].append(v)
                xg = x.clone().requires_grad_()
                wg = w.clone().requires_grad_()
                gy = torch.randn(m, alpha * d_h, device=DEV, dtype=torch.bfloat16)

                def step(fn):
                    return lambda: torch.autograd.grad(fn(xg, wg, mask), (xg, wg), gy)

                ms = _bench(step(masked_linear))
                base = {"masked_fwdbwd": _bench(step(masked_linear_reference))}
                for k, v in row("fpe f+b", shape, ms, 3 * nbytes, 6 * m * nnz, roof, base).items():
                    out[k].append(v)
    return out


def main() -> int:
    from nas.kernels import triton_available

    if DRY:
        if os.environ.get("TRITON_INTERPRET") != "1" or not triton_available():
            print("benchmarks/kernels.py --dry-run needs triton and TRITON_INTERPRET=1", file=sys.stderr)
            return 2
        os.environ["NAS_KERNELS"] = "triton"
    elif not torch.cuda.is_available() or not triton_available():
        print("benchmarks/kernels.py needs a CUDA GPU and triton; none here, so no figures "
              "(the kernels' correctness is tested on CPU by tests/test_kernels.py; "
              "TRITON_INTERPRET=1 python benchmarks/kernels.py --dry-run checks this script)", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    gpu = "dry-run-cpu" if DRY else torch.cuda.get_device_name().replace(" ", "_")
    roof = roofline()
    print(f"{gpu}: copy {roof[0]:.0f} GB/s, bf16 matmul {roof[1]:.0f} TFLOP/s")
    summary = {"gpu": gpu, "copy_gbps": f"{roof[0]:.0f}", "bf16_tflops": f"{roof[1]:.0f}"}
    benches = {"lift": bench_lift, "maxstate": bench_maxstate, "moe": bench_moe, "fpe": bench_fpe}
    for name in ONLY or benches:  # in the order --only names them
        for k, v in benches[name](roof).items():
            if not v:
                continue
            key = f"{name}_{k}" if "_vs_" in k else f"{name}_vs_{k}"  # fpe_grouped_vs_…: the feature split's rows
            summary[f"{key}_min"] = f"{min(v):.2f}"
            summary[f"{key}_max"] = f"{max(v):.2f}"
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
