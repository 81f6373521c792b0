"""Batches of sequences / graphs as one block-diagonal attention graph.

A batch of ``B`` sequences with lengths ``sizes`` is one graph on ``N = sum(sizes)`` nodes:
sequence ``b`` occupies the nodes ``ptr[b] .. ptr[b+1] - 1`` and the pattern is laid on
each sequence with its own positions ``0 .. sizes[b] - 1``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_allocation, check_int_list, check_tensor
from .base import Pattern

__all__ = ["check_sizes", "sizes_from_batch", "positions", "batch_edge_index", "batch_dense_mask", "pad_sequences",
           "unpad_sequences"]


def check_sizes(sizes: object, num_nodes: int | None = None, name: str = "lengths") -> Tensor:
    """Validate sequence lengths: a list of ints or a 1-D integer tensor, non-negative, summing to
    ``num_nodes`` (``3.5`` is refused, not truncated)."""
    sizes = check_int_list(sizes, name)
    if num_nodes is not None and int(sizes.sum()) != num_nodes:
        raise ValueError(f"{name} must sum to the number of nodes {num_nodes}, got sum {int(sizes.sum())}")
    return sizes


def sizes_from_batch(batch: Tensor, num_nodes: int | None = None) -> Tensor:
    """Sequence lengths from a PyG ``batch`` vector (graph id per node, sorted, as PyG builds it)."""
    check_tensor(batch, "batch", kind="int", dims=1, shape="[N] (the graph id of each node)")
    if num_nodes is not None and batch.numel() != num_nodes:
        raise ValueError(f"batch must have one entry per node ({num_nodes}), got {batch.numel()}")
    if batch.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=batch.device)
    if bool((batch[1:] < batch[:-1]).any()) or int(batch[0]) < 0:
        raise ValueError("batch must be sorted and non-negative (nodes of each graph contiguous, as in PyG)")
    graphs = int(batch[-1]) + 1  # ids with gaps are empty graphs, each with its own size and layout entries
    check_allocation(32 * graphs, f"a batch vector whose largest graph id is {graphs - 1} (for {batch.numel()} nodes)",
                     batch.device, "number the graphs 0 .. B-1 as PyG's Batch does")
    return torch.bincount(batch, minlength=graphs)


def positions(sizes: Tensor) -> Tensor:
    """Position of every node inside its own sequence: ``cat([arange(s) for s in sizes])``."""
    ptr = torch.cumsum(sizes, 0) - sizes
    return torch.arange(int(sizes.sum()), device=sizes.device) - ptr.repeat_interleave(sizes)


def pad_sequences(x: Tensor, batch: Tensor, position: Tensor, num: int, length: int) -> Tensor:
    """``x [N, ...] -> [B, L, ...]``: node ``i`` at row ``position[i]`` of sequence ``batch[i]``, zeros
    after each sequence's end (``B = num``, ``L = length``; :func:`unpad_sequences` undoes it)."""
    out = x.new_zeros(num * length, *x.shape[1:]).index_copy(0, batch * length + position, x)
    return out.view(num, length, *x.shape[1:])


def unpad_sequences(x: Tensor, batch: Tensor, position: Tensor) -> Tensor:
    """``[B, L, ...] -> [N, ...]``, the rows :func:`pad_sequences` filled."""
    return x.flatten(0, 1).index_select(0, batch * x.size(1) + position)


def batch_edge_index(pattern: Pattern, sizes: Tensor) -> Tensor:
    """The block-diagonal ``edge_index`` of ``pattern`` laid on each sequence; sorted by query."""
    sizes = check_sizes(sizes)
    offsets = (torch.cumsum(sizes, 0) - sizes).tolist()
    cache: dict[int, Tensor] = {}
    parts = []
    for size, offset in zip(sizes.tolist(), offsets):
        if size not in cache:
            cache[size] = pattern.edge_index(size)
        parts.append(cache[size] + offset)
    if not parts:
        return torch.empty(2, 0, dtype=torch.long, device=sizes.device)
    return torch.cat(parts, dim=1).to(sizes.device)


def batch_dense_mask(pattern: Pattern, sizes: Tensor) -> Tensor:
    """The ``[N, N]`` block-diagonal mask (``[query, key]``) of ``pattern`` per sequence."""
    sizes = check_sizes(sizes)
    n = int(sizes.sum())
    check_allocation(n * n, f"batch_dense_mask of {n} nodes, N x N booleans", sizes.device,
                     "use batch_edge_index, which lists only the edges")
    out = torch.zeros(n, n, dtype=torch.bool, device=sizes.device)
    start = 0
    for size in sizes.tolist():
        out[start : start + size, start : start + size] = pattern.dense_mask(size, device=sizes.device)
        start += size
    return out
