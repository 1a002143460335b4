"""What the kernel tests share: Triton's interpreter on a machine without a GPU, the device, the skip without
triton, and the ``poisoned`` fixture. Import it before any ``nas.kernels`` module: the interpreter setting is
read when a kernel module is first imported."""

import importlib.util
import math
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                  reason="triton is not installed (pip install -e '.[test]' on Linux x86_64)")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def poisoned(monkeypatch):
    """Run with NAS_KERNELS=triton and every float tensor from ``torch.empty``/``empty_like`` filled with NaN,
    so an output element a launcher allocates and its kernel does not write fails the comparison."""
    empty, empty_like = torch.empty, torch.empty_like

    def nan(out):
        return out.fill_(math.nan) if out.is_floating_point() else out

    monkeypatch.setattr(torch, "empty", lambda *a, **k: nan(empty(*a, **k)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **k: nan(empty_like(*a, **k)))
    monkeypatch.setenv("NAS_KERNELS", "triton")
