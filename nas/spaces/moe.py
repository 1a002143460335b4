"""Mixture-of-experts bottlenecks: E copies of the block's ``W2 act(W1 ·)`` behind a light router."""

from __future__ import annotations

import torch
from torch import nn

from nas.kernels import backend
from nas.kernels.moe import grouped_matmul
from nas.spaces.base import Cost, Linear, cost_of

BALANCE_COEF = 0.01  # weight of the load-balancing loss (Switch Transformer's α)


class DenseExpert(nn.Module):
    """W2 act(W1 x): the block's plain dense pair, (N, d_z) -> (N, d_h) -> (N, d_z), no biases."""

    def __init__(self, d_z: int, d_h: int, act):
        super().__init__()
        self.w1 = Linear(d_z, d_h)
        self.act = act(d_h)
        self.w2 = Linear(d_h, d_z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_z)
        return self.w2(self.act(self.w1(x)))

    def nas_cost(self, dtype_bytes: int) -> Cost:
        return self.w1.nas_cost(dtype_bytes) + cost_of(self.act, dtype_bytes) + self.w2.nas_cost(dtype_bytes)


class MixtureOfExperts(nn.Module):
    """y = Σ_{e ∈ top-k(x)} g_e(x) · expert_e(x), (N, d_z) -> (N, d_z).

    Router: p = softmax(x R), R a bias-free Linear(d_z, E) (computed in
    float32). Each sample goes to the k experts of largest p; its gates are
    those probabilities renormalised over the chosen k, g_e = p_e / Σ_chosen p.
    With k = 1 that would always be 1 and give the router no gradient from the
    task, so top-1 uses the raw probability g_e = p_e instead (as the Switch
    Transformer does). The E experts are made by ``expert()``: a
    ``DenseExpert`` or an FPE pair.

    Tokens are grouped by expert (sorted, then ``index_select``), each expert
    runs once on its own group, and the weighted outputs are summed back
    (``index_put_`` with ``accumulate``: an index-add that, on a busy CPU,
    does not stall like ``index_add``'s multithreaded scatter): the cost is
    k expert passes per sample, not E.
    """

    def __init__(self, d_z: int, experts: int, top_k: int, expert):
        super().__init__()
        if experts < 1 or top_k < 1:
            raise ValueError(f"a mixture of experts needs experts >= 1 and top_k >= 1, not {experts} and {top_k}")
        self.num_experts, self.top_k = experts, min(top_k, experts)
        self.router = Linear(d_z, experts)
        self.experts = nn.ModuleList(expert() for _ in range(experts))

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router probabilities (N, E) float32, chosen experts (N, k) and their gates (N, k) float32."""
        probs = self.router(x).float().softmax(dim=-1)  # (N, E)
        top, chosen = probs.topk(self.top_k, dim=-1)  # (N, k), (N, k)
        gates = top if self.top_k == 1 else top / top.sum(dim=-1, keepdim=True)
        return probs, chosen, gates

    def group(self, x: torch.Tensor, chosen: torch.Tensor, gates: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The N·k assignments grouped by expert: their samples (N·k,), gates (N·k,) in x's dtype, and
        how many each expert has (E,)."""
        expert_of = chosen.reshape(-1)  # (N·k,) the expert of each assignment
        order = expert_of.argsort(stable=True)  # assignments grouped by expert
        token_of = torch.arange(x.shape[0], device=x.device).repeat_interleave(self.top_k)[order]  # (N·k,)
        gate_of = gates.reshape(-1)[order].to(x.dtype)  # (N·k,)
        counts = torch.bincount(expert_of, minlength=self.num_experts)  # (E,)
        return token_of, gate_of, counts

    def run_experts(self, x: torch.Tensor, token_of: torch.Tensor, gate_of: torch.Tensor,
                    counts: torch.Tensor) -> torch.Tensor:
        """Each expert on its group, its gated outputs added back into (N, d_z), in expert order."""
        out = torch.zeros_like(x)
        start = 0
        for expert, count in zip(self.experts, counts.tolist()):
            if count:
                tokens = token_of[start : start + count]  # (count,)
                y = expert(x.index_select(0, tokens)) * gate_of[start : start + count, None]  # (count, d_z)
                out.index_put_((tokens,), y, accumulate=True)  # (count, d_z) added into (N, d_z)
            start += count
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_z)
        probs, chosen, gates = self.route(x)
        return self.run_experts(x, *self.group(x, chosen, gates))

    def nas_cost(self, dtype_bytes: int) -> Cost:
        """Params: router + all E experts. Bytes moved: router + only the k experts a sample uses.

        The experts are alike; the k most expensive ones are counted.
        """
        router = self.router.nas_cost(dtype_bytes)
        costs = [cost_of(e, dtype_bytes) for e in self.experts]
        k = self.top_k
        weight_bytes = sum(sorted((c.weight_bytes for c in costs), reverse=True)[:k])
        act_bytes = sum(sorted((c.act_bytes for c in costs), reverse=True)[:k])
        return router + Cost(params=sum(c.params for c in costs), weight_bytes=weight_bytes, act_bytes=act_bytes)


class NasMixtureOfExperts(MixtureOfExperts):
    """nas's mixture of experts: the load-balancing loss in training, the grouped kernel on CUDA.

    Where the Triton kernels run (``nas.kernels.backend``) and the experts
    are dense, all groups go through one grouped product per layer
    (``_grouped_dense``, ``nas.kernels.moe``) instead of one pass per expert.

    In training mode the forward pass leaves the weighted Switch-Transformer
    load-balancing loss in ``nas_aux_loss``:
    ``0.01 · E · Σ_i f_i · P_i``, f_i the fraction of the N·k routed
    assignments that went to expert i, P_i the mean router probability of i.
    It is 0.01 when the router's probabilities are uniform and grows as the
    routing concentrates. In eval mode ``nas_aux_loss`` is None.
    """

    def __init__(self, d_z: int, experts: int, top_k: int, expert):
        super().__init__(d_z, experts, top_k, expert)
        self.nas_aux_loss: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, d_z) -> (N, d_z)
        probs, chosen, gates = self.route(x)
        token_of, gate_of, counts = self.group(x, chosen, gates)
        if backend(x) == "triton" and all(isinstance(e, DenseExpert) for e in self.experts):
            out = torch.zeros_like(x)
            y = self._grouped_dense(x.index_select(0, token_of), counts.tolist()) * gate_of[:, None]  # (N·k, d_z)
            out.index_put_((token_of,), y, accumulate=True)
        else:
            out = self.run_experts(x, token_of, gate_of, counts)
        if self.training:
            f = counts.float() / (x.shape[0] * self.top_k)  # (E,) fraction of assignments
            p = probs.mean(dim=0)  # (E,) mean router probability
            self.nas_aux_loss = BALANCE_COEF * self.num_experts * (f * p).sum()
        else:
            self.nas_aux_loss = None
        return out

    def _grouped_dense(self, xs: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """All dense experts in two grouped products (``nas.kernels.moe``): xs (N·k, d_z) grouped by expert -> (N·k, d_z).

        The experts' weights are stacked per call, (E, d_h, d_z) and (E, d_z, d_h);
        a parameter-free activation runs once on all rows, a learnable one per segment.
        """
        h = grouped_matmul(xs, torch.stack([e.w1.weight for e in self.experts]), counts)  # (N·k, d_h)
        if any(True for _ in self.experts[0].act.parameters()):
            h = torch.cat([e.act(part) for e, part in zip(self.experts, h.split(counts))])
        else:
            h = self.experts[0].act(h)
        return grouped_matmul(h, torch.stack([e.w2.weight for e in self.experts]), counts)
