"""The hooks a block may define for nas's own business: cost, training, pruning. One declaration, here.

A block is written once, as a portable class (``nas.exporter.portable`` copies it into an exported
model.py and cuts every member named ``nas_*``); what only nas needs it adds as the members declared by
``NasHooks``. A block implements the ones it needs, none of them is required, and nas calls them only
through ``each`` (the training loop, ``nas.evaluators.train``) or ``cost`` (the cost model), never by a
name of its own: a misspelt hook is an error, not a silent no-op.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol

from torch import nn


class NasHooks(Protocol):
    """The members nas calls on the modules of a model, when a module has them."""

    def nas_cost(self, dtype_bytes: int) -> "Cost":  # noqa: F821 (nas.spaces.base.Cost)
        """What the module keeps and moves for one sample's inference pass: stored parameters, weight bytes
        read once, activation bytes read and written (the model: ``nas.spaces.cost.model_cost``). A module
        with parameters must have it; an elementwise one without is fused into a neighbour (free)."""

    def nas_before_epoch(self, epoch: int, epochs: int) -> bool:
        """Called before every training epoch (``epoch`` counts from 1 of ``epochs``); True when the module
        changed its structure (an FPE pair expanding), so the optimizer is made again for the new parameters
        and only checkpoints of the final structure count."""

    nas_aux_loss: Any
    """A loss (a 0-d tensor, already weighted) that the last forward pass left here and training adds to the
    task's loss: a mixture of experts' load-balancing loss. None when there is none."""

    def nas_penalty(self) -> Any:
        """A penalty on the module's own parameters, a 0-d tensor added to every step's loss: the L1 penalty
        on the gates of gated connections (``DenseGates``)."""

    def nas_prune(self) -> int:
        """After training, on the best checkpoint, before it is scored and saved: remove what ended unused
        (gated connections whose gate is below threshold); returns what is kept."""

    def nas_interference(self) -> dict:
        """An FPE pair's interference measures (``nas.spaces.fpe.interference``) of its W1 when it expanded
        (``*_dense``) and now: what the evaluator stores per FPE candidate; {} before any expansion."""

    def nas_kept(self) -> int:
        """How many of the module's prunable parts are in use (the kept gated connections)."""

    def nas_exit_costs(self, dtype_bytes: int) -> list:
        """The cost (``Cost``) of a sample leaving at each head of a model with early exits, the final head
        last (the whole model): what ``nas.spaces.cost.exit_costs`` and ``bandwidth_expected`` read."""


HOOKS = tuple(name for name in (*NasHooks.__dict__, *NasHooks.__annotations__) if name.startswith("nas_"))


def each(model: nn.Module, hook: str) -> Iterator[tuple[nn.Module, Any]]:
    """(module, its ``hook`` member) for every module of ``model`` that has it (a method bound, an attribute's
    value), in ``model.modules()`` order; ValueError for a name ``NasHooks`` does not declare."""
    if hook not in HOOKS:
        raise ValueError(f"{hook!r} is not a nas hook; NasHooks declares {', '.join(HOOKS)}")
    for module in list(model.modules()):
        member = getattr(module, hook, None)
        if member is not None:
            yield module, member


def has(module: nn.Module, hook: str) -> bool:
    """Whether ``module`` itself defines ``hook`` (a name ``NasHooks`` declares)."""
    if hook not in HOOKS:
        raise ValueError(f"{hook!r} is not a nas hook; NasHooks declares {', '.join(HOOKS)}")
    return getattr(module, hook, None) is not None
