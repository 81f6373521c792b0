"""Checks shared by the encodings: positions in, clear errors out."""

from __future__ import annotations

from torch import Tensor

from ...checks import check_tensor

__all__ = ["check_coords", "check_heads"]


def check_coords(pos: object, owner: str, num_nodes: int | None = None) -> Tensor:
    """``pos`` ``[N]`` or ``[N, D]`` (real-valued, ``D >= 1``) as ``[N, D]`` coordinates."""
    check_tensor(pos, f"{owner}: pos", kind="real", finite=True, shape="[N] or [N, D]")
    if pos.dim() not in (1, 2) or (pos.dim() == 2 and pos.size(1) == 0):
        raise ValueError(f"{owner}: pos must have shape [N] or [N, D] with D >= 1, got {list(pos.shape)}")
    if num_nodes is not None and pos.size(0) != num_nodes:
        raise ValueError(f"{owner}: pos must have one row per node (N={num_nodes}), got {list(pos.shape)}")
    return pos.view(-1, 1) if pos.dim() == 1 else pos


def check_heads(q: Tensor, heads: int, owner: str) -> None:
    check_tensor(q, f"{owner}: q", kind="float", shape=f"[N, {heads}, C]")
    if q.dim() != 3 or q.size(1) != heads:
        raise ValueError(f"{owner}(heads={heads}): q must have shape [N, {heads}, C], got {list(q.shape)}")
