"""What the experiments share: one pass of training, scoring a loader, writing the results."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from ..files import write_atomic
from ..train import History, TrainConfig, fit
from .pieces import BatchTrainingConfig

__all__ = ["evaluate", "log_probabilities", "train_epoch_fn", "lr_factor", "fit_minibatches", "write_results", "EVAL_BATCH"]

EVAL_BATCH = 256  # examples per batch when scoring: no gradients, so larger than in training


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, forward: Callable) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``forward(model, batch)`` over ``loader``."""
    model.eval()
    correct, loss, count = 0, 0.0, 0
    for batch in loader:
        out = forward(model, batch)
        correct += int((out.argmax(-1) == batch.y).sum())
        loss += float(F.cross_entropy(out, batch.y, reduction="sum"))
        count += batch.y.numel()
    return correct / max(count, 1), loss / max(count, 1)


@torch.no_grad()
def log_probabilities(model: torch.nn.Module, loader: DataLoader, forward: Callable) -> torch.Tensor:
    """``log_softmax(forward(model, batch))`` over ``loader``, in its order: ``[examples, classes]``."""
    model.eval()
    return torch.cat([F.log_softmax(forward(model, batch), dim=-1) for batch in loader])


def train_epoch_fn(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader,
                   forward: Callable, *, scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                   label_smoothing: float = 0.0, augment: Callable | None = None) -> Callable[[], float]:
    """A ``train_epoch()`` closure for :func:`graphattn.train.fit`: one pass, mean loss per example.

    Each batch is first handed to ``augment(batch) -> batch`` (training batches only), the
    loss is the cross-entropy with ``label_smoothing``, gradients are clipped to norm 1, and
    ``scheduler`` (if any) steps after every optimiser step."""
    def train_epoch() -> float:
        total, count = 0.0, 0
        for batch in loader:
            if augment is not None:
                batch = augment(batch)
            optimizer.zero_grad()
            loss = F.cross_entropy(forward(model, batch), batch.y, label_smoothing=label_smoothing)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total, count = total + loss.item() * batch.y.numel(), count + batch.y.numel()
        return total / max(count, 1)
    return train_epoch


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """The multiple of the base learning rate at optimiser step ``step`` (0-based): linear
    warmup ``(step + 1) / warmup_steps``, then 1 (``constant``) or the half cosine
    ``(1 + cos(pi * p)) / 2`` with ``p`` the share of the post-warmup steps done (``cosine``)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    done = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


def fit_minibatches(model: torch.nn.Module, forward: Callable, train: list, val: list,
                    training: BatchTrainingConfig, *, seed: int, progress: bool,
                    augment: Callable | None = None) -> History:
    """Train ``model`` with AdamW on shuffled mini-batches of ``train`` (the order seeded by
    ``seed``), the learning rate following ``training``'s warmup and schedule (stepped per
    batch), each training batch passed through ``augment`` if given; stop early on the
    validation accuracy over ``val``; the best weights are kept."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.lr, weight_decay=training.weight_decay)
    shuffled = DataLoader(train, batch_size=training.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(seed))
    val_loader = DataLoader(val, batch_size=EVAL_BATCH)
    steps = len(shuffled)
    scheduler = None
    if training.warmup or training.schedule != "constant":
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: lr_factor(
            t, training.warmup * steps, training.epochs * steps, training.schedule))

    def validate() -> dict[str, float]:
        acc, loss = evaluate(model, val_loader, forward)
        return {"val_acc": acc, "val_loss": loss}

    epoch = train_epoch_fn(model, optimizer, shuffled, forward, scheduler=scheduler,
                           label_smoothing=training.label_smoothing, augment=augment)
    return fit(model, optimizer, epoch, validate,
               TrainConfig(epochs=training.epochs, patience=training.patience, progress=progress))


def write_results(out: str | os.PathLike, metrics: dict, rows: list[dict]) -> None:
    """Write ``results.json`` (atomically: temporary file, then rename) and ``history.png`` to ``out``."""
    from ..viz import plot_history

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    write_atomic(out / "results.json", lambda f: f.write(text.encode()))
    if rows:
        plot_history(rows, out / "history.png")
