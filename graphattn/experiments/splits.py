"""Splits of a task's examples (or a graph's nodes) into training, validation and test parts,
each drawn from its own seeded generator, so a split depends on its seed alone.

* :func:`carve`: a validation part carved from a training split (the sequence tasks);
* :func:`stratified_folds`: k folds holding each class in proportion (MUTAG's cross-validation);
* :func:`random_split`: seeded random fractions, e.g. the 60 / 20 / 20 node split of the Amazon and
  Coauthor graphs that Exphormer and NAGphormer use;
* :func:`per_class_split`: ``k`` training (and validation) nodes per class, the rest test
  (Shchur et al.'s 20 per class, 30 per class for validation).

The node splits return boolean masks ``{"train", "val", "test"}`` as PyG's ``Data`` holds them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_float, check_int

__all__ = ["carve", "stratified_folds", "random_split", "per_class_split", "SPLITS"]

#: The parts of every split, in order.
SPLITS = ("train", "val", "test")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def carve(n: int, seed: int, val_fraction: float, limit: int | None = None) -> tuple[list[int], list[int]]:
    """``(train, val)`` indices into a training split of ``n`` examples: a seeded shuffle, cut to
    its first ``limit`` (all when ``None``), of which the first ``max(1, round(val_fraction * m))``
    are validation. A smaller ``limit`` keeps a prefix of the same shuffle."""
    check_float(val_fraction, "val_fraction", above=0, below=1)
    order = torch.randperm(n, generator=_generator(seed)).tolist()
    order = order[:limit] if limit is not None else order
    n_val = max(1, round(val_fraction * len(order)))
    if len(order) - n_val < 1:
        raise ValueError(f"limit={limit} leaves no training examples after the validation split")
    return order[n_val:], order[:n_val]


def stratified_folds(labels: Tensor, folds: int, seed: int) -> Tensor:
    """A fold id in ``0 .. folds-1`` per example; each class is shuffled (``seed``) and dealt
    round-robin, so every fold holds each class in proportion (sizes differ by at most one)."""
    gen = _generator(seed)
    order = torch.cat([idx[torch.randperm(idx.numel(), generator=gen)]
                       for idx in (torch.nonzero(labels == c).flatten() for c in labels.unique())])
    fold = torch.empty_like(labels)
    fold[order] = torch.arange(labels.numel()) % folds
    return fold


def _masks(n: int, parts: dict[str, Tensor]) -> dict[str, Tensor]:
    masks = {}
    for name in SPLITS:
        mask = torch.zeros(n, dtype=torch.bool)
        mask[parts[name]] = True
        masks[name] = mask
    return masks


def random_split(n: int, seed: int, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> dict[str, Tensor]:
    """Masks of a seeded random split of ``n`` nodes into training, validation and test parts of
    ``floor(f * n)`` nodes for the first two fractions and the rest for the third."""
    check_int(n, "n")
    if len(fractions) != 3 or any(not isinstance(f, (int, float)) or f < 0 for f in fractions) \
            or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three shares >= 0 that sum to 1, got {fractions!r}")
    order = torch.randperm(n, generator=_generator(seed))
    n_train, n_val = int(fractions[0] * n), int(fractions[1] * n)
    return _masks(n, {"train": order[:n_train], "val": order[n_train:n_train + n_val],
                      "test": order[n_train + n_val:]})


def per_class_split(labels: Tensor, seed: int, train_per_class: int = 20, val_per_class: int = 30) -> dict[str, Tensor]:
    """Masks of ``train_per_class`` training and ``val_per_class`` validation nodes drawn from
    each class (seeded), every other node test. A class with too few nodes is refused by name."""
    check_int(train_per_class, "train_per_class")
    check_int(val_per_class, "val_per_class", 0)
    gen = _generator(seed)
    train, val, test = [], [], []
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).flatten()
        if idx.numel() < train_per_class + val_per_class:
            raise ValueError(f"class {c} has {idx.numel()} nodes, fewer than train_per_class + val_per_class "
                             f"= {train_per_class + val_per_class}")
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        train.append(idx[:train_per_class])
        val.append(idx[train_per_class:train_per_class + val_per_class])
        test.append(idx[train_per_class + val_per_class:])
    return _masks(labels.numel(), {"train": torch.cat(train), "val": torch.cat(val), "test": torch.cat(test)})
