"""Triton kernels for the candidate ops, each behind a torch.autograd.Function
with a pure-PyTorch reference that is the CPU path.

Every kernel is layered as in Liger-Kernel: a ``@triton.jit`` kernel, a
launcher (checks shapes, dtypes and devices, allocates, launches), a
``torch.autograd.Function`` (forward and backward), and a public function
that picks the kernel or the reference (``backend``). The Triton parts live
in private ``_*_triton`` modules, imported only when a kernel runs, so nas
imports and runs without triton.

- ``lift.hashed_lift``: y = x Rᵀ with R's ±1/√d_in entries hashed from
  (seed, row, column) inside the kernel, never stored;
- ``maxstate.maxstate_combine``: the maxstate mixer's running maximum along
  the sequence fused with its elementwise combination.
- ``moe.grouped_matmul``: y = x @ w[i]ᵀ on each expert's segment of rows,
  all experts in one launch (the mixture of dense experts' W1 and W2).
- ``fpe.masked_linear``: an expanded FPE layer y = x (W ⊙ M)ᵀ on its
  non-zeros only (padded rows of column indices), and a shared split's W1 as
  α dense products.

The setting ``NAS_KERNELS`` (environment) chooses: ``auto`` (default) runs a
kernel when all its tensors are on CUDA and triton imports, else the
reference, except FPE's kernels, which ``auto`` never runs: on an H200 they
were slower than the masked dense product at every shape measured
(``benchmarks/results/kernels.txt``); ``torch`` always runs the reference; ``triton`` always runs the
kernel (on CPU tensors that needs Triton's interpreter, ``TRITON_INTERPRET=1``,
which is how the tests run the kernels without a GPU).
"""

from __future__ import annotations

import functools
import os

import torch

MODES = ("auto", "triton", "torch")


@functools.cache
def triton_available() -> bool:
    """True when ``import triton`` works (checked once)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def backend(*tensors: torch.Tensor, auto: bool = True) -> str:
    """``"triton"`` or ``"torch"``: what runs an op on ``tensors`` under the ``NAS_KERNELS`` setting.

    ``auto=False``: an op whose kernel ``auto`` does not run (measured slower than its reference on a GPU;
    ``NAS_KERNELS=triton`` still forces it).
    """
    mode = os.environ.get("NAS_KERNELS", "auto")
    if mode not in MODES:
        raise ValueError(f"NAS_KERNELS must be one of {', '.join(MODES)}, found {mode!r}")
    if mode == "torch":
        return "torch"
    if mode == "triton":
        if not triton_available():
            raise RuntimeError("NAS_KERNELS=triton but triton cannot be imported (pip install triton)")
        if not all(t.is_cuda for t in tensors) and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("NAS_KERNELS=triton on CPU tensors needs Triton's interpreter: set TRITON_INTERPRET=1")
        return "triton"
    return "triton" if auto and all(t.is_cuda for t in tensors) and triton_available() else "torch"
