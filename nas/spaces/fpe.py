"""Fixed Parameter Expansion (FPE) of a block's hidden layer (arXiv 2510.04500).

``FPEPair`` is the pair ``W2 act(W1 x)`` (no biases) that trains dense for the
first ``at`` of its epochs and is then expanded, once, into α times as many
hidden neurons with fixed sparse masks and the same number of non-zero
weights. The procedure (``FPEPair.expand``), for a trained pair with
W1 (d_h, d_z) and W2 (d_out, d_h):

1. every hidden neuron i gets α children, rows ``i·α + k`` (k = 0..α-1);
2. the inputs of neuron i are partitioned among its children: disjoint 0/1
   masks m_{i,0..α-1} over the d_z inputs that sum to all-ones; child k keeps
   ``W1[i] ⊙ m_{i,k}``, so W1's non-zero count is unchanged;
3. W2's column i is copied to each of the α children;
4. the smallest-magnitude weights of both layers together are pruned (their
   mask entries zeroed) until the total non-zero count is the dense one,
   ``d_h·(d_z + d_out)`` (``2·d_z·d_h`` in a residual block).

Right after step 2 the children's pre-activations, summed per parent, equal
the parent's dense pre-activation. The expanded pair does not compute the
dense function: each child's activation sees only its part of the sum, and
the copied output columns add ``act`` of the parts, not ``act`` of the sum.

The masks are fixed persistent buffers: the forward pass uses
``weight ⊙ mask``, so masked entries get no gradient, and they travel with
the state dict. Splits: ``random`` assigns every input of every neuron to a
uniformly random child (torch's global RNG); ``feature`` groups the inputs
that belong together, the same grouping for every neuron: k-means (α
clusters, scikit-learn, seeded) on the unit-normalised columns of the
trained W1, i.e. on the cosine similarity W1ᵀW1 of the inputs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.kernels.fpe import masked_linear
from nas.spaces.blocks import ACTIVATIONS, Cost, _cost_of

SPLITS = ("random", "feature")


class FPEPair(nn.Module):
    """``W2 act(W1 x)``, x (N, d_z) -> (N, d_out), expanded by FPE once ``at`` of the epochs are done.

    Dense: ``w1`` (d_h, d_z), ``w2`` (d_out, d_h), ``act`` built for width d_h.
    Expanded: ``w1`` (α·d_h, d_z) with the buffer ``mask1``, ``w2``
    (d_out, α·d_h) with ``mask2`` (0/1, same dtype as the weights),
    ``act`` built for width α·d_h. ``d_out`` defaults to d_z (a residual block).

    ``expanded=True`` builds the deployed structure directly, the one a
    trained state dict loads into: on the meta device only the shapes; on a
    real device a random split of the initial weights (``expand("random")``)
    until a state dict replaces the weights and masks.
    """

    def __init__(self, d_z: int, d_h: int, activation: str, alpha: int, split: str = "random", at: float = 0.5,
                 expanded: bool = False, d_out: int | None = None):
        super().__init__()
        if not (isinstance(alpha, int) and alpha >= 1):
            raise ValueError(f"FPE alpha must be an integer ≥ 1, found {alpha!r}")
        if split not in SPLITS:
            raise ValueError(f"unknown FPE split {split!r}; expected one of {', '.join(SPLITS)}")
        if not 0 <= at < 1:
            raise ValueError(f"FPE at must be the fraction of epochs trained dense, in [0, 1); found {at!r}")
        if d_z < 1 or d_h < 1 or (d_out is not None and d_out < 1):
            raise ValueError(f"FPE widths must be ≥ 1, found d_z={d_z}, d_h={d_h}, d_out={d_out}")
        self.d_z, self.d_h, self.d_out = d_z, d_h, d_z if d_out is None else d_out
        self.activation, self.alpha, self.split, self.at = activation, alpha, split, at
        self.expanded = False
        # the same initialisation, in the same order, as the dense block's Linear(d_z, d_h), act, Linear(d_h, d_out)
        self.w1 = nn.Parameter(torch.empty(d_h, d_z))
        self.act = ACTIVATIONS.get(activation)(d_h)
        self.w2 = nn.Parameter(torch.empty(self.d_out, d_h))
        if self.w1.device.type != "meta":
            nn.init.kaiming_uniform_(self.w1, a=math.sqrt(5))
            nn.init.kaiming_uniform_(self.w2, a=math.sqrt(5))
        if expanded:
            if self.w1.device.type == "meta":
                self._install(torch.empty(alpha * d_h, d_z, device="meta"), torch.empty(alpha * d_h, d_z, device="meta"),
                              torch.empty(self.d_out, alpha * d_h, device="meta"),
                              torch.empty(self.d_out, alpha * d_h, device="meta"))
            else:
                self.expand("random")

    @property
    def nnz(self) -> int:
        """Non-zero weights the pair keeps, dense or expanded: d_h·(d_z + d_out)."""
        return self.d_h * (self.d_z + self.d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_out)
        if self.expanded:  # x (W ⊙ M)ᵀ; on CUDA the sparse kernel reads only the non-zeros (nas.kernels.fpe)
            groups = self.alpha if self.split == "feature" else None  # W1 of a feature split: grouped products
            return masked_linear(self.act(masked_linear(x, self.w1, self.mask1, groups)), self.w2, self.mask2)
        return self.act(x @ self.w1.t()) @ self.w2.t()

    def nas_before_epoch(self, epoch: int, epochs: int) -> bool:
        """Expand before epoch ``int(at·epochs) + 1`` (1-based); True then (the parameters are new)."""
        if self.expanded or self.alpha == 1 or epoch != int(self.at * epochs) + 1:
            return False
        self.expand()
        return True

    def assignment(self, split: str | None = None) -> torch.Tensor:
        """The child of every input of every neuron: (d_h, d_z) integers in [0, α), for ``split`` (default: own)."""
        split = self.split if split is None else split
        d_h, d_z, alpha = self.d_h, self.d_z, self.alpha
        if split == "random":
            return torch.randint(alpha, (d_h, d_z)).to(self.w1.device)
        if split == "feature":
            from sklearn.cluster import KMeans

            cols = self.w1.detach().float().cpu().t()  # (d_z, d_h): one row per input feature
            cols = cols / cols.norm(dim=1, keepdim=True).clamp_min(1e-12)
            k = min(alpha, d_z)
            labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(cols.double().numpy())
            groups = torch.as_tensor(labels, dtype=torch.long, device=self.w1.device)
            return groups.unsqueeze(0).expand(d_h, d_z).contiguous()
        raise ValueError(f"unknown FPE split {split!r}; expected one of {', '.join(SPLITS)}")

    @torch.no_grad()
    def expand(self, split: str | torch.Tensor | None = None, prune: bool = True) -> None:
        """Expand the dense pair (the module's docstring, steps 1-4).

        ``split``: ``random`` or ``feature`` (default: the pair's own), or an
        explicit assignment, a (d_h, d_z) or (d_z,) integer tensor giving the
        child in [0, α) of every input (of every neuron, or of all neurons).
        ``prune=False`` stops after step 3 (the children's pre-activations then
        sum to the dense ones); a training run always prunes.
        """
        if self.expanded:
            raise RuntimeError("this FPE pair is already expanded")
        d_h, d_z, alpha = self.d_h, self.d_z, self.alpha
        assign = split if isinstance(split, torch.Tensor) else self.assignment(split)
        assign = assign.to(self.w1.device, torch.long)
        if assign.shape == (d_z,):
            assign = assign.unsqueeze(0).expand(d_h, d_z)
        if assign.shape != (d_h, d_z) or (assign.numel() and not (0 <= int(assign.min()) and int(assign.max()) < alpha)):
            raise ValueError(f"an FPE assignment must be a (d_h, d_z) = ({d_h}, {d_z}) or ({d_z},) integer tensor "
                             f"with values in [0, {alpha}); found shape {tuple(assign.shape)}")
        children = torch.arange(alpha, device=assign.device)
        # mask1[i·α + k, j] = 1 iff input j of neuron i goes to child k
        mask1 = (assign.unsqueeze(1) == children.view(1, alpha, 1)).reshape(alpha * d_h, d_z).to(self.w1.dtype)
        w1 = self.w1.repeat_interleave(alpha, dim=0) * mask1  # (α·d_h, d_z)
        w2 = self.w2.repeat_interleave(alpha, dim=1)  # (d_out, α·d_h): column i copied to its α children
        mask2 = torch.ones_like(w2)
        if prune:
            mask1, mask2 = _prune_jointly(w1, mask1, w2, mask2, self.nnz)
        self._install(w1 * mask1, mask1, w2 * mask2, mask2)

    def _install(self, w1: torch.Tensor, mask1: torch.Tensor, w2: torch.Tensor, mask2: torch.Tensor) -> None:
        """Replace the dense weights and activation by the expanded ones (new Parameters: a new optimizer)."""
        self.w1 = nn.Parameter(w1.contiguous())
        self.w2 = nn.Parameter(w2.contiguous())
        self.register_buffer("mask1", mask1.contiguous())
        self.register_buffer("mask2", mask2.contiguous())
        old = self.act
        if any(True for _ in old.parameters()) or any(True for _ in old.buffers()):
            self.act = _widen_activation(old, self.activation, self.d_h, self.alpha).to(w1.device)
        self.expanded = True

    def nas_cost(self, dtype_bytes: int) -> Cost:
        """The deployed (expanded) pair's cost, from the widths alone (works on the meta device).

        params: the d_h·(d_z + d_out) non-zeros, plus the activation's own
        parameters at width α·d_h. weight_bytes: the non-zeros × dtype_bytes
        plus a CSR layout's indices: one column index per non-zero (2 bytes
        if the indexed dimension is at most 32,767, else 4; how the non-zeros
        fall between the two matrices depends on training, so when the two
        widths need different index sizes all are counted at the larger) and
        (rows + 1) × 4 bytes of row pointers per matrix, W1 with α·d_h rows
        and W2 with d_out rows. act_bytes: each layer reads its input and
        writes its output once, (d_z + α·d_h) and (α·d_h + d_out) × dtype_bytes.

        The same count for both splits: it is exact for a CSR layout whatever
        training leaves in each matrix, which a static objective needs. (On
        CUDA a ``feature`` split's W1 runs as α dense blocks without indices,
        ``nas.kernels.fpe.grouped_layout``; what that moves depends on how the
        pruning shares the non-zeros between the two matrices.)
        """
        wide = self.alpha * self.d_h
        index = 4 if max(self.d_z, wide) > 32767 else 2  # the kernel's int16 column indices reach 32,767
        pointers = (wide + 1) * 4 + (self.d_out + 1) * 4
        weight_bytes = self.nnz * (dtype_bytes + index) + pointers
        if self.expanded:
            act = _cost_of(self.act, dtype_bytes)
        else:
            with torch.device("meta"):
                act = _cost_of(ACTIVATIONS.get(self.activation)(wide), dtype_bytes)
        return act + Cost(
            params=self.nnz,
            weight_bytes=weight_bytes,
            act_bytes=(self.d_z + wide + wide + self.d_out) * dtype_bytes,
        )

    def extra_repr(self) -> str:
        return (f"d_z={self.d_z}, d_h={self.d_h}, d_out={self.d_out}, alpha={self.alpha}, split={self.split}, "
                f"at={self.at}, expanded={self.expanded}")


def _prune_jointly(w1: torch.Tensor, mask1: torch.Tensor, w2: torch.Tensor, mask2: torch.Tensor,
                   keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks keeping the ``keep`` largest-magnitude unmasked weights of w1 and w2 together (step 4)."""
    score = torch.cat([w1.abs().masked_fill(mask1 == 0, -1.0).flatten(), w2.abs().masked_fill(mask2 == 0, -1.0).flatten()])
    kept = torch.zeros_like(score)
    kept[torch.topk(score, keep, sorted=False).indices] = 1.0
    n1 = w1.numel()
    return kept[:n1].view_as(w1), kept[n1:].view_as(w2)


def _widen_activation(old: nn.Module, name: str, d_h: int, alpha: int) -> nn.Module:
    """A new ``name`` activation for width α·d_h whose children inherit their parent's state.

    A tensor of the same shape at both widths (shared by all neurons) is
    copied; one with a dimension of size d_h that becomes α·d_h (per neuron)
    is repeated child by child (``repeat_interleave``, children ``i·α + k``);
    any other keeps the new activation's initialisation.
    """
    new = ACTIVATIONS.get(name)(alpha * d_h)
    old_state = old.state_dict()
    state = new.state_dict()
    for key, value in state.items():
        if key not in old_state:
            continue
        before = old_state[key]
        if before.shape == value.shape:
            state[key] = before.clone()
            continue
        dims = [d for d in range(value.dim()) if before.dim() == value.dim() and before.shape[d] != value.shape[d]]
        if len(dims) == 1 and before.shape[dims[0]] == d_h and value.shape[dims[0]] == alpha * d_h:
            state[key] = before.repeat_interleave(alpha, dim=dims[0])
    new.load_state_dict(state)
    return new
