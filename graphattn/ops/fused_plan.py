"""The fused kernel's plan: both sorted views of an edge list and the work items of each pass.

The forward and the backward's destination pass walk the **destination-sorted CSR** (row ``i``
= query, its keys ``j`` at ``rowptr[i]:rowptr[i + 1]``); the backward's source pass walks the
**source-sorted transpose** (row ``j`` = key, the queries that read it), so each pass writes
every output row from exactly one place and needs no atomics. ``perm`` / ``t_perm`` map a
sorted position to the caller's edge (stable sorts: duplicate edges keep their order), so the
kernels read per-edge inputs (biases, edge features) and write per-edge gradients in the
caller's order without a permuted copy.

**Degree-aware tiling** (:class:`Tiling`): a node with more than ``segment`` edges is cut into
equal pieces, each a program of its own, whose partial results a second small kernel merges in
a fixed order (deterministic; the rest of the nodes write their row directly). Work items are
sorted by length, longest first, and bucketed: long items walk their edges in wide tiles, short
ones (most nodes of a real graph) in narrow ones. When every query has the same number of keys
``D`` the CSR is an ELL layout (``[N, D]`` key lists): the forward and destination pass then
need no work items at all (query ``i`` reads ``col[i D:(i + 1) D]``).

Everything is built with torch ops, once per graph; sizes the launches need are Python ints.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

__all__ = ["FusedPlan", "Tiling", "plan_fused", "SEGMENT", "SHORT"]

#: Default longest run of edges one program walks; longer rows are split into equal pieces.
SEGMENT = 1024
#: Items with at most this many edges form the short bucket (narrow tiles).
SHORT = 16


@dataclass(frozen=True)
class Tiling:
    """The programs of one pass over a CSR (``rowptr [N + 1]``), longest first.

    Item ``w`` handles sorted edges ``start[w]:end[w]`` of node ``node[w]`` (an isolated node is
    one empty item, so that every row is written). ``slot[w]`` is ``-1`` when the item is the
    whole node, else the row of the partial-results buffer it writes; the partials of split node
    ``split_node[r]`` are slots ``split_ptr[r]:split_ptr[r + 1]``, merged in that order.
    ``buckets`` are ``(first item, items, longest item)`` runs of the item order.
    """

    node: Tensor
    start: Tensor
    end: Tensor
    slot: Tensor
    split_node: Tensor
    split_ptr: Tensor
    buckets: tuple[tuple[int, int, int], ...]
    num_slots: int

    def to(self, device: torch.device | str) -> Tiling:
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})


@dataclass(frozen=True)
class FusedPlan:
    """Both sorted views of an edge list on ``num_nodes`` nodes, with the work of each pass.

    ``rowptr [N + 1], col [E], perm [E]``: the destination-sorted CSR (``col`` the keys, ``perm``
    sorted position -> caller's edge); ``t_rowptr, t_col, t_perm``: the source-sorted transpose
    (``t_col`` the queries). ``dst`` / ``src`` tile the forward and destination pass / the source
    pass. ``degree`` is every query's number of keys when they are all equal (the ELL layout,
    :attr:`ell`), else ``None``. Index tensors are int32 where they fit.
    """

    num_nodes: int
    rowptr: Tensor
    col: Tensor
    perm: Tensor
    t_rowptr: Tensor
    t_col: Tensor
    t_perm: Tensor
    dst: Tiling
    src: Tiling
    degree: int | None

    @property
    def num_edges(self) -> int:
        return int(self.col.numel())

    @property
    def ell(self) -> Tensor | None:
        """``[N, D]`` the keys of every query, when they all have ``D`` of them (a view of ``col``)."""
        return None if self.degree is None else self.col.view(self.num_nodes, self.degree)

    @property
    def device(self) -> torch.device:
        return self.col.device

    def to(self, device: torch.device | str) -> FusedPlan:
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), (Tensor, Tiling))}
        return replace(self, **moved)

    def flatten(self) -> tuple[list[Tensor], list[int]]:
        """Its tensors and its integers, in a fixed order (what the custom op takes), undone by
        :meth:`unflatten`."""
        tensors = [self.rowptr, self.col, self.perm, self.t_rowptr, self.t_col, self.t_perm]
        ints = [self.num_nodes, -1 if self.degree is None else self.degree]
        for tiling in (self.dst, self.src):
            tensors += [tiling.node, tiling.start, tiling.end, tiling.slot, tiling.split_node, tiling.split_ptr]
            ints += [tiling.num_slots, len(tiling.buckets), *(x for b in tiling.buckets for x in b)]
        return tensors, ints

    @classmethod
    def unflatten(cls, tensors: list[Tensor], ints: list[int]) -> FusedPlan:
        num_nodes, degree, at = ints[0], ints[1], 2
        tilings = []
        for first in (6, 12):
            slots, count = ints[at], ints[at + 1]
            flat = ints[at + 2:at + 2 + 3 * count]
            buckets = tuple((flat[3 * b], flat[3 * b + 1], flat[3 * b + 2]) for b in range(count))
            node, start, end, slot, split_node, split_ptr = tensors[first:first + 6]
            tilings.append(Tiling(node, start, end, slot, split_node, split_ptr, buckets=buckets, num_slots=slots))
            at += 2 + 3 * count
        rowptr, col, perm, t_rowptr, t_col, t_perm = tensors[:6]
        dst, src = tilings
        return cls(num_nodes, rowptr, col, perm, t_rowptr, t_col, t_perm, dst, src, degree=None if degree < 0 else degree)


def plan_fused(edge_index: Tensor, num_nodes: int, *, segment: int = SEGMENT, ell: bool = True,
               csr: tuple[Tensor, Tensor, Tensor] | None = None) -> FusedPlan:
    """The :class:`FusedPlan` of ``edge_index [2, E]`` (row 0 keys ``j``, row 1 queries ``i``;
    duplicate edges allowed) on ``num_nodes`` nodes.

    Args:
        segment: the most edges one program walks; longer rows (a hub's keys, or the queries a
            hub's key reaches) are split into equal pieces merged afterwards.
        ell: use the ELL layout when every query has the same number of keys (at most
            ``segment``).
        csr: the graph's own ``(rowptr, col, perm)`` by (query, key) (``AttentionGraph.csr()``),
            reused instead of sorting again.
    """
    if isinstance(edge_index, bool) or not isinstance(edge_index, Tensor):
        raise TypeError(f"edge_index must be a long tensor [2, E], got {type(edge_index).__name__}")
    if edge_index.dtype != torch.long or edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must be a long tensor of shape [2, E], got {edge_index.dtype} {list(edge_index.shape)}")
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 0:
        raise ValueError(f"num_nodes must be an int >= 0, got {num_nodes!r}")
    if isinstance(segment, bool) or not isinstance(segment, int) or segment < 1:
        raise ValueError(f"segment must be a positive int, got {segment!r}")
    if edge_index.numel() and not (0 <= int(edge_index.min()) and int(edge_index.max()) < num_nodes):
        raise ValueError(f"edge_index must hold node ids in [0, {num_nodes}), got values in "
                         f"[{int(edge_index.min())}, {int(edge_index.max())}]")
    src, dst = edge_index
    wide = max(num_nodes + 1, edge_index.size(1) + 1) >= 2**31
    index = torch.long if wide else torch.int32
    rowptr, col, perm = _sorted(dst, src, num_nodes) if csr is None else csr
    t_rowptr, t_col, t_perm = _sorted(src, dst, num_nodes)
    counts = rowptr.diff()
    degree = None
    if ell and num_nodes and edge_index.size(1) and bool((counts == counts[0]).all()) and int(counts[0]) <= segment:
        degree = int(counts[0])
    return FusedPlan(num_nodes, rowptr.to(index), col.to(index), perm.to(index), t_rowptr.to(index), t_col.to(index),
                     t_perm.to(index), _tiling(rowptr, segment, index), _tiling(t_rowptr, segment, index), degree)


def _sorted(by: Tensor, other: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(rowptr [n + 1], other sorted by (``by``, ``other``) [E], perm [E])``, a stable sort (as
    ``AttentionGraph.csr()`` sorts, duplicates keeping their order)."""
    perm = torch.sort(by * max(n, 1) + other, stable=True).indices
    counts = torch.bincount(by, minlength=n)
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)]), other[perm], perm


