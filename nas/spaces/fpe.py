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
3. W2's column i is copied to each of the α children (a bias of W1, where the
   pair has one, is copied too: each child keeps its parent's bias);
4. weights are pruned (their mask entries zeroed) until the total non-zero
   count is the dense one, ``d_h·(d_z + d_out)`` (``2·d_z·d_h`` in a residual
   block), by the rule of ``prune_masks``.

Right after step 2 the children's pre-activations, summed per parent, equal
the parent's dense pre-activation. The expanded pair does not compute the
dense function: each child's activation sees only its part of the sum, and
the copied output columns add ``act`` of the parts, not ``act`` of the sum.

The prune (step 4). The paper prunes the smallest magnitudes of both layers
together; its network has one hidden layer and a small output, so nearly
all that goes is W1's, a little of it. Inside a residual block d_out = d_z:
(α−1)·d_h·d_z copied weights must go, and one joint ranking of raw
magnitudes (W1's fan-in is d_z, W2's d_h, so W1's weights are the smaller)
takes them from W1 and empties it from α = 4 on. nas ranks every weight by
its magnitude relative to its own matrix's scale (``|w| / mean |w|`` over
the matrix's candidates), so each matrix loses about the same fraction, and
first reserves for every child its largest weight in W1 (within its part)
and its largest weight in W2 (its column's largest entry), so no child, and
no layer, is ever emptied. Plain ``prune only W2's copies`` would not do: a
small output's copies tie, and a tie drops every child of a neuron at once.
On the paper's network (a small output) the reservation keeps W2 whole and
the rule prunes W1's smallest weights, as the joint prune does there.

The masks are fixed persistent buffers: the forward pass uses
``weight ⊙ mask``, so masked entries get no gradient, and they travel with
the state dict. Splits (every child gets at least one input of its parent,
see ``fill_empty_children``):

- ``random``: for every neuron a random permutation of its inputs (torch's
  global RNG) dealt to the children in turn, so each child gets ⌊d_z/α⌋ or
  ⌈d_z/α⌉ of them;
- ``feature``: inputs that belong together, the same grouping for every
  neuron: k-means (α clusters, scikit-learn, seeded) on the unit-normalised
  columns of the trained W1, i.e. on the cosine similarity W1ᵀW1 of the inputs;
- ``groups``: the dataset's own grouping of its features (``feature_groups``,
  one group id per input feature, -1 for none; the ``sat`` task's clauses),
  the same for every neuron, dealt by ``deal_groups``. Usable only where W1
  sees the raw features (``lift: none``, no mixer).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.kernels.fpe import masked_linear, masked_linear_reference
from nas.spaces.activations import neuron_scope
from nas.spaces.arch import FPE_SPLITS
from nas.spaces.base import ACTIVATIONS, Cost, cost_of

SPLITS = FPE_SPLITS  # declared with the fpe_split field (nas.spaces.arch)
SHARED_SPLITS = ("feature", "groups")  # one grouping of the inputs for every neuron


class MaskedPair(nn.Module):
    """``W2 act(W1 x [+ b1])`` with fixed 0/1 masks on both weights: an FPE pair as deployed, expanded.

    x (N, d_z) -> (N, α·d_h) -> (N, d_out), no biases unless ``bias``. Every
    hidden neuron of the dense pair has α children, rows ``i·α + k`` of
    ``w1`` (α·d_h, d_z) and columns of ``w2`` (d_out, α·d_h); the layers use
    ``w1 ⊙ mask1`` and ``w2 ⊙ mask2``, masks that training fixed, keeping as
    many non-zero weights as the dense pair (``FPEPair`` trains it). ``act``
    is a factory of a width; ``d_out`` defaults to d_z (a residual block).
    """

    def __init__(self, d_z: int, d_h: int, alpha: int, act, d_out: int | None = None, bias: bool = False):
        super().__init__()
        wide, d_out = alpha * d_h, d_z if d_out is None else d_out
        self.w1 = nn.Parameter(torch.empty(wide, d_z))  # W1 (α·d_h, d_z)
        self.act = act(wide)
        self.w2 = nn.Parameter(torch.empty(d_out, wide))  # W2 (d_out, α·d_h)
        self.b1 = nn.Parameter(torch.zeros(wide)) if bias else None
        self.register_buffer("mask1", torch.ones(wide, d_z))  # 0/1, W1's shape
        self.register_buffer("mask2", torch.ones(d_out, wide))  # 0/1, W2's shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_out)
        pre = masked_linear_reference(x, self.w1, self.mask1)  # (N, α·d_h)
        if self.b1 is not None:
            pre = pre + self.b1
        return masked_linear_reference(self.act(pre), self.w2, self.mask2)  # (N, d_out)


class FPEPair(MaskedPair):
    """``W2 act(W1 x [+ b1])``, x (N, d_z) -> (N, d_out), expanded by FPE once ``at`` of the epochs are done.

    nas's training form of ``MaskedPair``: dense first, expanded once, and on
    CUDA the sparse kernels (``nas.kernels.fpe``) where ``NAS_KERNELS`` asks.

    Dense: ``w1`` (d_h, d_z), ``w2`` (d_out, d_h), ``act`` built for width d_h,
    and with ``bias=True`` a bias ``b1`` (d_h,) of the hidden layer (nas's own
    blocks have none; the FPE paper's network has one). Expanded: ``w1``
    (α·d_h, d_z) with the buffer ``mask1``, ``w2`` (d_out, α·d_h) with
    ``mask2`` (0/1, same dtype as the weights), ``b1`` (α·d_h,), ``act``
    built for width α·d_h. ``d_out`` defaults to d_z (a residual block).
    ``feature_groups``: the ``groups`` split's group id of every input
    (d_z,), -1 for none; it may also be set later, before the expansion.

    ``expanded=True`` builds the deployed structure directly, the one a
    trained state dict loads into: on the meta device only the shapes; on a
    real device a random split of the initial weights (``expand("random")``)
    until a state dict replaces the weights and masks.
    """

    def __init__(self, d_z: int, d_h: int, activation: str, alpha: int, split: str = "random", at: float = 0.5,
                 expanded: bool = False, d_out: int | None = None, bias: bool = False,
                 feature_groups: torch.Tensor | None = None, per_neuron: bool = False):
        if not (isinstance(alpha, int) and alpha >= 1):
            raise ValueError(f"FPE alpha must be an integer ≥ 1, found {alpha!r}")
        if split not in SPLITS:
            raise ValueError(f"unknown FPE split {split!r}; expected one of {', '.join(SPLITS)}")
        if not 0 <= at < 1:
            raise ValueError(f"FPE at must be the fraction of epochs trained dense, in [0, 1); found {at!r}")
        if d_z < 1 or d_h < 1 or (d_out is not None and d_out < 1):
            raise ValueError(f"FPE widths must be ≥ 1, found d_z={d_z}, d_h={d_h}, d_out={d_out}")
        if alpha > d_z:
            raise ValueError(f"FPE alpha ({alpha}) must be at most the input width d_z ({d_z}): every child keeps "
                             "at least one input of its parent")
        d_out = d_z if d_out is None else d_out
        if 2 * alpha > d_z + d_out:
            raise ValueError(f"FPE alpha ({alpha}) must be at most (d_z + d_out) / 2 = {(d_z + d_out) / 2:g}: "
                             "the prune keeps d_h·(d_z + d_out) weights, at least one per child in each layer")
        # dense to begin with: the pair with one child per neuron and no masks (until ``expand``); the same
        # initialisation, in the same order, as the dense block's Linear(d_z, d_h), act, Linear(d_h, d_out)
        super().__init__(d_z, d_h, 1, _activation_factory(activation, per_neuron), d_out, bias)
        del self.mask1, self.mask2
        self.d_z, self.d_h, self.d_out = d_z, d_h, d_out
        self.activation, self.alpha, self.split, self.at = activation, alpha, split, at
        self.per_neuron = per_neuron
        self.expanded = False
        self.feature_groups = feature_groups
        if self.w1.device.type != "meta":
            nn.init.kaiming_uniform_(self.w1, a=math.sqrt(5))
            nn.init.kaiming_uniform_(self.w2, a=math.sqrt(5))
        if expanded:
            if self.w1.device.type == "meta":
                wide = alpha * d_h
                self._install(torch.empty(wide, d_z, device="meta"), torch.empty(wide, d_z, device="meta"),
                              torch.empty(self.d_out, wide, device="meta"),
                              torch.empty(self.d_out, wide, device="meta"),
                              torch.empty(wide, device="meta") if bias else None)
            else:
                self.expand("random")

    @property
    def nnz(self) -> int:
        """Non-zero weights the pair keeps, dense or expanded: d_h·(d_z + d_out) (a bias not counted)."""
        return self.d_h * (self.d_z + self.d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_out)
        if self.expanded:  # x (W ⊙ M)ᵀ; on CUDA the sparse kernel reads only the non-zeros (nas.kernels.fpe)
            groups = self.alpha if self.split in SHARED_SPLITS else None  # W1 of a shared split: grouped products
            pre = masked_linear(x, self.w1, self.mask1, groups)
        else:
            pre = x @ self.w1.t()
        if self.b1 is not None:
            pre = pre + self.b1
        hidden = self.act(pre)
        return masked_linear(hidden, self.w2, self.mask2) if self.expanded else hidden @ self.w2.t()

    def nas_before_epoch(self, epoch: int, epochs: int) -> bool:
        """Expand before epoch ``expansion_epoch(at, epochs)`` (1-based); True then (the parameters are new)."""
        if self.expanded or self.alpha == 1 or epoch != expansion_epoch(self.at, epochs):
            return False
        self.expand()
        return True

    def assignment(self, split: str | None = None) -> torch.Tensor:
        """The child of every input: (d_h, d_z) for ``random``, (d_z,) for a shared split; values in [0, α)."""
        split = self.split if split is None else split
        d_h, d_z, alpha = self.d_h, self.d_z, self.alpha
        if split == "random":  # a random permutation of every neuron's inputs, dealt to the children in turn
            order = torch.rand(d_h, d_z).argsort(dim=1)
            assign = torch.empty(d_h, d_z, dtype=torch.long)
            assign.scatter_(1, order, (torch.arange(d_z) % alpha).expand(d_h, d_z).contiguous())
            return assign.to(self.w1.device)
        if split == "feature":
            from sklearn.cluster import KMeans

            cols = self.w1.detach().float().cpu().t()  # (d_z, d_h): one row per input feature
            cols = cols / cols.norm(dim=1, keepdim=True).clamp_min(1e-12)
            labels = KMeans(n_clusters=alpha, n_init=10, random_state=0).fit_predict(cols.double().numpy())
            return torch.as_tensor(labels, dtype=torch.long, device=self.w1.device)
        if split == "groups":
            if self.feature_groups is None:
                raise ValueError("the FPE groups split needs the dataset's feature groups (feature_groups), "
                                 "and none were given to this pair")
            return deal_groups(self.feature_groups, alpha).to(self.w1.device)
        raise ValueError(f"unknown FPE split {split!r}; expected one of {', '.join(SPLITS)}")

    @torch.no_grad()
    def expand(self, split: str | torch.Tensor | None = None, prune: bool = True) -> None:
        """Expand the dense pair (the module's docstring, steps 1-4).

        ``split``: a split's name (default: the pair's own), or an explicit
        assignment, a (d_h, d_z) or (d_z,) integer tensor giving the child in
        [0, α) of every input (of every neuron, or of all neurons); a child
        left without inputs gets one (``fill_empty_children``).
        ``prune=False`` stops after step 3 (the children's pre-activations then
        sum to the dense ones); a training run always prunes.
        """
        if self.expanded:
            raise RuntimeError("this FPE pair is already expanded")
        self.dense_interference = interference(self.w1)  # the trained dense layer's, for the record
        d_h, d_z, alpha = self.d_h, self.d_z, self.alpha
        assign = split if isinstance(split, torch.Tensor) else self.assignment(split)
        assign = assign.to(self.w1.device, torch.long)
        if assign.shape not in ((d_z,), (d_h, d_z)) or (
                assign.numel() and not (0 <= int(assign.min()) and int(assign.max()) < alpha)):
            raise ValueError(f"an FPE assignment must be a (d_h, d_z) = ({d_h}, {d_z}) or ({d_z},) integer tensor "
                             f"with values in [0, {alpha}); found shape {tuple(assign.shape)}")
        assign = fill_empty_children(assign, alpha)
        if assign.shape == (d_z,):
            assign = assign.unsqueeze(0).expand(d_h, d_z)
        children = torch.arange(alpha, device=assign.device)
        # mask1[i·α + k, j] = 1 iff input j of neuron i goes to child k
        mask1 = (assign.unsqueeze(1) == children.view(1, alpha, 1)).reshape(alpha * d_h, d_z).to(self.w1.dtype)
        w1 = self.w1.repeat_interleave(alpha, dim=0) * mask1  # (α·d_h, d_z)
        w2 = self.w2.repeat_interleave(alpha, dim=1)  # (d_out, α·d_h): column i copied to its α children
        mask2 = torch.ones_like(w2)
        if prune:
            mask1, mask2 = prune_masks(w1, mask1, w2, mask2, self.nnz)
        b1 = self.b1.repeat_interleave(alpha) if self.b1 is not None else None
        self._install(w1 * mask1, mask1, w2 * mask2, mask2, b1)

    def nas_interference(self) -> dict[str, float]:
        """``interference`` of W1 when the pair expanded (``capacity_dense``, ``abs_cos_dense``) and of the
        expanded W1 ⊙ mask1 now (``capacity``, ``abs_cos``); {} before the expansion (or after a state dict
        loaded into an expanded pair that never trained dense here)."""
        dense = getattr(self, "dense_interference", None)
        if not self.expanded or dense is None:
            return {}
        now = interference(self.w1 * self.mask1)
        return {"capacity_dense": dense["capacity"], "abs_cos_dense": dense["abs_cos"], **now}

    def _install(self, w1: torch.Tensor, mask1: torch.Tensor, w2: torch.Tensor, mask2: torch.Tensor,
                 b1: torch.Tensor | None = None) -> None:
        """Replace the dense weights and activation by the expanded ones (new Parameters: a new optimizer)."""
        self.w1 = nn.Parameter(w1.contiguous())
        self.w2 = nn.Parameter(w2.contiguous())
        if b1 is not None:
            self.b1 = nn.Parameter(b1.contiguous())
        self.register_buffer("mask1", mask1.contiguous())
        self.register_buffer("mask2", mask2.contiguous())
        old = self.act
        if any(True for _ in old.parameters()) or any(True for _ in old.buffers()):
            self.act = _widen_activation(old, _activation_factory(self.activation, self.per_neuron), self.d_h,
                                         self.alpha).to(w1.device)
        self.expanded = True

    def nas_cost(self, dtype_bytes: int) -> Cost:
        """The deployed (expanded) pair's cost, from the widths alone (works on the meta device).

        params: the d_h·(d_z + d_out) non-zeros, plus the α·d_h biases where
        the pair has them, plus the activation's own parameters at width
        α·d_h. weight_bytes: those params × dtype_bytes plus a CSR layout's
        indices: one column index per non-zero (2 bytes if the indexed
        dimension is at most 32,767, else 4; how the non-zeros fall between
        the two matrices depends on training, so when the two widths need
        different index sizes all are counted at the larger) and (rows + 1)
        × 4 bytes of row pointers per matrix, W1 with α·d_h rows and W2 with
        d_out rows. act_bytes: each layer reads its input and writes its
        output once, (d_z + α·d_h) and (α·d_h + d_out) × dtype_bytes.

        The same count for every split: it is exact for a CSR layout whatever
        training leaves in each matrix, which a static objective needs. (On
        CUDA a shared split's W1 runs as α dense blocks without indices,
        ``nas.kernels.fpe.grouped_layout``; what that moves depends on how the
        pruning shares the non-zeros between the two matrices.)
        """
        wide = self.alpha * self.d_h
        index = 4 if max(self.d_z, wide) > 32767 else 2  # the kernel's int16 column indices reach 32,767
        pointers = (wide + 1) * 4 + (self.d_out + 1) * 4
        biases = wide if self.b1 is not None else 0
        weight_bytes = self.nnz * (dtype_bytes + index) + biases * dtype_bytes + pointers
        if self.expanded:
            act = cost_of(self.act, dtype_bytes)
        else:
            with torch.device("meta"):
                act = cost_of(_activation_factory(self.activation, self.per_neuron)(wide), dtype_bytes)
        return act + Cost(
            params=self.nnz + biases,
            weight_bytes=weight_bytes,
            act_bytes=(self.d_z + wide + wide + self.d_out) * dtype_bytes,
        )

    def extra_repr(self) -> str:
        return (f"d_z={self.d_z}, d_h={self.d_h}, d_out={self.d_out}, alpha={self.alpha}, split={self.split}, "
                f"at={self.at}, bias={self.b1 is not None}, expanded={self.expanded}")


@torch.no_grad()
def interference(w1: torch.Tensor) -> dict[str, float]:
    """The FPE paper's interference measures of a first layer ``w1`` (hidden, inputs), its rows the hidden
    neurons' input weights and its columns w_i each input feature's embedding:

    - ``capacity``: feature capacity as Scherlis et al. (2022) define it, Σ_i C_i with
      C_i = (w_i·w_i)² / Σ_j (w_i·w_j)² (a feature with no weight counts 0): how many features the layer
      represents without interference, at most min(inputs, hidden);
    - ``abs_cos``: the mean |cos| between the input weights of two distinct hidden neurons (0: orthogonal).
    """
    w = w1.detach().double()
    gram = w.T @ w  # (inputs, inputs): G_ij = w_i·w_j
    denom = (gram ** 2).sum(dim=1)
    per_feature = torch.where(denom > 0, gram.diagonal() ** 2 / denom.clamp_min(1e-300), torch.zeros_like(denom))
    rows = w / w.norm(dim=1, keepdim=True).clamp_min(1e-300)
    cos = (rows @ rows.T).abs()
    n = len(rows)
    abs_cos = float((cos.sum() - cos.diagonal().sum()) / (n * (n - 1))) if n > 1 else 0.0
    return {"capacity": float(per_feature.sum()), "abs_cos": abs_cos}


def expansion_epoch(at: float, epochs: int) -> int:
    """The 1-based epoch before which an FPE pair trained for ``epochs`` expands: ``int(at·epochs) + 1``.

    The validation scores of earlier epochs are the dense network's.
    """
    return int(at * epochs) + 1


def deal_groups(feature_groups: torch.Tensor, alpha: int) -> torch.Tensor:
    """The child in [0, α) of every input feature, from its group id (d_z,) (-1: in no group).

    The groups, largest first (ties: the lower id), each go whole to the
    child with the fewest features so far (ties: the lower child); then the
    features in no group, one at a time in index order, the same way. A
    child that is still empty (fewer groups than α) gets a feature by
    ``fill_empty_children``. Deterministic.
    """
    ids = torch.as_tensor(feature_groups, dtype=torch.long).cpu()
    if ids.dim() != 1 or (ids.numel() and int(ids.min()) < -1):
        raise ValueError(f"feature groups must be a 1-D tensor of group ids ≥ 0 (-1: no group); found shape "
                         f"{tuple(ids.shape)}" + (f", minimum {int(ids.min())}" if ids.numel() else ""))
    out = torch.empty_like(ids)
    load = [0] * alpha
    groups, sizes = torch.unique(ids[ids >= 0], return_counts=True)
    for g, size in sorted(zip(groups.tolist(), sizes.tolist()), key=lambda t: (-t[1], t[0])):
        child = min(range(alpha), key=lambda k: (load[k], k))
        out[ids == g] = child
        load[child] += size
    for j in (ids < 0).nonzero().flatten().tolist():
        child = min(range(alpha), key=lambda k: (load[k], k))
        out[j] = child
        load[child] += 1
    return out


def fill_empty_children(assign: torch.Tensor, alpha: int) -> torch.Tensor:
    """``assign`` ((d_z,) or (d_h, d_z), values in [0, α)) with no empty child: a child without inputs takes
    the last input (highest index) of the child with the most (ties: the lower child), until none is empty.

    Needs d_z ≥ α. A random split never needs it; a k-means or a dataset's
    grouping with fewer than α non-empty groups does.
    """
    rows = assign.view(-1, assign.shape[-1]).clone()
    counts = torch.stack([(rows == k).sum(1) for k in range(alpha)], dim=1)  # (rows, α)
    for r in (counts == 0).any(1).nonzero().flatten().tolist():
        row, count = rows[r], counts[r]
        while bool((count == 0).any()):
            empty = int((count == 0).nonzero()[0])
            donor = int(count.argmax())  # argmax: the lowest child among the largest
            j = int((row == donor).nonzero().flatten()[-1])
            row[j] = empty
            count[donor] -= 1
            count[empty] += 1
    return rows.view_as(assign)


def prune_masks(w1: torch.Tensor, mask1: torch.Tensor, w2: torch.Tensor, mask2: torch.Tensor,
                keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks keeping ``keep`` weights of the expanded w1 (α·d_h, d_z) and w2 (d_out, α·d_h) (step 4).

    Every child row of w1 keeps its largest-magnitude unmasked weight and
    every child column of w2 its largest (the reservation: no child and no
    layer is emptied); the rest of ``keep`` goes to the largest scores
    ``|w| / mean |w|``, the mean over each matrix's unmasked entries (a
    matrix's magnitudes are scored against its own scale). Ties go to the
    lower position. Needs keep ≥ the number of rows of w1 plus the columns of w2.
    """
    rows, cols = w1.shape[0], w2.shape[1]
    if keep < rows + cols:
        raise ValueError(f"FPE prune: keeping {keep} weights cannot give each of the {rows} children a weight "
                         "in both matrices")

    def scored(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        mag = w.abs().float()
        live = m != 0
        scale = mag[live].mean().clamp_min(torch.finfo(torch.float32).tiny) if bool(live.any()) else 1.0
        return (mag / scale).masked_fill(~live, -1.0)  # masked entries below every live one

    s1, s2 = scored(w1, mask1), scored(w2, mask2)
    reserve1 = torch.zeros_like(s1, dtype=torch.bool)
    reserve1[torch.arange(rows), s1.argmax(dim=1)] = True  # each child's largest weight in W1 (live: its part)
    reserve2 = torch.zeros_like(s2, dtype=torch.bool)
    reserve2[s2.argmax(dim=0), torch.arange(cols)] = True  # and in W2
    score = torch.cat([s1.flatten(), s2.flatten()])
    reserved = torch.cat([reserve1.flatten(), reserve2.flatten()])
    score = torch.where(reserved, torch.full_like(score, math.inf), score)
    kept = torch.zeros_like(score)
    kept[torch.sort(score, descending=True, stable=True).indices[:keep]] = 1.0  # stable: ties to the lower position
    n1 = w1.numel()
    return kept[:n1].view_as(w1).to(mask1.dtype), kept[n1:].view_as(w2).to(mask2.dtype)


def _activation_factory(name: str, per_neuron: bool = False):
    """The width -> module factory of the activation ``name``, with one parameter set per unit if ``per_neuron``."""
    return neuron_scope(ACTIVATIONS.get(name)) if per_neuron else ACTIVATIONS.get(name)


def _widen_activation(old: nn.Module, factory, d_h: int, alpha: int) -> nn.Module:
    """A new activation from ``factory`` for width α·d_h whose children inherit their parent's state.

    A tensor of the same shape at both widths (shared by all neurons) is
    copied; one with a dimension of size d_h that becomes α·d_h (per neuron)
    is repeated child by child (``repeat_interleave``, children ``i·α + k``);
    any other keeps the new activation's initialisation.
    """
    new = factory(alpha * d_h)
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
