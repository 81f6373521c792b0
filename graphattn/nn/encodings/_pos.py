"""Checks shared by the encodings: positions in, clear errors out."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_coords", "check_heads"]




def check_coords(pos: object, owner: str, num_nodes: int | None = None) -> Tensor:
    """``pos`` ``[N]`` or ``[N, D]`` (real-valued, ``D >= 1``) as ``[N, D]`` coordinates."""
    if not isinstance(pos, Tensor):
        raise TypeError(f"{owner}: pos must be a tensor of shape [N] or [N, D], got {type(pos).__name__}")
    if pos.dtype == torch.bool or pos.is_complex():
        raise TypeError(f"{owner}: pos must hold integer or real positions, got dtype {pos.dtype}")
    if pos.dim() not in (1, 2) or (pos.dim() == 2 and pos.size(1) == 0):
        raise ValueError(f"{owner}: pos must have shape [N] or [N, D] with D >= 1, got {list(pos.shape)}")
    if num_nodes is not None and pos.size(0) != num_nodes:
        raise ValueError(f"{owner}: pos must have one row per node (N={num_nodes}), got {list(pos.shape)}")
    return pos.view(-1, 1) if pos.dim() == 1 else pos


def check_heads(q: Tensor, heads: int, owner: str) -> None:
    if q.dim() != 3 or q.size(1) != heads:
        raise ValueError(f"{owner}(heads={heads}): q must have shape [N, {heads}, C], got {list(q.shape)}")
