"""Peak memory of a run: the CUDA allocator's peak, or the process's peak resident set on CPU."""

from __future__ import annotations

import sys

import torch

from ..checks import check_device

__all__ = ["peak_memory_mb", "reset_peak_memory", "start_peak"]


def peak_memory_mb(device: torch.device | str) -> float:
    """Peak memory in MiB. CUDA: ``torch.cuda.max_memory_allocated`` (tensors only, since the last
    :func:`reset_peak_memory`). CPU: peak resident set size of the whole process since it started
    (``resource.getrusage``), which includes Python, libraries and everything run before, unless
    :func:`start_peak` reset it."""
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


def start_peak(device: torch.device | str) -> None:
    """Start a new memory peak: CUDA's allocator peak, or on Linux the process's peak resident
    set (``/proc/self/clear_refs``), so each of several runs in one process reports its own peak."""
    reset_peak_memory(device)
    if check_device(device).type == "cpu":
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:  # not Linux: the peak stays the whole process's
            pass
