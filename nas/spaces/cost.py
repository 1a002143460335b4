"""The analytic cost model behind the ``params`` and ``bandwidth`` objectives."""

from __future__ import annotations

import torch

from nas.spaces.arch import ArchSpec
from nas.spaces.base import Cost


def model_cost(spec: ArchSpec, dtype_bytes: int = 4) -> Cost:
    """Params and bandwidth of the candidate ``spec``, from the model's own structure.

    The model is built on PyTorch's meta device (no memory, no training) and
    every module reports what it keeps and moves.

    ``params``: stored parameters a deployed model must keep, trainable or
    frozen. A fixed random lift regenerated from its seed counts 0. Norm
    statistics (BatchNorm's running mean and variance) are not parameters.
    For the hourglass family this is the paper's
    ``d_in·d_z [learned lift] + L·2·d_z·d_h + d_z·d_out``.

    ``bandwidth`` (bytes): the bytes a single-sample (batch 1) inference
    forward pass must move through device memory at minimum:

    - every stored tensor read once: ``dtype_bytes`` × its non-zeros
      (weights, and the 2·d_z statistics of each BatchNorm), plus index bytes
      where a sparse layout needs them;
    - a seeded lift generated on the fly (``hashed``: the kernel hashes R
      inside the product; ``hadamard``: no matrix at all): 0 weight bytes;
      ``fixed_random``, regenerated from its seed but read from memory,
      counts its d_z·d_in entries (0 params all the same);
    - every linear layer (lift, W1, W2, head) reads its input vector and writes
      its output vector once; norms and activations are fused into the
      neighbouring layer and move nothing more; a residual add reads the skip
      vector once (d_z).
    - an FPE pair (``fpe_alpha`` α > 1) counts its deployed, expanded form: its
      2·d_z·d_h non-zeros in a CSR layout (× dtype_bytes, plus one 2-byte
      column index per non-zero — 4 bytes once a width passes 32,767 — and
      4-byte row pointers for the α·d_h + 1 and d_z + 1 rows), and the
      activation vectors at the expanded width: (d_z + α·d_h) per layer.
    - a structured W1 or W2 (``weights``, ``nas.spaces.structured``) counts its
      stored values (``lowrank``: rank·(d_in + d_out); ``circulant``: one
      c-vector per c×c block, c = min(d_in, d_out), the longer side padded to a
      multiple of c; ``monarch``: m·(d_in + d_out)/b, m = min(d_in, d_out))
      and reads each once; ``lowrank`` and ``monarch`` are two layers in a row
      (the rank- or m-wide middle vector written and read back:
      d_in + 2·middle + d_out), ``circulant`` one layer whose FFTs work on the
      vector it reads (d_in + d_out).
    - a token mixer (``nas.spaces.mixers``) counts one sample's T tokens: weights
      shared by the tokens (embedding, channel blocks, mixer projections) are
      read once, per-token activations move T times; attention also writes and
      reads its H·T×T score matrix (quadratic in T), the token MLP moves D
      columns of T, the cumulative-max mixer O(T·D); linear attention writes
      and reads its per-head state instead (H·(D/H)² + D values, independent of
      T) besides reading q, k, v and writing its T·D output; the depthwise
      convolution stores D·kernel taps (read once) and reads and writes T·D.
    - early exit (``exits`` k ≥ 1): every exit head is a bias-free d_z -> d_out
      linear, counted in ``params``; ``bandwidth`` is the worst case, a sample
      that leaves at no exit head: it evaluates every exit head (behind a mixer
      each after its own mean over the tokens) and the final head. What a
      sample that leaves at a given head moves is ``exit_costs``.
    - gated cross-layer connections (``connections: gated_dense``,
      ``nas.spaces.blocks.DenseGates``): every one of the depth·(depth-1)/2
      connections counts, as none is known to be pruned before training: its
      gate is 1 param (read once, ``dtype_bytes``) and it reads the earlier
      stream once (d_z values; T·d_z behind a mixer); the multiply-add is fused
      into the add that forms the block's input. ``kept_cost`` counts only the
      connections a trained model kept (the ``bandwidth_kept`` objective).
    """
    from nas.spaces.builder import build

    with torch.device("meta"):
        model = build(spec)
    return model.nas_cost(dtype_bytes)


