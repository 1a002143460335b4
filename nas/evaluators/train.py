"""Train one candidate and measure its objectives."""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from nas.evaluators.datasets import Task
from nas.spaces import ArchSpec, TrainSpec, bandwidth_bytes, build, model_cost


class CandidateFailed(Exception):
    """The candidate itself failed (non-finite loss, ...); the search goes on."""


@dataclass
class Evaluation:
    """The objectives of one candidate plus what it took to get them."""

    objectives: dict[str, float]
    curve: list[dict[str, float]] = field(default_factory=list)  # one entry per epoch
    wall_time_s: float = 0.0
    epochs_trained: int = 0
    state: dict[str, torch.Tensor] | None = None  # the best checkpoint's persistent tensors


def static_objectives(spec: ArchSpec) -> dict[str, float]:
    """``params`` and ``bandwidth``: known from the architecture alone, before any training."""
    cost = model_cost(spec)
    return {"params": float(cost.params), "bandwidth": float(bandwidth_bytes(cost))}


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += (model(x[i : i + batch_size]).argmax(dim=1) == y[i : i + batch_size]).sum().item()
    return correct / len(y)


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


def evaluate(
    spec: ArchSpec,
    train: TrainSpec,
    task: Task,
    device: str = "cpu",
    report: Callable[[int, dict[str, float]], None] | None = None,
) -> Evaluation:
    """Train ``spec`` on ``task`` and return its objectives.

    AdamW with the learning rate decayed linearly to 0; validation accuracy
    after every epoch (passed to ``report``); the checkpoint with the best
    validation accuracy is scored on the test split (``accuracy``).
    """
    t0 = time.perf_counter()
    torch.manual_seed(train.seed)
    model = build(spec).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    x, y = task.x_train.to(device), task.y_train.to(device)
    xv, yv = task.x_val.to(device), task.y_val.to(device)
    n = len(y)
    bs = min(train.batch_size, n)
    steps_per_epoch = n // bs if n % bs < 2 else n // bs + 1  # drop a last batch of one (BatchNorm)
    total = max(1, train.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
    gen = torch.Generator().manual_seed(train.seed)
    loss_fn = nn.CrossEntropyLoss()

    curve: list[dict[str, float]] = []
    best_acc, best_state = -1.0, None
    deadline = t0 + train.timeout_s if train.timeout_s > 0 else None
    for epoch in range(1, train.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        running = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * bs : (s + 1) * bs]
            loss = loss_fn(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                raise CandidateFailed(f"non-finite loss ({loss.item()}) at epoch {epoch}, step {s + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item()
            if deadline is not None and time.perf_counter() > deadline:
                raise CandidateFailed(
                    f"exceeded train.timeout_s = {train.timeout_s:g} s (epoch {epoch} of {train.epochs}, step {s + 1})"
                )
        val_acc = accuracy(model, xv, yv)
        point = {"epoch": epoch, "train_loss": running / steps_per_epoch, "val_accuracy": val_acc}
        curve.append(point)
        if report is not None:
            report(epoch, point)
        if val_acc > best_acc:
            best_acc, best_state = val_acc, copy.deepcopy(model.state_dict())

    model.load_state_dict(best_state)
    objectives = static_objectives(spec)
    objectives["accuracy"] = accuracy(model, task.x_test.to(device), task.y_test.to(device))
    objectives["latency_ms"] = latency_ms(model, spec.d_in)
    if not all(math.isfinite(v) for v in objectives.values()):
        raise CandidateFailed(f"non-finite objectives {objectives}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return Evaluation(objectives, curve, time.perf_counter() - t0, train.epochs, state)
