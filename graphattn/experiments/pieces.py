"""The config pieces every experiment composes: small frozen dataclasses, one concern each.

A setting is a dataclass field made with :func:`~.options.option`: its default, its help text and
its choices live in the field, and ``graphattn <command> --help`` is generated from them
(:mod:`graphattn.cli`), so nothing is typed twice. Each piece validates its own fields once, in
``__post_init__``, with :mod:`graphattn.checks` (``TypeError`` for a wrong type, ``ValueError``
for a bad value); an experiment's config (``NodeConfig``, ``SequenceConfig``, ``GraphConfig``,
``StudyConfig``, each beside its task) holds one instance of each piece it needs, with its own
defaults, adds its own fields and checks what spans pieces.

This module imports neither torch nor the experiments, so building the command line is cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..checks import MAX_SEED, check_bool, check_choice, check_float, check_int, check_path, check_probability
from .options import option

__all__ = ["ModelConfig", "TrainingConfig", "BatchTrainingConfig", "SplitConfig", "EncodingConfig", "RunConfig",
           "RepeatConfig", "ProcessConfig", "DataConfig", "DEVICES", "ENCODINGS", "SCHEDULES", "resolve_workers"]

DEVICES = ("cpu", "cuda")
ENCODINGS = ("none", "laplacian", "random_walk")
#: ``constant``: the learning rate ``lr`` after the warmup; ``cosine``: decayed from ``lr`` to 0 at the last epoch.
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class ModelConfig:
    """The attention model: width, heads, layers and dropout."""

    hidden: int = option(64, "model width H * C")
    heads: int = option(4, "attention heads H (must divide the width)")
    layers: int = option(2, "attention layers / blocks L")
    dropout: float = option(0.1, "dropout on the residual branches")

    def __post_init__(self) -> None:
        for name in ("hidden", "heads", "layers"):
            check_int(getattr(self, name), name)
        check_probability(self.dropout, "dropout")
        if self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation and early stopping (on validation accuracy)."""

    epochs: int = option(20, "most epochs")
    patience: int | None = option(5, "early-stopping patience: epochs without a better validation accuracy")
    lr: float = option(1e-3, "AdamW learning rate")
    weight_decay: float = option(0.01, "AdamW weight decay")

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs")
        if self.patience is not None:
            check_int(self.patience, "patience")
        check_float(self.lr, "lr", above=0)
        check_float(self.weight_decay, "weight_decay", minimum=0)


@dataclass(frozen=True)
class BatchTrainingConfig(TrainingConfig):
    """Training on shuffled mini-batches.

    The learning rate at optimiser step ``t`` of ``T = epochs * batches`` is
    ``lr * t / W`` during the ``W = warmup * batches`` warmup steps, then ``lr`` (``constant``)
    or ``lr * (1 + cos(pi * (t - W) / (T - W))) / 2`` (``cosine``); a warmup as long as the
    run never reaches ``lr``. The loss is the
    cross-entropy against labels smoothed by ``label_smoothing`` = ``eps``: the target puts
    ``1 - eps + eps / K`` on the true class and ``eps / K`` on each of the ``K`` classes.
    """

    batch_size: int = option(64, "examples per batch")
    warmup: int = option(0, "epochs over which the learning rate rises linearly from 0 to lr")
    schedule: str = option("constant", "learning rate after the warmup: constant, or cosine decay to 0 at the "
                                       "last epoch", choices=SCHEDULES)
    label_smoothing: float = option(0.0, "share of each training target spread evenly over the classes")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.batch_size, "batch_size")
        check_int(self.warmup, "warmup", 0)
        check_choice(self.schedule, "schedule", SCHEDULES)
        check_float(self.label_smoothing, "label_smoothing", minimum=0, below=1)


@dataclass(frozen=True)
class SplitConfig:
    """The seed and the validation split carved from the training data."""

    seed: int = option(0, "seeds weights, splits and batch order")
    val_fraction: float = option(0.1, "share of the training data held out for validation")

    def __post_init__(self) -> None:
        check_int(self.seed, "seed", 0, MAX_SEED)
        check_float(self.val_fraction, "val_fraction", above=0, below=1)


