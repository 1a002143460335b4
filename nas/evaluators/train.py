"""Train one candidate and measure its objectives."""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nas.evaluators.datasets import Task
from nas.evaluators.names import EVALUATOR_VERSION, TEST_PREFIX  # noqa: F401 (EVALUATOR_VERSION: re-exported)
from nas.spaces import ArchSpec, TrainSpec, bandwidth_bytes, build, exit_costs, expected_bytes, model_cost
from nas.spaces import hooks
from nas.spaces.blocks import DenseGates
from nas.spaces.schema import IMAGE_KINDS

MSE_FLOOR = 1e-10  # a batch's MSE below this counts as this: PSNR is capped at 100 dB
PSNR_BATCH = 128  # the hourglass paper's evaluation batch: PSNR of each batch's pooled MSE, averaged
# What a stored result means (nas.evaluators.names.EVALUATOR_VERSION, read by the read side without torch).
# Bumped whenever a change makes the same candidate score differently; results of an earlier version are never
# reused (nas.search's reuse key holds it). 2: FPE's prune keeps both layers, the paper's PSNR, fresh denoising
# noise every epoch, super-resolution inputs without antialiasing. 3 (2026-12-07): the score objective (accuracy,
# psnr) and bandwidth_expected are the validation split's, which every selection reads; the test split's are
# stored beside them as test_<metric>, for the record only. Versions 1 and 2 stored the test score under the
# metric's own name, and the search selected on it.


class CandidateFailed(Exception):
    """The candidate itself failed (non-finite loss, ...); the search goes on."""


@dataclass
class Evaluation:
    """The objectives of one candidate plus what it took to get them."""

    objectives: dict[str, float]
    curve: list[dict[str, float]] = field(default_factory=list)  # per epoch: epoch, train_loss, val_*, seconds, cpu_seconds
    wall_time_s: float = 0.0
    epochs_trained: int = 0
    state: dict[str, torch.Tensor] | None = None  # the best checkpoint's persistent tensors
    stopped_early: bool = False  # ``report`` stopped it: objectives hold the static ones and the last val score


_STATIC: dict[str, tuple[float, float]] = {}  # arch_id -> (params, bandwidth), the most recent STATIC_KEPT
STATIC_KEPT = 4096


def static_objectives(spec: ArchSpec) -> dict[str, float]:
    """``params`` and ``bandwidth``: known from the architecture alone, before any training.

    Kept for the last ``STATIC_KEPT`` architectures by id (equal ids, equal models): a long study proposes
    the same architecture again with other training settings (over half its proposals after ~2,000 in a
    long tpe study), and building the model on the meta device costs the driver ~3 ms each time."""
    arch_id = spec.arch_id
    hit = _STATIC.pop(arch_id, None)
    if hit is None:
        cost = model_cost(spec)  # a shape that cannot be built raises ValueError: never kept
        hit = (float(cost.params), float(bandwidth_bytes(cost)))
        if len(_STATIC) >= STATIC_KEPT:
            del _STATIC[next(iter(_STATIC))]  # the least recently used
    _STATIC[arch_id] = hit  # most recent last
    return {"params": hit[0], "bandwidth": hit[1]}


def score_metric(kind: str) -> str:
    """The objective a task of ``kind`` is scored by: ``psnr`` for an image kind, else ``accuracy``."""
    return "psnr" if kind in IMAGE_KINDS else "accuracy"


def task_loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits (B, C) against labels (B,); for an image kind, the MSE of the
    predicted pixels sigmoid(out) (B, d_out) against the target pixels y (B, d_out)."""
    if kind in IMAGE_KINDS:
        return F.mse_loss(torch.sigmoid(out), y)
    return F.cross_entropy(out, y)


def has_exits(model: nn.Module) -> bool:
    """Whether ``model`` has early-exit heads (``exits`` k ≥ 1 and a block before the last that is a k-th one)."""
    return len(getattr(model, "exit_heads", ())) > 0


def joint_loss(kind: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss of ``model`` on (x, y): ``task_loss`` of its output; with early-exit heads the mean of
    every head's ``task_loss`` (the exit heads' and the final head's, weight 1/(heads) each)."""
    if not has_exits(model):
        return task_loss(kind, model(x), y)
    outs = model.all_logits(x)
    return sum(task_loss(kind, out, y) for out in outs) / len(outs)


