"""The pattern protocol: who may attend to whom, as a predicate and as a graph.

A pattern is the specification of a directed attention graph on ``n`` nodes. It has two
faces that tests pin together:

* ``mask(q_idx, k_idx, n)``: a broadcasting predicate, True where query ``q`` may attend to
  key ``k`` (as a FlexAttention ``mask_mod``);
* ``edge_index(n)``: the same graph as a PyG ``edge_index`` (row 0 = key / source ``j``,
  row 1 = query / target ``i``), sorted by query then key, without duplicates, built in
  O(E) time and memory.

Patterns compose with ``|`` (union) and ``&`` (intersection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Pattern", "Union", "Intersection", "check_num_nodes"]

TEXT_VIEW_MAX = 128


def check_num_nodes(n: int, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int number of nodes, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{name} must be >= 0, got {n}")
    return n


def sort_edges(k: Tensor, q: Tensor, n: int, *, unique: bool = False) -> Tensor:
    """Stack ``(k, q)`` into an ``edge_index`` sorted by query, then key."""
    key = q * max(n, 1) + k
    key = torch.unique(key) if unique else torch.sort(key).values
    return torch.stack([key % max(n, 1), key // max(n, 1)])


class Pattern:
    """Base class of attention patterns. Subclasses define ``mask`` and ``_edges``."""

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        """Broadcasting predicate: True where query ``q_idx`` may attend to key ``k_idx``."""
        raise NotImplementedError

    def _edges(self, n: int) -> Tensor:
        """The ``edge_index`` for ``n`` nodes, sorted by query then key, no duplicates."""
        raise NotImplementedError

    def max_edges(self, n: int) -> int:
        """An upper bound on the number of edges for ``n`` nodes (used to pick kernels)."""
        return n * n

    @property
    def extra_nodes(self) -> int:
        """Nodes the pattern expects to be appended to the data (virtual nodes)."""
        return 0

    def validate(self, n: int) -> None:
        """Raise ``ValueError`` if the pattern cannot be laid on ``n`` nodes."""
        check_num_nodes(n)

    def edge_index(self, n: int, device: torch.device | str | None = None) -> Tensor:
        """The pattern on ``n`` nodes as a ``[2, E]`` long tensor (row 0 keys, row 1 queries)."""
        self.validate(n)
        if n == 0:
            return torch.empty(2, 0, dtype=torch.long, device=device)
        return self._edges(n).to(device)

    def dense_mask(self, n: int, device: torch.device | str | None = None) -> Tensor:
        """The ``[n, n]`` boolean mask indexed ``[query, key]``, evaluated from ``mask``."""
        self.validate(n)
        idx = torch.arange(n, device=device)
        return self.mask(idx[:, None], idx[None, :], n).expand(n, n).clone()

    def to_text(self, n: int) -> str:
        """An ASCII picture for small ``n``: rows are queries, ``#`` marks an allowed key."""
        if n > TEXT_VIEW_MAX:
            raise ValueError(f"n must be <= {TEXT_VIEW_MAX} for the text view, got {n}")
        rows = self.dense_mask(n).tolist()
        return "\n".join("".join("#" if a else "." for a in row) for row in rows)

    def __or__(self, other: Pattern) -> Pattern:
        if not isinstance(other, Pattern):
            return NotImplemented
        return Union(_flatten(Union, (self, other)))

    def __and__(self, other: Pattern) -> Pattern:
        if not isinstance(other, Pattern):
            return NotImplemented
        return Intersection(_flatten(Intersection, (self, other)))


def _flatten(kind: type, parts: tuple[Pattern, ...]) -> tuple[Pattern, ...]:
    out: list[Pattern] = []
    for p in parts:
        out.extend(p.parts if isinstance(p, kind) else (p,))
    return tuple(out)


@dataclass(frozen=True)
class Union(Pattern):
    """Attend where any part allows: ``mask = OR_p mask_p``."""

    parts: tuple[Pattern, ...]

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        out = self.parts[0].mask(q_idx, k_idx, n)
        for p in self.parts[1:]:
            out = out | p.mask(q_idx, k_idx, n)
        return out

    def _edges(self, n: int) -> Tensor:
        ei = torch.cat([p._edges(n) for p in self.parts], dim=1)
        return sort_edges(ei[0], ei[1], n, unique=True)

    def max_edges(self, n: int) -> int:
        return min(n * n, sum(p.max_edges(n) for p in self.parts))

    @property
    def extra_nodes(self) -> int:
        return max(p.extra_nodes for p in self.parts)

    def validate(self, n: int) -> None:
        for p in self.parts:
            p.validate(n)

    def __repr__(self) -> str:
        return " | ".join(repr(p) for p in self.parts)


@dataclass(frozen=True)
class Intersection(Pattern):
    """Attend where every part allows: ``mask = AND_p mask_p``."""

    parts: tuple[Pattern, ...]

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        out = self.parts[0].mask(q_idx, k_idx, n)
        for p in self.parts[1:]:
            out = out & p.mask(q_idx, k_idx, n)
        return out

    def _edges(self, n: int) -> Tensor:
        # Generate the sparsest part, then keep the edges every other part allows: O(E_min).
        sparsest = min(self.parts, key=lambda p: p.max_edges(n))
        k, q = sparsest._edges(n)
        keep = torch.ones_like(k, dtype=torch.bool)
        for p in self.parts:
            if p is not sparsest:
                keep &= p.mask(q, k, n)
        return torch.stack([k[keep], q[keep]])

    def max_edges(self, n: int) -> int:
        return min(p.max_edges(n) for p in self.parts)

    @property
    def extra_nodes(self) -> int:
        return max(p.extra_nodes for p in self.parts)

    def validate(self, n: int) -> None:
        for p in self.parts:
            p.validate(n)

    def __repr__(self) -> str:
        return " & ".join(f"({p!r})" if isinstance(p, Union) else repr(p) for p in self.parts)
