"""The epoch loop: epochs, early stopping, the progress bar, a checkpoint after every epoch.

The loop knows nothing about tasks. A caller hands :func:`fit` two callables,
``train_epoch() -> loss`` and ``evaluate() -> {metric: value}``, and gets a :class:`History`
back (:func:`graphattn.experiments.harness.train_model` is the one caller in the experiments).
Checkpoints hold everything needed to continue a run bit for bit (:mod:`.checkpoints`,
:mod:`.rng`).
"""
from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..checks import check_bool, check_choice, check_int, check_path
from .checkpoints import CHECKPOINT_FORMAT, check_writable, load_for_resume, load_weights, save_checkpoint
from .distributed import gather_objects, is_main, rank, world_size
from .rng import restore_rng_state, rng_state

__all__ = ["TrainConfig", "EpochRow", "History", "fit"]


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` runs.

    Args:
        epochs (int): last epoch to run (epochs are numbered from 1). (default: 100)
        patience (int, optional): stop after this many consecutive epochs without an improvement
            of ``monitor``; ``None`` turns early stopping off. (default: None)
        monitor (str): key of the ``evaluate()`` result that decides the best epoch. (default: "val_acc")
        mode (str): ``"max"`` or ``"min"``: whether a larger or a smaller ``monitor`` is better;
            only a strict improvement counts. (default: "max")
        tie_break (str, optional): key of a second ``evaluate()`` metric, smaller is better, that
            decides between epochs with an equal ``monitor`` value: an epoch that ties the best
            ``monitor`` with a strictly smaller ``tie_break`` counts as an improvement. Accuracy
            on a few hundred validation nodes ties often; GAT's protocol then looks at the
            validation loss. (default: None)
        progress (bool): show a tqdm progress bar on stderr. (default: True)
        checkpoint (str or Path, optional): file rewritten after every epoch. (default: None)
        resume (bool): continue from ``checkpoint``, which must exist. With ``resume=False`` an
            existing checkpoint is overwritten by the new run. (default: False)
    """

    epochs: int = 100
    patience: int | None = None
    monitor: str = "val_acc"
    mode: str = "max"
    tie_break: str | None = None
    progress: bool = True
    checkpoint: str | Path | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs")
        if self.patience is not None:
            check_int(self.patience, "patience")
        _check_metric(self.monitor, "monitor")
        if self.tie_break is not None:
            _check_metric(self.tie_break, "tie_break")
        check_choice(self.mode, "mode", ("max", "min"))
        check_bool(self.progress, "progress")
        check_bool(self.resume, "resume")
        if self.checkpoint is not None:
            object.__setattr__(self, "checkpoint", Path(check_path(self.checkpoint, "checkpoint")))
        if self.resume and self.checkpoint is None:
            raise ValueError("resume=True needs a checkpoint path, got checkpoint=None")


def _check_metric(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a metric name (str), got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{name} must be a non-empty metric name, got {value!r}")


@dataclass(frozen=True)
class EpochRow:
    """One epoch: its number (from 1), training loss, ``evaluate()`` metrics and wall time
    of ``train_epoch()`` plus ``evaluate()`` in seconds."""

    epoch: int
    loss: float
    metrics: dict[str, float]
    time_s: float


@dataclass
class History:
    """What :func:`fit` did: one :class:`EpochRow` per epoch (including epochs run before a
    resume), the best epoch (``None`` if ``monitor`` never improved, e.g. always NaN) and its
    metrics, and whether early stopping ended the run."""

    rows: list[EpochRow] = field(default_factory=list)
    best_epoch: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.rows)

    @property
    def mean_epoch_time_s(self) -> float:
        return sum(r.time_s for r in self.rows) / len(self.rows) if self.rows else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict, with ``epochs_run`` and ``mean_epoch_time_s`` included."""
        return {**asdict(self), "epochs_run": self.epochs_run, "mean_epoch_time_s": self.mean_epoch_time_s}


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_epoch: Callable[[], float],
    evaluate: Callable[[], Mapping[str, float]],
    config: TrainConfig,
    *,
    experiment: Mapping[str, Any] | None = None,
    set_epoch: Callable[[int], None] | None = None,
) -> History:
    """Train for ``config.epochs`` epochs and leave the best weights in ``model``.

    Each epoch calls ``train_epoch()`` with the model in train mode (it runs the optimizer and
    returns the training loss), then ``evaluate()`` in eval mode under ``torch.no_grad()`` (it
    returns metrics that include ``config.monitor``, and ``config.tie_break`` if set). On a strict
    improvement of the monitored metric (or an equal value with a smaller ``tie_break``) a deep
    copy of ``model.state_dict()`` is kept; after ``config.patience`` epochs without one the run
    stops. At the end the best weights are loaded back into ``model`` (the optimizer
    keeps its last state). The loop never moves tensors: the closures and the model decide the
    device, and on CUDA epoch times are taken after a synchronize.

    ``experiment`` is a JSON-able dict identifying the run (hyper-parameters, dataset, seed). It is
    stored in the checkpoint; ``resume=True`` refuses, without writing anything, a checkpoint whose
    stored dict differs. ``config`` itself is not compared, so a run may be resumed with more
    epochs. A resumed run on CPU ends in exactly the state of an uninterrupted one.

    ``set_epoch(epoch)``, if given, is called before each ``train_epoch()`` (like
    ``DistributedSampler.set_epoch``), so a loader can draw its order from the epoch number and a
    resumed run sees the same batches as an uninterrupted one.

    Under ``torch.distributed`` (``torchrun``) every process calls :func:`fit` with the same
    configuration; ``evaluate()`` must return metrics reduced over the processes (so every
    process makes the same early-stopping decision). Only rank 0 shows the progress bar and
    writes the checkpoint, which stores every process's RNG state; every process reads it back
    on resume (a checkpoint written by another number of processes gives each one rank 0's).

    Raises:
        ValueError: ``experiment`` is not JSON-able; the checkpoint folder is not writable;
            ``resume=True`` and the checkpoint is missing or belongs to another experiment;
            ``evaluate()`` lacks ``config.monitor``.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    try:  # a JSON round trip makes the dict canonical (tuples -> lists) and weights_only-safe
        record: dict[str, Any] = json.loads(json.dumps(dict(experiment or {}), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"experiment must be a JSON-able dict: {err}") from None
    path = None if config.checkpoint is None else Path(config.checkpoint)  # a Path already (TrainConfig)
    better = (lambda a, b: a > b) if config.mode == "max" else (lambda a, b: a < b)
    best_value = -math.inf if config.mode == "max" else math.inf
    best_tie = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs, start, history = 0, 1, History()

    if config.resume:
        assert path is not None  # TrainConfig refuses resume without a checkpoint
        ckpt = load_for_resume(path, record)
        load_weights(model, ckpt["model"], path)
        optimizer.load_state_dict(ckpt["optimizer"])
        best_state, best_value, bad_epochs = ckpt["best_state"], ckpt["best_value"], ckpt["bad_epochs"]
        best_tie = ckpt.get("best_tie", math.inf)
        history = History(**{**ckpt["history"], "rows": [EpochRow(**r) for r in ckpt["history"]["rows"]]})
        start = ckpt["epoch"] + 1
        ranks = ckpt.get("rng_ranks", [])
        restore_rng_state(ranks[rank()] if len(ranks) == world_size() else ckpt["rng"])
    if path is not None and is_main():
        check_writable(path)

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    epochs = range(start, config.epochs + 1) if not history.stopped_early else range(0)
    bar = tqdm(epochs, total=config.epochs, initial=start - 1, desc="epoch",
               disable=not (config.progress and is_main()), file=sys.stderr)
    for epoch in bar:
        tic = time.perf_counter()
        if set_epoch is not None:
            set_epoch(epoch)
        model.train()
        loss = float(train_epoch())
        model.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in evaluate().items()}
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - tic
        for role, key in (("monitor", config.monitor), ("tie_break", config.tie_break)):
            if key is not None and key not in metrics:
                raise ValueError(f"evaluate() must return {role}={key!r}, got keys {sorted(metrics)}")

        value = metrics[config.monitor]
        tie = metrics[config.tie_break] if config.tie_break is not None else math.inf
        if better(value, best_value) or (value == best_value and tie < best_tie):
            best_value, best_tie, bad_epochs = value, tie, 0
            best_state = copy.deepcopy(model.state_dict())
            history.best_epoch, history.best_metrics = epoch, dict(metrics)
        else:
            bad_epochs += 1
        history.rows.append(EpochRow(epoch, loss, metrics, elapsed))
        history.stopped_early = config.patience is not None and bad_epochs >= config.patience
        bar.set_postfix({"loss": f"{loss:.4f}", config.monitor: f"{value:.4f}"})
        rng = rng_state() if world_size() == 1 or path is None else gather_objects(rng_state())
        if path is not None and is_main():
            save_checkpoint(path, {
                "format": CHECKPOINT_FORMAT, "experiment": record, "epoch": epoch,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "best_state": best_state, "best_value": best_value, "best_tie": best_tie, "bad_epochs": bad_epochs,
                "history": asdict(history), "rng": rng[0] if isinstance(rng, list) else rng,
                **({"rng_ranks": rng} if isinstance(rng, list) else {}),
            })
        if history.stopped_early:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