@torch.no_grad()
def exit_histogram(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> list[int]:
    """How many samples of x leave at each head (the exit heads in order, the final head last) in the
    early-exit inference (``exit_forward``, eval mode); [len(x)] for a model without exits."""
    if not has_exits(model):
        return [len(x)]
    model.eval()
    heads = len(model.exit_heads) + 1
    counts = torch.zeros(heads, dtype=torch.long)
    for i in range(0, len(x), batch_size):
        counts += torch.bincount(model.exit_forward(x[i : i + batch_size])[1].cpu(), minlength=heads)
    return [int(c) for c in counts]


def psnr_db(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB, data range 1, of the pooled MSE of ``pred`` against ``target`` (any equal shapes):
    10·log10(1 / MSE), MSE the mean over every pixel of every image (torchmetrics' ``dim=None``),
    floored at ``MSE_FLOOR`` (at most 100 dB)."""
    mse = (pred - target).pow(2).mean().clamp_min(MSE_FLOOR)
    return float(-10.0 * torch.log10(mse))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += (model(x[i : i + batch_size]).argmax(dim=1) == y[i : i + batch_size]).sum().item()
    return correct / len(y)


@torch.no_grad()
def psnr(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = PSNR_BATCH) -> float:
    """The hourglass paper's PSNR (dB) of sigmoid(model(x)) against the target images y (n, d_out): the
    pooled-MSE PSNR (``psnr_db``) of each batch of ``batch_size`` images in order, averaged over the batches
    (the last may be smaller). Never above the mean of per-image PSNRs (Jensen)."""
    model.eval()
    values = [psnr_db(torch.sigmoid(model(x[i : i + batch_size])), y[i : i + batch_size])
              for i in range(0, len(y), batch_size)]
    return sum(values) / len(values)


def score(kind: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The task's score (``score_metric(kind)``): accuracy, or PSNR in dB for an image kind."""
    return psnr(model, x, y) if kind in IMAGE_KINDS else accuracy(model, x, y)


@torch.inference_mode()
def latency_ms(model: nn.Module, d_in: int, repeats: int = 30, warmup: int = 5) -> float:
    """Median wall time of a batch-1 forward pass on the model's device, in ms."""
    model.eval()
    device = next(model.parameters()).device
    x = torch.randn(1, d_in, device=device)
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def before_epoch(model: nn.Module, epoch: int, epochs: int) -> bool:
    """Run every module's ``nas_before_epoch(epoch, epochs)`` hook; True if any changed the structure.

    ``epoch`` counts from 1. An FPE layer expands here once its dense epochs are done.
    """
    changed = False
    for _, hook in hooks.each(model, "nas_before_epoch"):
        changed = bool(hook(epoch, epochs)) or changed
    return changed


def aux_loss(model: nn.Module) -> torch.Tensor | None:
    """The sum of the auxiliary losses the last forward pass left in modules (``nas_aux_loss``), or None.

    A mixture of experts leaves its load-balancing loss (already weighted) there.
    """
    values = [value for _, value in hooks.each(model, "nas_aux_loss")]
    return sum(values[1:], values[0]) if values else None


def penalty(model: nn.Module) -> torch.Tensor | None:
    """The sum of the modules' penalties on their own parameters (``nas_penalty()``), or None.

    Gated cross-layer connections (``DenseGates``) put gate_penalty · Σ|g| here, pushing the gates toward 0.
    """
    values = [hook() for _, hook in hooks.each(model, "nas_penalty")]
    return sum(values[1:], values[0]) if values else None


def train_loss(kind: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """What a training step minimises: the task's loss of ``model(x)`` (``joint_loss``: every head's with early
    exits), plus the auxiliary losses the forward pass left (``aux_loss``) and the parameter penalties
    (``penalty``)."""
    loss = joint_loss(kind, model, x, y)
    for extra in (aux_loss(model), penalty(model)):
        if extra is not None:
            loss = loss + extra
    return loss


def prune_connections(model: nn.Module) -> None:
    """Remove the gated connections whose gates ended below GATE_THRESHOLD (``DenseGates.nas_prune``): the
    model scored, saved and exported is the pruned one."""
    for _, hook in hooks.each(model, "nas_prune"):
        hook()


def give_feature_groups(model: nn.Module, task: Task) -> None:
    """Hand the task's feature groups to every FPE pair of the ``groups`` split (before its expansion)."""
    from nas.spaces.fpe import FPEPair

    for module in model.modules():
        if isinstance(module, FPEPair) and module.split == "groups":
            if task.feature_groups is None or len(task.feature_groups) != module.d_z:
                have = "none" if task.feature_groups is None else f"{len(task.feature_groups)}"
                raise ValueError(f"the FPE groups split needs one feature group per input of W1 ({module.d_z}); "
                                 f"the task {task.dataset} supplies {have}")
            module.feature_groups = task.feature_groups


def evaluate(
    spec: ArchSpec,
    train: TrainSpec,
    task: Task,
    device: str = "cpu",
    report: Callable[[int, dict[str, float]], bool | None] | None = None,
) -> Evaluation:
    """Train ``spec`` on ``task`` and return its objectives.

    AdamW with the learning rate decayed linearly to 0. A model with early-exit
    heads trains on the mean of its heads' losses (``joint_loss``) and is
    scored with the exits applied; ``bandwidth_expected`` is the mean bytes a
    validation sample moves (``nas.spaces.cost.expected_bandwidth``), and
    ``exit_counts`` the validation samples that left at each head. The loss and score
    follow ``task.kind``: cross-entropy and ``accuracy`` for classification;
    for an image kind the model's outputs are pixel logits, the prediction is
    sigmoid(output), the loss its MSE and the score the hourglass paper's
    PSNR (``psnr``, dB, data range 1; batches of 128). Denoising draws fresh
    noise every epoch (``Task.train_inputs``). The validation score after every epoch
    (``val_accuracy`` or ``val_psnr``, passed to ``report``) picks the best
    checkpoint.

    What selects and what is recorded: ``accuracy`` (or ``psnr``) and
    ``bandwidth_expected`` are the best checkpoint's on the **validation** split
    (as pruned: gated connections removed), the figures the search, the front
    and every pick read; ``test_accuracy`` (or ``test_psnr``) and, with exits,
    ``test_bandwidth_expected`` and ``test_exit_counts`` are the same
    checkpoint's on the test split, stored for the record and never given to a
    selection (Lindauer & Hutter, JMLR 2020).

    The loss adds the modules' auxiliary losses and penalties (``train_loss``).
    Gated connections that end below their threshold are pruned from the best
    checkpoint before it is scored and saved (``prune_connections``);
    ``bandwidth_kept`` is the bandwidth of what is left (= ``bandwidth``
    without gated connections).
    """
    t0 = time.perf_counter()
    torch.manual_seed(train.seed)
    model = build(spec, fresh=True).to(device)
    for module in model.modules():  # the gates' L1 weight (DenseGates.nas_penalty), a training setting of the spec
        if isinstance(module, DenseGates):
            module.nas_weight = spec.gate_penalty
    give_feature_groups(model, task)
    x_fixed, y = task.x_train.to(device), task.y_train.to(device)
    xv, yv = task.x_val.to(device), task.y_val.to(device)
    n = len(y)
    bs = min(train.batch_size, n)
    steps_per_epoch = n // bs if n % bs < 2 else n // bs + 1  # drop a last batch of one (BatchNorm)
    total = max(1, train.epochs * steps_per_epoch)
    step = [0]  # optimizer steps taken: the learning rate decays over all of them, across rebuilt optimizers

    def make_optimizer():
        opt = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: max(0.0, 1.0 - step[0] / total))

    opt, sched = make_optimizer()
    gen = torch.Generator().manual_seed(train.seed)
    metric = score_metric(task.kind)

    curve: list[dict[str, float]] = []
    best, best_state = -math.inf, None
    deadline = t0 + train.timeout_s if train.timeout_s > 0 else None
    for epoch in range(1, train.epochs + 1):
        epoch_t0, epoch_c0 = time.perf_counter(), time.process_time()
        if before_epoch(model, epoch, train.epochs):  # the structure changed (an FPE expansion):
            opt, sched = make_optimizer()  # new parameters need a new optimizer
            best, best_state = -math.inf, None  # and only checkpoints of the final structure count
        model.train()
        inputs = task.train_inputs(train.seed, epoch)  # fresh noise for denoising, else x_train
        x = x_fixed if inputs is task.x_train else inputs.to(device)
        order = torch.randperm(n, generator=gen).to(device)
        running = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * bs : (s + 1) * bs]
            loss = train_loss(task.kind, model, x[idx], y[idx])
            if not torch.isfinite(loss):
                raise CandidateFailed(f"non-finite loss ({loss.item()}) at epoch {epoch}, step {s + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step[0] += 1
            sched.step()
            running += loss.item()
            if deadline is not None and time.perf_counter() > deadline:
                raise CandidateFailed(
                    f"exceeded train.timeout_s = {train.timeout_s:g} s (epoch {epoch} of {train.epochs}, step {s + 1})"
                )
        val = score(task.kind, model, xv, yv)
        point = {"epoch": epoch, "train_loss": running / steps_per_epoch, f"val_{metric}": val,
                 "seconds": time.perf_counter() - epoch_t0,  # this epoch's training and validation, wall clock
                 "cpu_seconds": time.process_time() - epoch_c0}  # the same in the process's CPU time
        curve.append(point)
        if report is not None and report(epoch, point) and epoch < train.epochs:  # early stopping
            objectives = {**static_objectives(spec), f"val_{metric}": val}
            return Evaluation(objectives, curve, time.perf_counter() - t0, epoch, None, stopped_early=True)
        if val > best:
            best, best_state = val, copy.deepcopy(model.state_dict())

    model.load_state_dict(best_state)
    prune_connections(model)  # before scoring and saving: the scored model is the exported one
    objectives = static_objectives(spec)
    # the bytes a sample leaving at each head moves, on the model as pruned; the last: the whole model's
    head_bytes = [bandwidth_bytes(c) for c in exit_costs(spec, model=model)]
    objectives["bandwidth_kept"] = float(head_bytes[-1])
    # what selects: the validation split, scored again on the model as pruned, exits applied
    objectives[metric] = score(task.kind, model, xv, yv)
    counts = exit_histogram(model, xv)  # validation samples leaving at each head (the final head last)
    objectives["bandwidth_expected"] = expected_bytes(counts, head_bytes)
    # the record: the test split, never read by a selection
    x_test = task.x_test.to(device)
    objectives[TEST_PREFIX + metric] = score(task.kind, model, x_test, task.y_test.to(device))
    test_counts = exit_histogram(model, x_test)
    if len(counts) > 1:
        objectives[TEST_PREFIX + "bandwidth_expected"] = expected_bytes(test_counts, head_bytes)
    objectives["latency_ms"] = latency_ms(model, spec.d_in)
    selected = {k: v for k, v in objectives.items() if not k.startswith(TEST_PREFIX)}
    if not all(math.isfinite(v) for v in selected.values()):  # what the search reads must be finite
        raise CandidateFailed(f"non-finite objectives {selected}")
    for k in [k for k, v in objectives.items() if k.startswith(TEST_PREFIX) and not math.isfinite(v)]:
        objectives[k] = None  # the record, unmeasurable (JSON has no NaN): never a reason to fail a candidate
    measures = [m for _, hook in hooks.each(model, "nas_interference") if (m := hook())]
    for key in measures[0] if measures else ():  # FPE: interference before and after the expansion, the record
        objectives["fpe_" + key] = sum(m[key] for m in measures) / len(measures)  # the mean over the pairs
    if len(counts) > 1:  # the exit histograms and each head's bytes (lists: not objectives), stored with the rest
        objectives["exit_counts"], objectives["exit_bytes"] = counts, head_bytes
        objectives[TEST_PREFIX + "exit_counts"] = test_counts
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return Evaluation(objectives, curve, time.perf_counter() - t0, train.epochs, state)