def _tiling(rowptr: Tensor, segment: int, index: torch.dtype) -> Tiling:
    counts = rowptr.diff()  # (N,)
    pieces = torch.clamp((counts + segment - 1) // segment, min=1)  # an isolated node is one empty item
    node = torch.repeat_interleave(torch.arange(counts.numel(), device=rowptr.device), pieces)  # (W,)
    first = torch.cumsum(pieces, 0) - pieces
    piece = torch.arange(node.numel(), device=rowptr.device) - first[node]
    total, count = counts[node], pieces[node]
    start = rowptr[node] + piece * total // count  # equal pieces
    end = rowptr[node] + (piece + 1) * total // count
    split = count > 1
    slot = torch.where(split, torch.cumsum(split.long(), 0) - 1, -1)  # a split node's slots are consecutive
    split_node = torch.nonzero(pieces > 1).flatten()
    split_ptr = torch.cat([pieces.new_zeros(1), torch.cumsum(pieces[split_node], 0)])
    length = end - start
    order = torch.sort(length, descending=True, stable=True).indices  # longest first: the tail is short
    length = length[order]
    short = int((length > SHORT).sum())
    buckets = tuple((first, size, int(length[first])) for first, size in ((0, short), (short, length.numel() - short))
                    if size)
    return Tiling(node[order].to(index), start[order].to(index), end[order].to(index), slot[order].to(index),
                  split_node.to(index), split_ptr.to(index), buckets, int(split.sum()))
