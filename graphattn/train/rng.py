"""Seeds and random-number-generator state: what a run draws from, and what a checkpoint keeps so a
resumed run draws exactly what an uninterrupted one would have."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from ..checks import MAX_SEED, check_int

__all__ = ["set_seed", "rng_state", "restore_rng_state"]


def set_seed(seed: int) -> None:
    """Seed python ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    check_int(seed, "seed", 0, MAX_SEED)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device (lazily when CUDA is not yet initialised)


def rng_state() -> dict[str, Any]:
    """Every global RNG state as tensors and plain types, so ``torch.load(weights_only=True)`` can read it back."""
    version, internal, gauss = random.getstate()
    state = np.random.get_state(legacy=True)
    assert isinstance(state, tuple)  # legacy=True: the (name, keys, pos, has_gauss, cached) tuple, never the dict
    _, keys, pos, has_gauss, cached = state
    return {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set every global RNG to ``state`` (from :func:`rng_state`); CUDA's only with the same device count."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
