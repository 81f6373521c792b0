"""Several processes (``torchrun``, DistributedDataParallel): who this process is, joining the
group, and the few collectives the experiments need. Without ``torch.distributed`` every helper
answers as the only process."""

from __future__ import annotations

import datetime
import os
from typing import Any, TypeVar

import torch

T = TypeVar("T")

__all__ = ["rank", "world_size", "is_main", "init_distributed", "all_reduce_sum", "agree", "gather_objects"]


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
    errors = gather_objects(error)
    return next((f"rank {r}: {e}" for r, e in enumerate(errors) if e is not None), None)


def gather_objects(obj: T) -> list[T]:
    """``obj`` of every process, in rank order (``[obj]`` with one process); every process
    gives an object of the same type."""
    if world_size() == 1:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()  # each slot becomes a process's T
    dist.all_gather_object(out, obj)
    return out
