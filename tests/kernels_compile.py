"""Compile every launch of nas's Triton kernels for a GPU, on a machine without one.

Triton's interpreter (what the kernel tests run on the CPU) accepts code the
real compiler refuses, so this runs the real compiler: each kernel's launcher
and autograd Function is called on CPU tensors, in float32 and bfloat16
at several shapes, with every ``kernel[grid](...)`` intercepted;
each intercepted launch (its argument types, the 16-divisibility Triton's JIT
would specialise on, its constexprs) is compiled with ``triton.compile`` for
the target through PTX to a cubin with the ptxas Triton ships. Nothing runs.

    python tests/kernels_compile.py [--arch 90]

Prints one line per distinct compilation and exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.pop("TRITON_INTERPRET", None)  # the real compiler, not the interpreter (read at import)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from nas.kernels import _fpe_triton, _lift_triton, _maxstate_triton, _moe_triton  # noqa: E402
from nas.kernels.fpe import ell_layout, ell_values  # noqa: E402

DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.int16: "i16",
          torch.int32: "i32", torch.int64: "i64", torch.uint8: "u8", torch.bool: "i1"}


class Recorder:
    """Stands in for a @triton.jit kernel: ``kernel[grid](*args, **constexprs)`` records the launch."""

    def __init__(self, fn):
        self.fn, self.launches = fn, []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.launches.append((args, kwargs))


def _signature(fn, args, constexprs):
    """(signature, attrs, constexprs) as Triton's JIT would build them for ``args``: types, the 16-divisibility
    of pointers and integers (``tt.divisibility``), and an integer equal to 1 compiled as the constant 1,
    except for the arguments the kernel does not specialise (``do_not_specialize``)."""
    names = [n for n in fn.arg_names if n not in constexprs]
    skip = {p.name for p in fn.params if p.do_not_specialize}
    constexprs = dict(constexprs)
    sig, attrs = {}, {}
    for name, value in zip(names, args):
        if isinstance(value, torch.Tensor):
            sig[name] = "*" + DTYPES[value.dtype]
            divisible = True  # torch's allocations are 16-byte aligned, as on the GPU
        elif isinstance(value, bool):
            sig[name], divisible = "i1", False
        elif isinstance(value, int) and value == 1 and name not in skip:
            constexprs[name] = 1  # what the JIT does with a 1 (a batch of one, a single head)
            continue
        elif isinstance(value, int):
            sig[name] = "i32" if -2**31 <= value < 2**31 else ("i64" if value < 2**63 else "u64")
            divisible = value % 16 == 0 and name not in skip
        elif isinstance(value, float):
            sig[name], divisible = "fp32", False
        else:
            raise TypeError(f"{fn.__name__}: argument {name} of type {type(value).__name__}")
        if divisible:
            attrs[(fn.arg_names.index(name),)] = [["tt.divisibility", 16]]
    full = {n: sig.get(n, "constexpr") for n in fn.arg_names}
    return full, attrs, constexprs


def scenarios():
    """Calls of every launcher, forward and backward, in float32 and bfloat16 (float16 takes bfloat16's path),
    at shapes that pick different tiles."""
    for dtype in (torch.float32, torch.bfloat16):
        for m in (1, 1000):  # the lift's tile sizes depend on the batch
            x = torch.randn(m, 784).to(dtype).requires_grad_()
            y = _lift_triton.HashedLiftFunction.apply(x, 7, 2048)
            y.backward(torch.ones_like(y))
        for bsz, t, d, heads in ((2, 9, 64, 1), (2, 5, 512, 8), (1, 3, 1024, 16)):
            p = torch.randn(bsz, t, 4 * d).to(dtype).requires_grad_()
            g = torch.randn(heads, 5 * heads).to(dtype).requires_grad_()
            alpha = torch.rand(3).to(dtype).requires_grad_()
            y = _maxstate_triton.MaxStateFunction.apply(p, g, alpha, heads)
            y.backward(torch.ones_like(y))
        for counts, n, k in (([5, 0, 37, 1], 64, 48), ([300, 200], 256, 1024)):
            x = torch.randn(sum(counts), k).to(dtype).requires_grad_()
            w = torch.randn(len(counts), n, k).to(dtype).requires_grad_()
            y = _moe_triton.GroupedMatmulFunction.apply(x, w, counts)
            y.backward(torch.ones_like(y))
        for r, c, m in ((512, 784, 1), (64, 40000, 300)):  # int16 and int32 column indices
            mask = (torch.rand(r, c) < 0.3).to(dtype)
            layout = ell_layout(mask)
            vals = ell_values(torch.randn(r, c).to(dtype), layout).requires_grad_()
            x = torch.randn(m, c).to(dtype).requires_grad_()
            y = _fpe_triton.EllLinearFunction.apply(x, vals, layout)
            y.backward(torch.ones_like(y))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=90, help="compute capability × 10 (90: H100/H200)")
    arch = ap.parse_args().arch
    modules = (_lift_triton, _maxstate_triton, _moe_triton, _fpe_triton)
    recorders = {}
    for mod in modules:
        for name, obj in list(vars(mod).items()):
            if isinstance(obj, triton.runtime.jit.JITFunction) and name.endswith("_kernel"):
                recorders[(mod.__name__, name)] = rec = Recorder(obj)
                setattr(mod, name, rec)
    scenarios()
    target, failed, seen = GPUTarget("cuda", arch, 32), 0, set()
    for (mod, name), rec in recorders.items():
        if not rec.launches:
            print(f"{name}: never launched by the scenarios", flush=True)
            failed += 1
        for args, constexprs in rec.launches:
            sig, attrs, constexprs = _signature(rec.fn, args, constexprs)
            key = (name, tuple(sig.items()), tuple(sorted(attrs)), tuple(sorted((k, str(v)) for k, v in constexprs.items())))
            if key in seen:
                continue
            seen.add(key)
            label = f"{name} {' '.join(t for t in sig.values() if t != 'constexpr')} " + \
                    " ".join(f"{k}={v}" for k, v in constexprs.items())
            try:
                compiled = triton.compile(ASTSource(rec.fn, sig, constexprs, attrs), target=target)
                size = len(compiled.asm["cubin"])
                print(f"ok    sm_{arch} {label} ({size} B cubin)", flush=True)
            except Exception as exc:  # noqa: BLE001 - every failure is reported, then the exit status says it
                failed += 1
                print(f"FAIL  sm_{arch} {label}: {type(exc).__name__}: {str(exc)[:2000]}", flush=True)
    print(f"compiled={len(seen)} failed={failed} arch=sm_{arch}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
