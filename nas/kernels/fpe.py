"""The FPE sparse layer: y = x (W ⊙ M)ᵀ with the masked weight stored as its non-zeros only.

Layout (padded rows, "ELLPACK"): for a mask M (R, C) — R output rows, C
inputs — every output row r keeps ``counts[r]`` non-zeros, and

    cols[r, j]  (R, L) int16   the input column of row r's j-th non-zero (increasing j = increasing column)
    vals[r, j]  (R, L)         its value W[r, cols[r, j]]; 0 for j ≥ counts[r]

with L = max(counts) (at least 1). Padding entries have column 0 and value
0 and are skipped by the kernels (they loop a row tile only to its longest
row and mask by ``counts``). Chosen over CSR because FPE's random splits
give rows of nearly equal length (each of the α children of a neuron gets
~C/α inputs), so the padding is small and a row tile reads a rectangle of
indices without searching row pointers; a pruned W2 (d_out rows of ≤ α·d_h)
is the same. Column indices are int16 where C ≤ 32767 (int32 beyond), so
the index bytes are R·L·2 + R·4 per matrix (the pair's ``nas_cost``
counts a CSR layout's, which it approaches when the rows are balanced).
Per non-zero the kernel therefore reads 2 bytes of bf16 value and 2 of
index: where the product is bandwidth-bound (small batches) it moves about
2× the bytes of a dense layer with the same non-zeros, and still α/2× less
than the masked dense product (a bitmap of the mask, α/8 bytes a non-zero,
would bring it within 1.25× of dense; not done).

The backward pass needs the columns' view as well (grad_x[m, c] =
Σ_r grad_y[m, r] W[r, c]): the same layout of Mᵀ, whose entries point into
``vals`` (``tpos[c, j]`` = r·L + j' of W[r, c]) rather than copying the
values, so one tensor of values is all that is differentiated.

Kernels (``nas.kernels._fpe_triton``): y = x Wᵀ gathers, for a tile of
batch rows and output rows, x at the tile's column indices and multiplies
by the values (float32 accumulation, x's dtype out); grad_x is the same
kernel on the transposed layout; grad_vals[r, j] = Σ_m grad_y[m, r]
x[m, cols[r, j]] (0 at padding). Only the non-zeros are read: α·d_h rows
of ~d_z/α non-zeros instead of the α·d_h × d_z masked dense product.

``masked_linear(x, weight, mask)`` is what ``FPEPair`` calls: on the
kernel's path it builds the layout from the mask (once per mask: cached on
the mask tensor, rebuilt when the mask changes in place or moves), gathers
``vals`` from ``weight`` and the mask with a differentiable gather, so the
gradient flows back to the dense parameter through the mask (masked
entries get exactly 0), and the module's parameters and state dict are
those of the reference path, ``masked_linear_reference``.

Shared splits (``masked_linear(..., groups=α)``, FPEPair's W1 when the
split is ``feature`` or ``groups``): every neuron shares one grouping of the inputs,
so child k of every neuron reads only group k. ``grouped_layout`` checks
that structure on the mask itself (None where it does not hold, e.g. W2,
or a random split) and gives one permutation of the input columns, after
which the layer is α dense products (cuBLAS on CUDA) of the children's
(d_h, n_k) blocks: no index per non-zero and the matrix units' full rate;
entries pruned inside a block are stored as zeros (at most the dense
d_h·d_z slots). Autograd differentiates the gathers and products.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nas.kernels import backend


@dataclass(frozen=True)
class EllLayout:
    """The padded-rows layout of a mask (R, C) and of its transpose (the module's docstring)."""

    cols: torch.Tensor  # (R, L) int16 where C ≤ 32767, else int32
    counts: torch.Tensor  # (R,) int32
    tcols: torch.Tensor  # (C, LT) int16 where R ≤ 32767, else int32: the rows r of column c's non-zeros
    tcounts: torch.Tensor  # (C,) int32
    tpos: torch.Tensor  # (C, LT) int32: r·L + j of each, an index into vals.flatten()
    mvals: torch.Tensor  # (R, L) the mask's values at cols (mask's dtype), 0 at padding
    shape: tuple[int, int]  # (R, C)
    nnz: int

    @property
    def width(self) -> int:
        return self.cols.shape[1]


def _rows(nz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cols (R, L) int64 padded with 0, counts (R,) int64, valid (R, L) bool) of a boolean (R, C) matrix."""
    counts = nz.sum(1)
    width = max(int(counts.max()) if counts.numel() else 0, 1)
    # a stable sort of "is zero" puts each row's non-zero columns first, in increasing order
    order = torch.sort((~nz).to(torch.uint8), dim=1, stable=True).indices[:, :width]
    if order.shape[1] < width:  # C == 0
        order = torch.zeros(nz.shape[0], width, dtype=torch.long, device=nz.device)
    valid = torch.arange(width, device=nz.device) < counts[:, None]
    return torch.where(valid, order, 0), counts, valid


def _index_dtype(size: int) -> torch.dtype:
    """The narrowest signed integer dtype indexing ``size`` positions (int16 or int32)."""
    return torch.int16 if size <= 32767 else torch.int32


@torch.no_grad()
def ell_layout(mask: torch.Tensor) -> EllLayout:
    """The layout of the non-zeros of ``mask`` (R, C), any dtype (non-zero = kept), on its device."""
    if mask.dim() != 2:
        raise ValueError(f"FPE layout: the mask must be 2-D (rows, inputs), found shape {tuple(mask.shape)}")
    nz = mask != 0
    r, c = nz.shape
    if nz.numel() >= 2**31:
        raise ValueError(f"FPE layout: {r}×{c} is too large for int32 indices")
    cols, counts, valid = _rows(nz)
    width = cols.shape[1]
    rank = nz.to(torch.int32).cumsum(1) - 1  # (R, C): j of W[r, c] within row r
    trows, tcounts, tvalid = _rows(nz.t())  # (C, LT): rows r holding column c
    cidx = torch.arange(c, device=mask.device)[:, None].expand_as(trows)
    tpos = torch.where(tvalid, trows * width + rank[trows, cidx], 0)
    i32 = torch.int32
    mvals = mask.gather(1, cols) * valid.to(mask.dtype)
    return EllLayout(cols.to(_index_dtype(c)).contiguous(), counts.to(i32).contiguous(),
                     trows.to(_index_dtype(r)).contiguous(),
                     tcounts.to(i32).contiguous(), tpos.to(i32).contiguous(), mvals.contiguous(), (r, c),
                     int(counts.sum()))


def _kept_on(mask: torch.Tensor, name: str, build, *extra):
    """``build()``, kept on the mask tensor as ``name`` while its storage, version, device, shape and ``extra``
    are unchanged (a mask changed in place or moved gets a new one)."""
    key = (mask.data_ptr(), mask._version, mask.device, tuple(mask.shape), *extra)
    cached = getattr(mask, name, None)
    if cached is None or cached[0] != key:
        cached = (key, build())
        setattr(mask, name, cached)
    return cached[1]


def cached_layout(mask: torch.Tensor) -> EllLayout:
    """``ell_layout(mask)``, kept on the mask tensor while it is unchanged."""
    return _kept_on(mask, "_nas_ell_layout", lambda: ell_layout(mask))


def ell_values(weight: torch.Tensor, layout: EllLayout) -> torch.Tensor:
    """vals (R, L): ``weight ⊙ mask`` at the layout's columns, 0 at padding; differentiable in ``weight``.

    Reads only the kept entries of ``weight`` (a gather, then the mask's
    values there); the gradient is scattered back to those entries, every
    other entry of the dense weight gets 0.
    """
    return weight.gather(1, layout.cols.long()) * layout.mvals.to(weight.dtype)


def ell_dense(vals: torch.Tensor, layout: EllLayout) -> torch.Tensor:
    """The dense (R, C) matrix of ``vals`` in ``layout`` (differentiable in vals, padding ignored: its
    gradient is 0, as the kernel's): the layout's reference."""
    r, c = layout.shape
    valid = torch.arange(layout.width, device=vals.device) < layout.counts[:, None]
    return vals.new_zeros(r, c).scatter_add(1, layout.cols.long(), vals * valid.to(vals.dtype))


def ell_linear_reference(x: torch.Tensor, vals: torch.Tensor, layout: EllLayout) -> torch.Tensor:
    """y = x Wᵀ with W = ``ell_dense(vals, layout)``: x (…, C) -> (…, R), in PyTorch."""
    return x @ ell_dense(vals, layout).t()


def ell_linear(x: torch.Tensor, vals: torch.Tensor, layout: EllLayout) -> torch.Tensor:
    """y = x Wᵀ from the non-zeros ``vals`` in ``layout``: the Triton kernels where ``nas.kernels.backend``
    says so, else ``ell_linear_reference``. Gradients for x and vals."""
    if backend(x, vals, auto=False) == "triton":  # auto: the reference (faster on an H200; kernels.txt)
        from nas.kernels._fpe_triton import EllLinearFunction

        return EllLinearFunction.apply(x, vals, layout)
    return ell_linear_reference(x, vals, layout)


@dataclass(frozen=True)
class GroupedLayout:
    """A mask (R, C) whose row r reads only inputs of group ``r % groups``: FPE's shared splits of W1 (feature, groups).

    ``perm`` lists the used input columns group by group (columns no row
    uses are left out), group k being ``perm[offsets[k]:offsets[k + 1]]``.
    After this one permutation of x's columns the layer is ``groups`` dense
    products, y[:, k::groups] = x[:, perm_k] W_kᵀ with W_k (R/groups, n_k)
    the rows of child k at their group's columns: no per-non-zero index, and
    the entries pruned inside a block are stored as zeros.
    """

    perm: torch.Tensor  # (C',) int32, C' ≤ C
    offsets: tuple[int, ...]  # groups + 1 boundaries in perm
    shape: tuple[int, int]  # (R, C)
    index: torch.Tensor  # (R/groups · C',) int64: the blocks' entries in the flat (R·C) weight, block by block

    @property
    def groups(self) -> int:
        return len(self.offsets) - 1


@torch.no_grad()
def grouped_layout(mask: torch.Tensor, groups: int) -> GroupedLayout | None:
    """The grouped layout of ``mask`` (R, C) if row r uses only inputs that no row of another
    child ``r' % groups ≠ r % groups`` uses, else None (then only the padded-rows layout fits)."""
    r, c = mask.shape
    if groups < 2 or r % groups:
        return None
    hits = (mask != 0).view(r // groups, groups, c).any(0)  # (groups, C): which children use input c
    if bool((hits.sum(0) > 1).any()):
        return None
    parts = [hits[k].nonzero().flatten() for k in range(groups)]
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    rows = torch.arange(r // groups, device=mask.device) * groups  # neuron i's child 0
    index = torch.cat([((rows + k)[:, None] * c + part[None, :]).flatten() for k, part in enumerate(parts)])
    return GroupedLayout(torch.cat(parts).to(torch.int32), tuple(offsets), (r, c), index)


def grouped_values(weight: torch.Tensor, mask: torch.Tensor, layout: GroupedLayout) -> list[torch.Tensor]:
    """The dense blocks W_k (R/groups, n_k) of ``weight ⊙ mask`` at group k's columns; differentiable in weight.

    One gather of the blocks' entries (only those are read; the gradient is one scatter into the weight)."""
    flat = weight.reshape(-1).index_select(0, layout.index) * mask.reshape(-1).index_select(0, layout.index)
    rows = layout.shape[0] // layout.groups
    sizes = [rows * (layout.offsets[k + 1] - layout.offsets[k]) for k in range(layout.groups)]
    return [block.view(rows, size // rows if rows else 0) for block, size in zip(flat.split(sizes), sizes)]


def grouped_forward(x: torch.Tensor, blocks: list[torch.Tensor], layout: GroupedLayout) -> torch.Tensor:
    """y = x Wᵀ from the grouped blocks: x (…, C) -> (…, R); one gather of x, then one dense product a group."""
    r, c = layout.shape
    g = layout.groups
    lead = x.shape[:-1]
    xs = x.reshape(-1, c).index_select(1, layout.perm)  # (M, C'): x's used columns, group by group
    parts = [xs[:, layout.offsets[k]:layout.offsets[k + 1]] @ blocks[k].t() for k in range(g)]  # each (M, R/g)
    return torch.stack(parts, dim=-1).reshape(*lead, r)  # child k of neuron i is output i·g + k


def cached_grouped_layout(mask: torch.Tensor, groups: int) -> GroupedLayout | None:
    """``grouped_layout(mask, groups)``, kept on the mask tensor while it is unchanged."""
    return _kept_on(mask, "_nas_grouped_layout", lambda: grouped_layout(mask, groups), groups)


def masked_linear_reference(x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """y = x (weight ⊙ mask)ᵀ, the masked dense product (FPEPair's CPU path)."""
    return x @ (weight * mask).t()


def masked_linear(x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor, groups: int | None = None
                  ) -> torch.Tensor:
    """y = x (weight ⊙ mask)ᵀ: x (…, C), weight and mask (R, C) -> (…, R), gradients for x and weight.

    On the kernel's path (``NAS_KERNELS=triton``; ``auto`` takes the reference) only the non-zeros are
    read: where ``groups`` is given and the mask has that block structure
    (FPE's feature and groups splits, ``grouped_layout``) as ``groups`` dense products
    after one permutation of x's columns, else by the padded-rows Triton
    kernels (the module's docstring). Elsewhere ``masked_linear_reference``.
    """
    if backend(x, weight, mask, auto=False) == "triton":  # auto: the reference (faster on an H200; kernels.txt)
        from nas.kernels._fpe_triton import EllLinearFunction

        grouped = cached_grouped_layout(mask, groups) if groups else None
        if grouped is not None:
            return grouped_forward(x, grouped_values(weight, mask, grouped), grouped)
        layout = cached_layout(mask)
        return EllLinearFunction.apply(x, ell_values(weight, layout), layout)
    return masked_linear_reference(x, weight, mask)
