"""Patterns for real graphs: the graph's own edges, self-loops, virtual nodes, expander edges.

They compose with ``|`` like the sequence patterns, e.g. Exphormer's attention graph is
``GraphEdges(ei) | SelfLoops() | VirtualNodes(1) | Expander(4)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import Tensor

from .base import Pattern, check_fields, check_num_nodes
from .pieces import Pieces

__all__ = ["GraphEdges", "SelfLoops", "VirtualNodes", "Expander", "check_edge_index"]


def check_edge_index(edge_index: object, num_nodes: int | None = None, name: str = "edge_index") -> Tensor:
    """Validate a PyG ``edge_index``: an integer ``[2, E]`` tensor with ids in ``[0, num_nodes)``."""
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [2, E], got {type(edge_index).__name__}")
    if edge_index.dtype.is_floating_point or edge_index.dtype.is_complex or edge_index.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {edge_index.dtype}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{name} must have shape [2, E], got {list(edge_index.shape)}")
    if edge_index.is_meta:
        raise ValueError(f"{name} is a meta tensor: it holds no node ids to lay a graph on; build the graph from real "
                         "edges, then move it with graph.to('meta') for shape inference")
    if edge_index.numel():
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0:
            raise ValueError(f"{name} has a negative node id ({lo}); ids must be >= 0")
        if num_nodes is not None and hi >= num_nodes:
            raise ValueError(f"{name} has node id {hi} but there are only {num_nodes} nodes (ids must be < {num_nodes})")
    return edge_index.long()


def _member(keys: Tensor, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
    """Whether ``q * n + k`` is in the sorted unique ``keys``, broadcasting."""
    code = q_idx * n + k_idx
    keys = keys.to(code.device)
    if keys.numel() == 0:
        return torch.zeros_like(code, dtype=torch.bool)
    pos = torch.searchsorted(keys, code.contiguous()).clamp(max=keys.numel() - 1)
    return keys[pos] == code


@dataclass(frozen=True, eq=False)
class GraphEdges(Pattern):
    """The graph's own (directed) edges: query ``i`` attends to ``j`` iff ``(j, i)`` is an edge.

    ``n`` may exceed the graph's node count (appended virtual nodes have no graph edges).
    Duplicate edges are merged; self-loops are kept only if the graph has them.
    """

    edges: Tensor
    num_nodes: int | None = None
    _keys: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ei = check_edge_index(self.edges, self.num_nodes, name="edges")
        num = self.num_nodes if self.num_nodes is not None else (int(ei.max()) + 1 if ei.numel() else 0)
        check_num_nodes(num, "num_nodes")
        object.__setattr__(self, "edges", ei)
        object.__setattr__(self, "num_nodes", num)
        # Sorted unique codes query * num + key: O(E) memory, lookups by binary search.
        object.__setattr__(self, "_keys", torch.unique(ei[1] * max(num, 1) + ei[0]))

    def validate(self, n: int) -> None:
        check_num_nodes(n)
        if n < self.num_nodes:
            raise ValueError(f"GraphEdges spans {self.num_nodes} nodes; n={n} is too small")

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        self.validate(n)
        inside = (q_idx < self.num_nodes) & (k_idx < self.num_nodes)
        m = max(self.num_nodes, 1)
        return inside & _member(self._keys, q_idx.clamp(max=m - 1), k_idx.clamp(max=m - 1), m)

    def generate_edges(self, n: int) -> Tensor:
        m = max(self.num_nodes, 1)
        return torch.stack([self._keys % m, self._keys // m])  # codes sort by query, then key

    def max_edges(self, n: int) -> int:
        return int(self._keys.numel())

    def __repr__(self) -> str:
        return f"GraphEdges(num_edges={self._keys.numel()}, num_nodes={self.num_nodes})"


@dataclass(frozen=True)
class SelfLoops(Pattern):
    """Every node attends to itself."""

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        return q_idx == k_idx

    def generate_edges(self, n: int) -> Tensor:
        idx = torch.arange(n)
        return torch.stack([idx, idx])

    def max_edges(self, n: int) -> int:
        return n

    def pieces(self) -> Pieces:
        return Pieces(self, 0, 0)

    def __repr__(self) -> str:
        return "SelfLoops()"


@dataclass(frozen=True)
class VirtualNodes(Pattern):
    """``count`` virtual nodes appended after the graph's nodes, each global.

    On ``n`` nodes the last ``count`` (ids ``n - count .. n - 1``) attend to all nodes and
    are attended by all. The data must carry them: ``extra_nodes`` tells converters and
    models how many to append.
    """

    count: int = 1

    def __post_init__(self) -> None:
        check_fields(self, count=1)

    @property
    def extra_nodes(self) -> int:
        return self.count

    def validate(self, n: int) -> None:
        check_num_nodes(n)
        if 0 < n < self.count:
            raise ValueError(f"VirtualNodes({self.count}) needs n >= {self.count}, got n={n}")

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        first = n - self.count
        return (q_idx >= first) | (k_idx >= first)

    def generate_edges(self, n: int) -> Tensor:
        from .sequence import Global

        return Global(tuple(range(n - self.count, n))).generate_edges(n)

    def max_edges(self, n: int) -> int:
        return min(n * n, 2 * self.count * n)

    def pieces(self) -> Pieces:
        return Pieces(global_nodes=tuple(range(-self.count, 0)))  # the last count nodes

    def __repr__(self) -> str:
        return f"VirtualNodes(count={self.count})"


#: The most permutation entries an expander may draw (degree x n): about 1 GB of int64 codes.
EXPANDER_MAX_DRAWS = 1 << 27


@lru_cache(maxsize=32)
def _expander_keys(degree: int, seed: int, n: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    idx = torch.arange(n)
    src, dst = [], []
    for _ in range(degree // 2):  # each permutation and its inverse add one in- and out-edge
        perm = torch.randperm(n, generator=gen)
        src += [idx, perm]
        dst += [perm, idx]
    src_t, dst_t = torch.cat(src), torch.cat(dst)
    keep = src_t != dst_t
    return torch.unique(dst_t[keep] * n + src_t[keep])


@dataclass(frozen=True)
class Expander(Pattern):
    """Random expander edges as in Exphormer: a seeded random ``degree``-regular graph.

    Built from ``degree / 2`` random permutations ``p`` and their inverses (edges
    ``i -> p(i)`` and ``p(i) -> i``), then without self-loops and duplicates, so every node
    has at most ``degree`` in-neighbours and the graph is symmetric.
    """

    degree: int
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, degree=2, seed=0)
        if self.degree % 2:
            raise ValueError(f"Expander degree must be even (pairs of permutations), got {self.degree}")

    def validate(self, n: int) -> None:
        check_num_nodes(n)
        if self.degree * n > EXPANDER_MAX_DRAWS:
            raise ValueError(f"Expander(degree={self.degree}) on n={n} nodes draws degree * n = {self.degree * n} "
                             f"edges, which must be at most 2**27 = {EXPANDER_MAX_DRAWS} to be allocated; "
                             "use a smaller degree")

    def _keys(self, n: int) -> Tensor:
        self.validate(n)
        return _expander_keys(self.degree, self.seed, n)

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        return _member(self._keys(n), q_idx, k_idx, max(n, 1))

    def generate_edges(self, n: int) -> Tensor:
        keys = self._keys(n)
        return torch.stack([keys % n, keys // n])

    def max_edges(self, n: int) -> int:
        return n * min(n, self.degree)

    def __repr__(self) -> str:
        return f"Expander(degree={self.degree}, seed={self.seed})"
