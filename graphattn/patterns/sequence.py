"""Sequence patterns: full, local window, causal, stride (dilated), global tokens, random keys.

Positions are node indices ``0 .. n-1``; the distance of key ``j`` from query ``i`` is ``j - i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from ..checks import MAX_INDEX, check_int
from .base import Pattern, check_fields, check_num_nodes, sort_edges
from .pieces import INF, Pieces

__all__ = ["Full", "Window", "Causal", "Stride", "Global", "Random"]


def _offset_edges(n: int, offsets: Tensor) -> Tensor:
    """Edges ``(i + d) -> i`` for each query ``i`` and sorted offset ``d``, clipped to ``[0, n)``."""
    q = torch.arange(n)[:, None].expand(n, offsets.numel())
    k = q + offsets[None, :]
    valid = (k >= 0) & (k < n)
    return torch.stack([k[valid], q[valid]])  # row-major order: sorted by query, then key


@dataclass(frozen=True)
class Full(Pattern):
    """Every query attends to every key (standard self-attention, self included)."""

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        return torch.ones_like(q_idx, dtype=torch.bool) | torch.ones_like(k_idx, dtype=torch.bool)

    def generate_edges(self, n: int) -> Tensor:
        idx = torch.arange(n)
        return torch.stack([idx.repeat(n), idx.repeat_interleave(n)])

    def pieces(self) -> Pieces:
        return Pieces(self, INF, INF, full=True)

    def __repr__(self) -> str:
        return "Full()"


@dataclass(frozen=True, init=False)
class Window(Pattern):
    """Local (sliding window / truncated) attention: query ``i`` sees keys ``i - left .. i + right``.

    ``Window(r)`` is symmetric (``2r + 1`` keys including self); ``Window(left=r, right=0)`` is
    causal-local (streaming / truncated attention over the past ``r`` frames).
    """

    left: int
    right: int

    def __init__(self, radius: int | None = None, *, left: int | None = None, right: int | None = None):
        if radius is not None:
            if left is not None or right is not None:
                raise ValueError("Window takes either radius or left/right, not both")
            left = right = check_int(radius, "radius", 0, MAX_INDEX)
        elif left is None and right is None:
            raise ValueError("Window needs radius, or left and/or right reach")
        object.__setattr__(self, "left", 0 if left is None else left)
        object.__setattr__(self, "right", 0 if right is None else right)
        check_fields(self, left=0, right=0)

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        d = k_idx - q_idx
        return (d >= -self.left) & (d <= self.right)

    def generate_edges(self, n: int) -> Tensor:
        return _offset_edges(n, torch.arange(-min(self.left, n - 1), min(self.right, n - 1) + 1))

    def max_edges(self, n: int) -> int:
        return n * min(n, self.left + self.right + 1)

    def pieces(self) -> Pieces:
        return Pieces(self, self.left, self.right)

    def __repr__(self) -> str:
        if self.left == self.right:
            return f"Window(radius={self.left})"
        return f"Window(left={self.left}, right={self.right})"


@dataclass(frozen=True)
class Causal(Pattern):
    """Query ``i`` attends to keys ``j <= i`` (autoregressive attention)."""

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        return k_idx <= q_idx

    def generate_edges(self, n: int) -> Tensor:
        q, k = torch.tril_indices(n, n)
        return torch.stack([k, q])

    def max_edges(self, n: int) -> int:
        return n * (n + 1) // 2

    def pieces(self) -> Pieces:
        return Pieces(self, INF, 0)

    def __repr__(self) -> str:
        return "Causal()"


@dataclass(frozen=True)
class Stride(Pattern):
    """Dilated attention: keys at distances that are multiples of ``stride`` (self included).

    With ``reach`` the distance is also limited: ``|j - i| <= reach`` (Longformer's dilated
    window is ``Stride(d, reach=r * d)``). Compose with ``Causal()`` for the Sparse
    Transformer's strided pattern.
    """

    stride: int
    reach: int | None = None

    def __post_init__(self) -> None:
        check_fields(self, stride=1, reach=0)

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        d = k_idx - q_idx
        out = d % self.stride == 0
        if self.reach is not None:
            out = out & (d.abs() <= self.reach)
        return out

    def _reach(self, n: int) -> int:
        return n - 1 if self.reach is None else min(self.reach, n - 1)

    def generate_edges(self, n: int) -> Tensor:
        m = self._reach(n) // self.stride
        return _offset_edges(n, torch.arange(-m, m + 1) * self.stride)

    def max_edges(self, n: int) -> int:
        return n * min(n, 2 * (self._reach(n) // self.stride) + 1) if n else 0

    def pieces(self) -> Pieces:
        reach = INF if self.reach is None else self.reach
        return Pieces(self, reach, reach, stride=self.stride, reach=self.reach)

    def __repr__(self) -> str:
        if self.reach is None:
            return f"Stride(stride={self.stride})"
        return f"Stride(stride={self.stride}, reach={self.reach})"


@dataclass(frozen=True)
class Global(Pattern):
    """Global tokens: the listed nodes attend to all nodes and are attended by all.

    Negative indices count from the end (``-1`` is the last node), as in Python.
    """

    nodes: tuple[int, ...]

    def __post_init__(self) -> None:
        raw = self.nodes
        if isinstance(raw, (list, tuple, range)):
            nodes = tuple(raw)
        elif isinstance(raw, int) and not isinstance(raw, bool):
            nodes = (raw,)
        else:  # None, a dict (its keys), a set (no order), a str: say what is expected
            raise TypeError(f"Global nodes must be an int or a list / tuple of ints, got {type(raw).__name__} {raw!r}")
        for g in nodes:
            if isinstance(g, bool) or not isinstance(g, int):
                raise TypeError(f"Global nodes must be ints, got {type(g).__name__} {g!r}")
            check_int(g, "Global nodes", -MAX_INDEX, MAX_INDEX)
        object.__setattr__(self, "nodes", nodes)

    def resolve(self, n: int) -> Tensor:
        """The global node ids for ``n`` nodes, non-negative, sorted and unique."""
        self.validate(n)
        return torch.tensor(sorted({g % n for g in self.nodes}) if n else [], dtype=torch.long)

    def validate(self, n: int) -> None:
        check_num_nodes(n)
        bad = [g for g in self.nodes if not -n <= g < n]
        if bad and n > 0:
            raise ValueError(f"Global nodes must lie in [-{n}, {n}) for n={n}, got {bad}")

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        g = self.resolve(n).to(q_idx.device)
        return torch.isin(q_idx, g) | torch.isin(k_idx, g)

    def generate_edges(self, n: int) -> Tensor:
        g = self.resolve(n)
        idx = torch.arange(n)
        rows_k, rows_q = idx.repeat(g.numel()), g.repeat_interleave(n)  # global queries, all keys
        cols_k, cols_q = g.repeat(n), idx.repeat_interleave(g.numel())  # all queries, global keys
        return sort_edges(torch.cat([rows_k, cols_k]), torch.cat([rows_q, cols_q]), n, unique=True)

    def max_edges(self, n: int) -> int:
        return min(n * n, 2 * len(self.nodes) * n)

    def pieces(self) -> Pieces:
        return Pieces(global_nodes=self.nodes)

    def __repr__(self) -> str:
        return f"Global(nodes={self.nodes})"


@lru_cache(maxsize=32)
def _random_table(per_query: int, seed: int, n: int) -> Tensor:
    """``[n, per_query]`` distinct random keys per query, sorted per row; seeded."""
    gen = torch.Generator().manual_seed(seed)
    if 2 * per_query >= n:  # dense regime: E is Theta(n^2) anyway
        return torch.rand(n, n, generator=gen).argsort(dim=1)[:, :per_query].sort(dim=1).values
    table = torch.randint(n, (n, per_query), generator=gen)
    while True:  # resample duplicates; few rounds when per_query << n
        table = table.sort(dim=1).values
        dup = torch.zeros_like(table, dtype=torch.bool)
        dup[:, 1:] = table[:, 1:] == table[:, :-1]
        if not dup.any():
            return table
        table[dup] = torch.randint(n, (int(dup.sum()),), generator=gen)


@dataclass(frozen=True)
class Random(Pattern):
    """BigBird's random attention: each query attends to ``per_query`` distinct random keys.

    The keys are drawn uniformly from ``0 .. n-1`` (self may be drawn) with a generator seeded
    by ``seed``, so the same ``(per_query, seed, n)`` always gives the same graph.
    """

    per_query: int
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, per_query=0, seed=0)

    def validate(self, n: int) -> None:
        check_num_nodes(n)
        if self.per_query > n and n > 0:
            raise ValueError(f"Random per_query={self.per_query} asks for more distinct keys than n={n} nodes")

    def table(self, n: int) -> Tensor:
        """The ``[n, per_query]`` key table: row ``i`` lists the random keys of query ``i``."""
        self.validate(n)
        return _random_table(self.per_query, self.seed, n)

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        table = self.table(n).to(q_idx.device)
        return (table[q_idx] == k_idx[..., None]).any(dim=-1)

    def generate_edges(self, n: int) -> Tensor:
        table = self.table(n)
        q = torch.arange(n).repeat_interleave(self.per_query)
        return torch.stack([table.reshape(-1), q])

    def max_edges(self, n: int) -> int:
        return n * min(n, self.per_query)

    def pieces(self) -> Pieces:
        return Pieces(randoms=(self,) if self.per_query else ())

    def __repr__(self) -> str:
        return f"Random(per_query={self.per_query}, seed={self.seed})"
