"""The Triton kernels of nas.kernels against their PyTorch references, on CPU through Triton's interpreter.

Every kernel: forward output and all gradients on fresh random inputs, odd
shapes (not multiples of the block sizes), float32 and bfloat16, with the
outputs the launchers allocate poisoned (NaN) so an element a kernel does
not write fails the comparison.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

from kernel_setup import DEVICE, needs_triton, poisoned  # noqa: F401 (poisoned: a fixture); first, see there
from nas.kernels import backend
from nas.kernels.lift import hashed_lift, hashed_lift_reference, hashed_matrix, hashed_signs
from nas.kernels.maxstate import maxstate_combine, maxstate_combine_reference
from nas.kernels.moe import grouped_matmul, grouped_matmul_reference
from nas.spaces import build
from nas.spaces.arch import ArchSpec

# (rtol, atol) of a kernel against its reference: float32 differs only in the order of the sums,
# bfloat16 also in where the 8-bit mantissas are rounded
TOL = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (2e-2, 2e-2)}


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> None:
    rtol, atol = TOL[dtype]
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ dispatch
def test_backend_setting(monkeypatch):
    x = torch.zeros(2)
    monkeypatch.setenv("NAS_KERNELS", "torch")
    assert backend(x) == "torch"
    monkeypatch.setenv("NAS_KERNELS", "auto")
    assert backend(x) == "torch"  # CPU tensors: the reference
    # auto on CUDA tensors (stand-ins: this machine has no GPU): the kernel, except for an op whose kernel auto
    # skips (FPE's, slower than its reference on an H200)
    import nas.kernels

    monkeypatch.setattr(nas.kernels, "triton_available", lambda: True)
    gpu_tensor = type("CudaTensor", (), {"is_cuda": True})()
    assert backend(gpu_tensor) == "triton" and backend(gpu_tensor, auto=False) == "torch"
    assert backend(gpu_tensor, x) == "torch"  # not all on CUDA
    monkeypatch.setenv("NAS_KERNELS", "triton")
    assert backend(gpu_tensor, auto=False) == "triton"  # forced
    monkeypatch.setenv("NAS_KERNELS", "cuda")
    with pytest.raises(ValueError, match="NAS_KERNELS must be one of auto, triton, torch"):
        backend(x)


# ------------------------------------------------------------- hashed lift
def test_hashed_signs_are_deterministic_and_unbiased():
    d_z, d_in = 256, 300
    r = hashed_matrix(5, d_z, d_in)
    assert torch.equal(r, hashed_matrix(5, d_z, d_in))
    assert not torch.equal(r, hashed_matrix(6, d_z, d_in))
    assert torch.equal(hashed_signs(5, range(100, 140), d_in), hashed_signs(5, range(d_z), d_in)[100:140])
    scale = torch.tensor(1 / math.sqrt(d_in)).item()  # in float32
    assert set(r.unique().tolist()) == {-scale, scale}
    n = d_z * d_in
    assert abs(r.mean().item()) * math.sqrt(d_in) < 4 / math.sqrt(n)  # the signs' mean within 4 standard errors
    assert r.var().item() == pytest.approx(1 / d_in, rel=1e-3)
    gram = (r @ r.t()).fill_diagonal_(0)  # off the diagonal: row correlations, each ~ N(0, 1/d_in)
    assert gram.abs().max().item() < 6 / math.sqrt(d_in)
    assert abs(gram.sum().item()) / (d_z * (d_z - 1)) < 4 / math.sqrt(d_in * d_z * (d_z - 1))


@needs_triton
@pytest.mark.parametrize("seed", [0, 1, 2**40 + 3, -7])
def test_hashed_lift_kernel_generates_the_reference_matrix(poisoned, seed):
    d_in, d_z = 37, 70
    r_t = hashed_lift(torch.eye(d_in, device=DEVICE), seed, d_z)  # I Rᵀ = Rᵀ, exact: one ±1 term per entry
    assert torch.equal(r_t.t().cpu(), hashed_matrix(seed, d_z, d_in))


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("lead,d_in,d_z", [((1,), 37, 45), ((19,), 70, 130), ((3, 5), 65, 33)])
def test_hashed_lift_kernel_matches_reference(poisoned, dtype, lead, d_in, d_z):
    seed = int(torch.randint(0, 2**31, ()))
    x = torch.randn(*lead, d_in, device=DEVICE, dtype=dtype, requires_grad=True)
    grad = torch.randn(*lead, d_z, device=DEVICE, dtype=dtype)
    y = hashed_lift(x, seed, d_z)
    (gx,) = torch.autograd.grad(y, x, grad)
    x_ref = x.detach().clone().requires_grad_()
    y_ref = hashed_lift_reference(x_ref, seed, d_z)
    (gx_ref,) = torch.autograd.grad(y_ref, x_ref, grad)
    _close(y, y_ref, dtype)
    _close(gx, gx_ref, dtype)


@needs_triton
@pytest.mark.parametrize("extra", [
    {},
    {"mixer": "token_mlp", "in_shape": (6, 7)},
    {"mixer": "maxstate", "in_shape": (6, 7)},  # the lift and the maxstate kernels
    {"moe_experts": 3, "moe_top_k": 2},  # the lift and the grouped products
    {"moe_experts": 4, "activation": "prelu"},  # a learnable activation per expert
], ids=["flat", "token_mlp", "maxstate", "moe", "moe_prelu"])
def test_blocks_same_with_kernels_and_references(monkeypatch, extra):
    """A candidate with the hashed lift (and other kernels): NAS_KERNELS=triton gives =torch's output and gradients."""
    spec = ArchSpec(d_in=42, d_out=3, lift="hashed", lift_width=24, hidden_width=8, depth=1, lift_seed=11,
                    norm="layernorm", **extra)
    torch.manual_seed(0)
    model = build(spec).to(DEVICE)
    x = torch.randn(5, 42, device=DEVICE)
    out = {}
    for mode in ("torch", "triton"):
        monkeypatch.setenv("NAS_KERNELS", mode)
        model.zero_grad()
        y = model(x)
        y.square().sum().backward()
        out[mode] = (y.detach(), [torch.zeros_like(p) if p.grad is None else p.grad.clone()  # an unused expert
                                  for p in model.parameters()])
    torch.testing.assert_close(out["triton"][0], out["torch"][0], rtol=1e-5, atol=1e-5)
    for got, want in zip(out["triton"][1], out["torch"][1]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ maxstate
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bsz,t,d,heads", [(2, 7, 12, 4), (3, 5, 8, 1), (1, 6, 40, 2)])
def test_maxstate_kernel_matches_reference(poisoned, dtype, bsz, t, d, heads):
    """Forward and the gradients of p, G and α. In bfloat16 the kernel computes in float32 and rounds once,
    so its reference is the float32 reference on the same bfloat16 operands, rounded to bfloat16."""
    p = torch.randn(bsz, t, 4 * d, device=DEVICE).to(dtype).requires_grad_()
    g_weight = torch.randn(heads, 5 * heads, device=DEVICE).to(dtype).requires_grad_()
    alpha = torch.rand(3, device=DEVICE).to(dtype).requires_grad_()
    grad = torch.randn(bsz, t, d, device=DEVICE).to(dtype)
    y = maxstate_combine(p, g_weight, alpha, heads)
    grads = torch.autograd.grad(y, (p, g_weight, alpha), grad)
    ref_in = [x.detach().float().requires_grad_() for x in (p, g_weight, alpha)]
    y_ref = maxstate_combine_reference(*ref_in, heads)
    grads_ref = torch.autograd.grad(y_ref, ref_in, grad.float())
    _close(y, y_ref.to(dtype), dtype)
    for got, want in zip(grads, grads_ref):
        _close(got, want.to(dtype), dtype)


@needs_triton
def test_maxstate_kernel_gradient_goes_to_the_last_of_tied_maxima(poisoned):
    """Small integers tie often: the gradient of the running maximum must go where torch.cummax sends it."""
    p = torch.randint(-2, 3, (2, 9, 4 * 12), device=DEVICE).float().requires_grad_()
    g_weight = torch.randn(4, 20, device=DEVICE, requires_grad=True)
    alpha = torch.rand(3, device=DEVICE, requires_grad=True)
    grad = torch.randn(2, 9, 12, device=DEVICE)
    got = torch.autograd.grad(maxstate_combine(p, g_weight, alpha, 4), (p, g_weight, alpha), grad)
    want = torch.autograd.grad(maxstate_combine_reference(p, g_weight, alpha, 4), (p, g_weight, alpha), grad)
    for a, b in zip(got, want):
        _close(a, b, torch.float32)


@needs_triton
def test_maxstate_kernel_keeps_a_nan_in_the_running_maximum_as_the_reference(monkeypatch):
    """A NaN in c poisons the running maximum from its step on in both paths (torch.cummax propagates it),
    so a diverging candidate is seen as diverged whichever path ran it."""
    monkeypatch.setenv("NAS_KERNELS", "triton")
    p = torch.randn(1, 6, 4 * 8, device=DEVICE)
    p[0, 2, 2 * 8 + 3] = math.nan  # c, channel 3, step 2
    g_weight, alpha = torch.randn(2, 10, device=DEVICE), torch.rand(3, device=DEVICE)
    got, want = maxstate_combine(p, g_weight, alpha, 2), maxstate_combine_reference(p, g_weight, alpha, 2)
    assert torch.equal(torch.isnan(got), torch.isnan(want)) and torch.isnan(want[0, 2:]).any()
    torch.testing.assert_close(got.nan_to_num(), want.nan_to_num(), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------- MoE
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("counts,n,k", [([5, 0, 37, 1], 19, 45), ([70], 66, 33), ([0, 0, 3], 8, 8)])
def test_grouped_matmul_kernel_matches_reference(poisoned, dtype, counts, n, k):
    """Segments of odd sizes, empty ones included (their weight gradient must be written as 0)."""
    x = torch.randn(sum(counts), k, device=DEVICE).to(dtype).requires_grad_()
    w = torch.randn(len(counts), n, k, device=DEVICE).to(dtype).requires_grad_()
    grad = torch.randn(sum(counts), n, device=DEVICE).to(dtype)
    y = grouped_matmul(x, w, counts)
    grads = torch.autograd.grad(y, (x, w), grad)
    y_ref = grouped_matmul_reference(x, w, counts)
    grads_ref = torch.autograd.grad(y_ref, (x, w), grad)
    _close(y, y_ref, dtype)
    for got, want in zip(grads, grads_ref):
        _close(got, want, dtype)


@needs_triton
def test_the_gpu_benchmark_script_runs_every_path_in_a_dry_run():
    """benchmarks/kernels.py is run on a GPU only when one is lent: its dry run (tiny shapes, the interpreter)
    checks here that every kernel's benchmark runs and agrees with its reference, and that the headline is there."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "kernels.py"
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, str(script), "--dry-run"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = dict(pair.split("=", 1) for pair in proc.stdout.strip().splitlines()[-1].split())
    assert last["gpu"] == "dry-run-cpu"
    for key in ("lift_vs_stored_min", "maxstate_vs_eager_min", "moe_vs_loop_min", "fpe_vs_dense_nnz_min",
                "fpe_grouped_vs_dense_nnz_min"):
        assert math.isfinite(float(last[key])), key  # a ratio was printed; a dry run's timings mean nothing


@needs_triton
def test_every_kernel_launch_compiles_for_an_h100(tmp_path):
    """The interpreter accepts code the compiler refuses: every launch the launchers make (forward and backward,
    float32 and bfloat16, several shapes) is compiled for sm_90 to a cubin by Triton's own compiler and ptxas,
    without a GPU (tests/kernels_compile.py), in a fresh cache so nothing is taken from an earlier run."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent / "kernels_compile.py"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, str(script), "--arch", "90"], capture_output=True, text=True, env=env,
                          timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    kernels = {line.split()[2] for line in proc.stdout.splitlines() if line.startswith("ok ")}
    assert kernels == {"_hashed_lift_fwd_kernel", "_hashed_lift_bwd_kernel", "_maxstate_fwd_kernel",
                       "_maxstate_bwd_kernel", "_grouped_mm_kernel", "_grouped_wgrad_kernel", "_ell_mm_kernel",
                       "_ell_vgrad_kernel"}
    assert proc.stdout.strip().splitlines()[-1].endswith("failed=0 arch=sm_90")
