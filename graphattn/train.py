"""The shared training loop: seeds, epochs, early stopping, progress bar, checkpoint save / resume.

The loop knows nothing about tasks. An experiment hands :func:`fit` two closures,
``train_epoch() -> loss`` and ``evaluate() -> {metric: value}``, and gets a :class:`History`
back. Checkpoints hold everything needed to continue a run bit for bit (weights, optimizer,
early-stopping state, history, every RNG state), are written atomically with a sha256 trailer,
and are verified before they are loaded with ``torch.load(..., weights_only=True)``
(:func:`load_checkpoint`).
"""
from __future__ import annotations

import copy
import io
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .checks import MAX_SEED, check_bool, check_choice, check_device, check_int, check_path
from .files import CorruptFileError, read_checked, write_checked

__all__ = ["TrainConfig", "EpochRow", "History", "fit", "load_checkpoint", "CheckpointError", "set_seed",
           "peak_memory_mb", "reset_peak_memory"]


def set_seed(seed: int) -> None:
    """Seed python ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    check_int(seed, "seed", 0, MAX_SEED)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device (lazily when CUDA is not yet initialised)


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
        experiment = json.loads(json.dumps(dict(experiment or {}), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"experiment must be a JSON-able dict: {err}") from None
    path = config.checkpoint
    better = (lambda a, b: a > b) if config.mode == "max" else (lambda a, b: a < b)
    best_value = -math.inf if config.mode == "max" else math.inf
    best_tie = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs, start, history = 0, 1, History()

    if config.resume:
        ckpt = _load_checkpoint(path, experiment)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        best_state, best_value, bad_epochs = ckpt["best_state"], ckpt["best_value"], ckpt["bad_epochs"]
        best_tie = ckpt.get("best_tie", math.inf)
        history = History(**{**ckpt["history"], "rows": [EpochRow(**r) for r in ckpt["history"]["rows"]]})
        start = ckpt["epoch"] + 1
        ranks = ckpt.get("rng_ranks", [])
        _set_rng_state(ranks[rank()] if len(ranks) == world_size() else ckpt["rng"])
    if path is not None and is_main():
        _check_writable(path)

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
        rng = _get_rng_state() if world_size() == 1 or path is None else _gather_objects(_get_rng_state())
        if path is not None and is_main():
            _save_checkpoint(path, {
                "format": 2, "experiment": experiment, "epoch": epoch,
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


#: What every checkpoint written by :func:`fit` holds.
CHECKPOINT_KEYS = ("format", "experiment", "epoch", "model", "optimizer", "best_state", "best_value", "bad_epochs",
                   "history", "rng")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: corrupt, truncated, not a checkpoint, or another experiment's."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` after checking its sha256 trailer (see :func:`graphattn.files.read_checked`)
    and that it holds what :func:`fit` writes; loaded with ``weights_only=True`` onto the CPU.

    Raises:
        CheckpointError: (a ``ValueError``) the file is missing, unreadable, truncated, corrupt or not
            a checkpoint; the one-line message names the file and how to recover.
    """
    path = Path(check_path(path, "checkpoint"))
    recover = (f"move {path.name} away (or delete it) and run without resume to start again, "
               "or restore a good copy")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; run without resume to start from scratch")
    try:
        payload = read_checked(path, "checkpoint")
        ckpt = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except CorruptFileError as err:
        raise CheckpointError(f"{err}; {recover}") from None
    except OSError as err:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read ({err.strerror or err})") from None
    except Exception as err:  # the checksum matched, but torch cannot unpickle it: not a checkpoint of ours
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be loaded ({reason}); {recover}") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a graphattn training checkpoint (missing "
                              f"{', '.join(missing)}); {recover}")
    return ckpt


def _load_checkpoint(path: Path, experiment: dict[str, Any]) -> dict[str, Any]:
    """Load a checkpoint and check it belongs to ``experiment``; never writes."""
    if not path.is_file():
        raise CheckpointError(f"resume=True but checkpoint={str(path)!r} does not exist; "
                              "pass resume=False to start from scratch")
    ckpt = load_checkpoint(path)
    stored = ckpt["experiment"]
    missing = object()
    differ = [f"{k}: checkpoint {stored.get(k, '<missing>')!r} != now {experiment.get(k, '<missing>')!r}"
              for k in sorted(set(stored) | set(experiment))
              if stored.get(k, missing) != experiment.get(k, missing)]
    if differ:
        raise CheckpointError(f"checkpoint={str(path)!r} belongs to another experiment ({'; '.join(differ)}); "
                              "nothing was overwritten")
    return ckpt


def _check_writable(path: Path) -> None:
    """Fail before training, not after the first epoch, when the checkpoint cannot be written."""
    if path.is_dir():
        raise ValueError(f"checkpoint={str(path)!r} is a folder; expected a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as err:
        raise ValueError(f"checkpoint={str(path)!r}: folder {str(path.parent)!r} is not writable ({err})") from None


def _save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """Write to a temporary file in the same folder, then ``os.replace``: a crash leaves either
    the previous checkpoint or the new one, never a torn file. A sha256 trailer lets
    :func:`load_checkpoint` refuse a file changed or cut short later."""
    write_checked(path, lambda f: torch.save(obj, f), mode=0o600)


def _get_rng_state() -> dict[str, Any]:
    """Every global RNG state as tensors and plain types, so ``weights_only=True`` can load it."""
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def peak_memory_mb(device: torch.device | str) -> float:
    """Peak memory in MiB. CUDA: ``torch.cuda.max_memory_allocated`` (tensors only, since the last
    :func:`reset_peak_memory`). CPU: peak resident set size of the whole process since it started
    (``resource.getrusage``), which includes Python, libraries and everything run before."""
    device = check_device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "cpu":
        import resource  # POSIX only

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
    raise ValueError(f"device must be 'cpu' or 'cuda', got {str(device)!r}")


def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new CUDA peak. On CPU the process peak cannot be reset, so this does nothing."""
    device = check_device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif device.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda', got {str(device)!r}")


# ---------------------------------------------------------------------- several processes (DDP)

__all__ += ["rank", "world_size", "is_main", "init_distributed", "all_reduce_sum", "agree"]


def rank() -> int:
    """This process's rank under ``torch.distributed`` (0 without it)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes under ``torch.distributed`` (1 without it)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process writes files and shows progress: rank 0, or the only process."""
    return rank() == 0


def init_distributed(device: str, timeout_s: float) -> bool:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1 in the environment):
    gloo on CPU, nccl on CUDA (one device per local rank). A collective that waits longer than
    ``timeout_s`` for another process raises instead of hanging. Returns whether a group is
    joined; without ``torchrun`` (or with one process) nothing happens."""
    import datetime
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    return True


def all_reduce_sum(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """``values`` summed over the processes (float64; unchanged with one process)."""
    if world_size() == 1:
        return [float(v) for v in values]
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def agree(error: str | None) -> str | None:
    """Every process learns whether one of them failed: the first failed rank's ``error`` message
    (prefixed with its rank), else ``None``. Lets the others stop with that message instead of
    waiting on a collective the failed one never reaches."""
    if world_size() == 1:
        return error
    errors = _gather_objects(error)
    return next((f"rank {r}: {e}" for r, e in enumerate(errors) if e is not None), None)


def _gather_objects(obj: object) -> list[object]:
    import torch.distributed as dist

    out: list[object] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