def _deployed(spec: ArchSpec, model: torch.nn.Module | None) -> torch.nn.Module:
    """``spec``'s model on the meta device, with the gated connections ``model`` (trained, pruned) kept, if given."""
    from nas.spaces.blocks import DenseGates
    from nas.spaces.builder import build

    with torch.device("meta"):
        deployed = build(spec)
    if model is not None:
        trained = [m for m in model.modules() if isinstance(m, DenseGates)]
        for mine, theirs in zip((m for m in deployed.modules() if isinstance(m, DenseGates)), trained, strict=True):
            mine.relink(theirs.keep.tolist())
    return deployed


def kept_cost(spec: ArchSpec, model: torch.nn.Module, dtype_bytes: int = 4) -> Cost:
    """``model_cost`` of ``spec`` with only the gated connections ``model`` (``spec``'s trained, pruned model)
    kept: equal to it without ``gated_dense``."""
    return _deployed(spec, model).nas_cost(dtype_bytes)


def bandwidth_bytes(cost: Cost) -> int:
    return cost.weight_bytes + cost.act_bytes


def exit_costs(spec: ArchSpec, dtype_bytes: int = 4, model: torch.nn.Module | None = None) -> list[Cost]:
    """The cost of a sample that leaves at each head of ``spec``: the exit heads in order, then the final head.

    A prefix of the model, counted as ``model_cost`` counts it: the lift, the
    blocks up to the head, every exit head evaluated on the way (behind a
    mixer each with its mean over the tokens) and the head itself. The last
    entry is ``model_cost(spec)``; without exits it is the only one. ``model``: the trained model, whose
    pruned gated connections are left out (as ``kept_cost``).
    """
    return _deployed(spec, model).nas_exit_costs(dtype_bytes)


def bandwidth_floor(spec: ArchSpec, dtype_bytes: int = 4) -> int:
    """The least bytes a trained ``spec`` can be found to move per sample: its first head's prefix
    (``exit_costs``) with every gated connection pruned; ``bandwidth`` itself for a candidate with neither
    early exit nor gated connections. Early stopping compares candidates on it (``nas.search.execution.pruning``)."""
    import dataclasses

    bare = dataclasses.replace(spec, connections="residual")
    return min(bandwidth_bytes(c) for c in exit_costs(bare, dtype_bytes))


def expected_bandwidth(spec: ArchSpec, exit_counts: list[int], dtype_bytes: int = 4,
                       model: torch.nn.Module | None = None) -> float:
    """``bandwidth_expected``: the mean bytes a sample moves when ``exit_counts[j]`` samples leave at head j (the
    exit histogram, the final head last): each exit's prefix ``bandwidth_bytes`` weighted by its count (``model``:
    the trained model, its pruned gated connections left out)."""
    return expected_bytes(exit_counts, [bandwidth_bytes(c) for c in exit_costs(spec, dtype_bytes, model)])


def expected_bytes(exit_counts: list[int], head_bytes: list[int]) -> float:
    """The mean bytes a sample moves when ``exit_counts[j]`` samples leave at head j and a sample leaving
    there moves ``head_bytes[j]`` (``bandwidth_bytes`` of each ``exit_costs`` entry): ``expected_bandwidth``
    once those bytes are known."""
    if len(exit_counts) != len(head_bytes) or sum(exit_counts) <= 0:
        raise ValueError(f"{len(head_bytes)} heads but exit counts {exit_counts}")
    return sum(n * b for n, b in zip(exit_counts, head_bytes)) / sum(exit_counts)
