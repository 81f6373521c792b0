"""Seeded node splits for graphs that publish none (Amazon, Coauthor): boolean masks, same seed same masks.

* :func:`random_split_masks`: a uniformly random permutation of the nodes dealt out as
  ``train`` / ``val`` / the rest, by default 60 / 20 / 20 % (the split Exphormer and NAGphormer
  report on Amazon and Coauthor; NAGphormer draws it per seed the same way).
* :func:`per_class_split_masks`: ``train_per_class`` nodes of every class for training and
  ``val_per_class`` for validation, the rest for testing (Shchur et al. 2018: 20 and 30).

Both draw from their own ``torch.Generator`` seeded with ``seed``, so they depend on nothing
but their arguments (not on the global RNG, not on the device).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..checks import MAX_SEED, check_int

__all__ = ["SplitMasks", "random_split_masks", "per_class_split_masks"]


class SplitMasks(NamedTuple):
    """Three disjoint boolean masks ``[N]`` that together cover every node."""

    train: Tensor
    val: Tensor
    test: Tensor


def _fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a fraction strictly between 0 and 1, got {value!r}")
    return float(value)


def _masks(num_nodes: int, train: Tensor, val: Tensor) -> SplitMasks:
    masks = [torch.zeros(num_nodes, dtype=torch.bool) for _ in range(2)]
    masks[0][train] = True
    masks[1][val] = True
    return SplitMasks(masks[0], masks[1], ~(masks[0] | masks[1]))


def random_split_masks(num_nodes: int, train: float = 0.6, val: float = 0.2, *, seed: int = 0) -> SplitMasks:
    """A random ``train`` / ``val`` / rest split of ``num_nodes`` nodes.

    ``floor(train * N)`` nodes go to training, ``floor(val * N)`` to validation and the
    remaining ``N - floor(train * N) - floor(val * N)`` to testing, chosen by one permutation
    drawn from ``torch.Generator().manual_seed(seed)``.

    Returns:
        :class:`SplitMasks` ``(train, val, test)``, boolean ``[N]``, disjoint, covering every node.

    Raises:
        ValueError: ``train`` / ``val`` are not fractions in (0, 1) with ``train + val < 1``, or
            ``num_nodes`` / ``seed`` are not integers (``num_nodes >= 1``, ``seed >= 0``).
    """
    check_int(num_nodes, "num_nodes")
    check_int(seed, "seed", 0, MAX_SEED)
    train, val = _fraction(train, "train"), _fraction(val, "val")
    if train + val >= 1:
        raise ValueError(f"train + val must leave nodes for testing (below 1), got {train} + {val}")
    order = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(seed))
    n_train, n_val = int(train * num_nodes), int(val * num_nodes)
    return _masks(num_nodes, order[:n_train], order[n_train:n_train + n_val])


def per_class_split_masks(y: Tensor, train_per_class: int = 20, val_per_class: int = 30, *, seed: int = 0) -> SplitMasks:
    """``train_per_class`` random nodes of every class for training, ``val_per_class`` more for
    validation, every other node for testing (Shchur et al. 2018's protocol with 20 and 30).

    Args:
        y: ``[N]`` integer class labels ``0 .. C-1``.
        train_per_class: training nodes per class. (default: 20)
        val_per_class: validation nodes per class. (default: 30)
        seed: seeds the choice. (default: 0)

    Returns:
        :class:`SplitMasks` ``(train, val, test)``: ``train`` holds ``C * train_per_class``
        nodes, ``val`` ``C * val_per_class``.

    Raises:
        TypeError: ``y`` is not an integer tensor.
        ValueError: ``y`` is not 1-D with labels >= 0, or a class has fewer than
            ``train_per_class + val_per_class`` nodes (the message names it).
    """
    if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"y must be an integer tensor of class labels, got {type(y).__name__}"
                        f"{'' if not isinstance(y, Tensor) else ' of dtype ' + str(y.dtype)}")
    if y.dim() != 1 or y.numel() == 0 or int(y.min()) < 0:
        raise ValueError(f"y must be a non-empty 1-D tensor of labels >= 0, got shape {tuple(y.shape)}")
    check_int(train_per_class, "train_per_class")
    check_int(val_per_class, "val_per_class", 0)
    check_int(seed, "seed", 0, MAX_SEED)
    y = y.cpu()
    counts = torch.bincount(y)
    need = train_per_class + val_per_class
    short = [(c, int(n)) for c, n in enumerate(counts.tolist()) if 0 < n < need]
    if short:
        raise ValueError(f"per_class_split_masks needs {need} nodes per class (train_per_class + val_per_class), "
                         f"but class(es) {short} (class, nodes) have fewer")
    gen = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in range(len(counts)):
        members = (y == c).nonzero().view(-1)
        members = members[torch.randperm(len(members), generator=gen)]
        train.append(members[:train_per_class])
        val.append(members[train_per_class:need])
    return _masks(len(y), torch.cat(train), torch.cat(val))