@dataclass(frozen=True)
class EncodingConfig:
    """Positional features of graph nodes (PyG's ``AddLaplacianEigenvectorPE`` / ``AddRandomWalkPE``)."""

    encoding: str = option("none", "positional features", choices=ENCODINGS)
    encoding_dim: int = option(8, "Laplacian eigenvectors or random-walk steps")

    def __post_init__(self) -> None:
        check_choice(self.encoding, "encoding", ENCODINGS)
        check_int(self.encoding_dim, "encoding_dim")


@dataclass(frozen=True)
class RunConfig:
    """Where results go, progress bars, the device. The run claims ``out`` before any work
    (:class:`~graphattn.files.FolderLock`): anything but a folder there (a file, a FIFO, a
    device node), or another live run holding it, is refused in one line."""

    out: str | None = option(None, "write results.json and pictures to this folder; unset: nothing is written",
                             metavar="DIR")
    progress: bool = option(True, "progress bars")
    device: str = option("cpu", "where to train", choices=DEVICES)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", check_path(self.out, "out", optional=True))
        check_bool(self.progress, "progress")
        check_choice(self.device, "device", DEVICES)
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ValueError("device='cuda' but CUDA is not available; use device='cpu'")


@dataclass(frozen=True)
class RepeatConfig:
    """Runs repeated over seeds, each checkpointed and resumed on its own (``(model, seed)``)."""

    seeds: int = option(10, "runs per model, seeds 0..N-1")
    save: bool = option(False, "checkpoint every (model, seed) under DIR/checkpoints after each epoch")
    resume: bool = option(False, "continue the runs saved with --save (same settings; more --epochs allowed)")

    def __post_init__(self) -> None:
        check_int(self.seeds, "seeds")
        check_bool(self.save, "save")
        check_bool(self.resume, "resume")


@dataclass(frozen=True)
class ProcessConfig:
    """How runs share the machine: torch threads, runs trained at once, ``torchrun``'s patience.
    ``workers`` unset is resolved by the experiment (:func:`resolve_workers`)."""

    threads: int | None = option(None, "torch CPU threads; unset: leave torch's setting")
    workers: int | None = option(None, "runs trained at once in separate one-thread processes (which show no "
                                       "per-epoch progress); unset: CPU cores, at most 2 (1 on CUDA or under "
                                       "torchrun)")
    dist_timeout: int = option(300, "torchrun: seconds a process waits for the others before the job stops")

    def __post_init__(self) -> None:
        if self.threads is not None:
            check_int(self.threads, "threads")
        if self.workers is not None:
            check_int(self.workers, "workers")
        check_int(self.dist_timeout, "dist_timeout")


def resolve_workers(processes: ProcessConfig, device: str, *, one: bool = False) -> int:
    """``processes.workers``, or when unset the CPU cores, at most 2 (1 on CUDA, under
    ``torchrun``, or when ``one``: runs long enough to want their per-epoch progress); refuses
    several workers on CUDA or under ``torchrun``."""
    cuda = device == "cuda"
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    workers = processes.workers
    if workers is None:
        workers = 1 if cuda or distributed or one else max(1, min(2, os.cpu_count() or 1))
    if workers > 1 and cuda:
        raise ValueError(f"workers > 1 needs device='cpu', got device={device!r}")
    if workers > 1 and distributed:
        raise ValueError("workers > 1 cannot run under torchrun (each process trains every run in turn); "
                         "leave workers unset")
    return workers


@dataclass(frozen=True)
class DataConfig:
    """Where datasets are found: the data root and an offline mirror."""

    root: str | None = option(None, "data root; unset: $GRAPHATTN_DATA or datasets/", metavar="DIR")
    mirror: str | None = option(None, "offline mirror; unset: $GRAPHATTN_MIRROR", metavar="DIR")

    def __post_init__(self) -> None:
        for name in ("root", "mirror"):
            object.__setattr__(self, name, check_path(getattr(self, name), name, optional=True))
