"""The pattern protocol: who may attend to whom, as a predicate and as a graph.

A pattern is the specification of a directed attention graph on ``n`` nodes. It has two
faces that tests pin together:

* ``mask(q_idx, k_idx, n)``: a broadcasting predicate, True where query ``q`` may attend to
  key ``k`` (as a FlexAttention ``mask_mod``);
* ``edge_index(n)``: the same graph as a PyG ``edge_index`` (row 0 = key / source ``j``,
  row 1 = query / target ``i``), sorted by query then key, without duplicates, built in
  O(E) time and memory.

Patterns compose with ``|`` (union) and ``&`` (intersection). A pattern that defines only
``mask`` is complete: ``edge_index`` then evaluates the predicate one chunk of query rows at
a time (memory O(E + chunk), never ``n x n``), and kernels scan it tile by tile, once per
pattern value and sequence length. A pattern can declare its structure so that nothing is
scanned, in either of two public ways: :meth:`Pattern.pieces` (band / global / random pieces,
read by the tile kernels instead of testing classes) or :meth:`Pattern.generate_edges` (an
O(E) generator, read by the edge kernels). Patterns compare, hash and print by value (their
fields), so ``Band(16)`` built twice is the same pattern to every cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..checks import MAX_INDEX, MAX_SEED, check_allocation, check_device, check_int
from .pieces import Pieces

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["Pattern", "Union", "Intersection", "check_num_nodes", "check_fields", "scan_mask"]

TEXT_VIEW_MAX = 128
#: Predicate evaluations per chunk when a mask is scanned (a few MB of booleans at a time).
SCAN_CHUNK = 1 << 22


def check_num_nodes(n: int, name: str = "n") -> int:
    """``n`` if it is an int number of nodes in ``[0, MAX_INDEX]``."""
    return check_int(n, name, 0, MAX_INDEX)


def check_fields(pattern: DataclassInstance, **minimums: int) -> None:
    """Check the int fields ``name=minimum`` of a pattern dataclass: each in ``[minimum, MAX_INDEX]``
    (``MAX_SEED`` for a ``seed``), so no reach or size overflows int64 index arithmetic; a field
    whose default is ``None`` may be ``None``."""
    optional = {f.name for f in fields(pattern) if f.default is None and f.default is not MISSING}
    for name, minimum in minimums.items():
        value = getattr(pattern, name)
        if value is None and name in optional:
            continue
        check_int(value, name, minimum, MAX_SEED if name == "seed" else MAX_INDEX)


def scan_mask(pattern: Pattern, n: int, rows: int = 1) -> Iterator[tuple[int, Tensor]]:
    """``(start, mask [r, n])`` for consecutive chunks of query rows (a multiple of ``rows``),
    from ``pattern.mask``: the generic path for patterns known only by their predicate."""
    step = max(rows, (SCAN_CHUNK // max(n, 1)) // rows * rows)
    keys = torch.arange(n)[None, :]
    for start in range(0, n, step):
        q = torch.arange(start, min(start + step, n))[:, None]
        yield start, pattern.mask(q, keys, n).expand(q.size(0), n)


def sort_edges(k: Tensor, q: Tensor, n: int, *, unique: bool = False) -> Tensor:
    """Stack ``(k, q)`` into an ``edge_index`` sorted by query, then key."""
    key = q * max(n, 1) + k
    key = torch.unique(key) if unique else torch.sort(key).values
    return torch.stack([key % max(n, 1), key // max(n, 1)])


class Pattern:
    """Base class of attention patterns. Subclasses define ``mask``; built-ins also define
    :meth:`generate_edges` (an O(E) generator) and :meth:`pieces` (their structure, for the
    tile kernels), and a user pattern may too.

    Two patterns are equal when they are of the same class with equal fields (the attributes
    set in ``__init__``), which is what the per-length tile caches key on; ``repr`` lists the
    fields (``Band(radius=16)``). Dataclass patterns get the same from ``@dataclass``."""

    def _fields(self) -> tuple[tuple[str, object], ...]:
        return tuple(sorted(vars(self).items()))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        mine, theirs = self._fields(), other._fields()
        if any(isinstance(v, Tensor) for _, v in mine):  # tensor fields: equal only to itself
            return self is other
        return mine == theirs

    def __hash__(self) -> int:
        fields = self._fields()
        if any(isinstance(v, Tensor) for _, v in fields):
            return id(self)
        return hash((type(self), fields))  # an unhashable field raises TypeError, as for a dataclass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._fields() if not k.startswith('_'))})"

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        """Broadcasting predicate: True where query ``q_idx`` may attend to key ``k_idx``."""
        raise NotImplementedError

    def generate_edges(self, n: int) -> Tensor:
        """The ``edge_index`` for ``n >= 1`` nodes, sorted by query then key, no duplicates.
        Without an override: ``mask`` evaluated chunk by chunk of query rows."""
        parts = [torch.nonzero(m).T.flip(0) + torch.tensor([[0], [start]]) for start, m in scan_mask(self, n)]
        return torch.cat(parts, dim=1)

    @property
    def has_generator(self) -> bool:
        """Whether ``edge_index`` has an O(E) generator (else it scans ``mask``, O(n^2) time)."""
        return type(self).generate_edges is not Pattern.generate_edges

    @property
    def data_dependent(self) -> bool:
        """Whether the edges come from the queries and keys of each forward (``LSH``, ``KMeans``,
        ``TopK``; see :mod:`graphattn.patterns.routed`) rather than from positions alone."""
        return False

    def pieces(self) -> Pieces | None:
        """The band / global / random decomposition of the pattern, or ``None`` if it has none."""
        return None

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
        device = None if device is None else check_device(device)
        if n == 0:
            return torch.empty(2, 0, dtype=torch.long, device=device)
        if self.has_generator or type(self).max_edges is not Pattern.max_edges:  # a mask scan keeps only its edges
            # two int64 rows, and as much again while the generators sort their (q, k) codes
            check_allocation(32 * self.max_edges(n), f"{self!r}.edge_index({n}) (up to {self.max_edges(n):,} edges)",
                             "cpu", "use a sparser pattern or fewer nodes (the tile kernels never list the edges "
                             "of a structured pattern)")
        return self.generate_edges(n).to(device)

    def dense_mask(self, n: int, device: torch.device | str | None = None) -> Tensor:
        """The ``[n, n]`` boolean mask indexed ``[query, key]``, evaluated from ``mask``."""
        self.validate(n)
        device = None if device is None else check_device(device)
        check_allocation(n * n, f"{self!r}.dense_mask({n}), n x n booleans", device or "cpu",
                         "use edge_index(n), which lists only the edges")
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


def _flatten(kind: type[_Composite], parts: tuple[Pattern, ...]) -> tuple[Pattern, ...]:
    out: list[Pattern] = []
    for p in parts:
        out.extend(p.parts if isinstance(p, kind) else (p,))
    return tuple(out)


@dataclass(frozen=True)
class _Composite(Pattern):
    """Parts combined elementwise by ``combine``: what a union and an intersection share."""

    parts: tuple[Pattern, ...]

    def __post_init__(self) -> None:
        routed = [p for p in self.parts if p.data_dependent]
        if routed:
            raise TypeError(f"{routed[0]!r} builds its edges from q and k in each forward and does not combine with "
                            f"| or &; use it alone")

    @staticmethod
    def combine(a: Tensor, b: Tensor) -> Tensor:
        raise NotImplementedError

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        out = self.parts[0].mask(q_idx, k_idx, n)
        for p in self.parts[1:]:
            out = self.combine(out, p.mask(q_idx, k_idx, n))
        return out

    @property
    def extra_nodes(self) -> int:
        return max(p.extra_nodes for p in self.parts)

    def validate(self, n: int) -> None:
        for p in self.parts:
            p.validate(n)


@dataclass(frozen=True)
class Union(_Composite):
    """Attend where any part allows: ``mask = OR_p mask_p``."""

    @staticmethod
    def combine(a: Tensor, b: Tensor) -> Tensor:
        return torch.logical_or(a, b)

    def generate_edges(self, n: int) -> Tensor:
        ei = torch.cat([p.generate_edges(n) for p in self.parts], dim=1)
        return sort_edges(ei[0], ei[1], n, unique=True)

    def max_edges(self, n: int) -> int:
        return min(n * n, sum(p.max_edges(n) for p in self.parts))

    @property
    def has_generator(self) -> bool:
        return all(p.has_generator for p in self.parts)

    def pieces(self) -> Pieces | None:
        out = None
        for p in self.parts:
            piece = p.pieces()
            if piece is None:
                return None
            out = piece if out is None else out.union(piece)
        return out

    def __repr__(self) -> str:
        return " | ".join(repr(p) for p in self.parts)


@dataclass(frozen=True)
class Intersection(_Composite):
    """Attend where every part allows: ``mask = AND_p mask_p``."""

    @staticmethod
    def combine(a: Tensor, b: Tensor) -> Tensor:
        return torch.logical_and(a, b)

    def generate_edges(self, n: int) -> Tensor:
        # Generate the sparsest part, then keep the edges every other part allows: O(E_min).
        sparsest = min(self.parts, key=lambda p: (not p.has_generator, p.max_edges(n)))
        k, q = sparsest.generate_edges(n)
        keep = torch.ones_like(k, dtype=torch.bool)
        for p in self.parts:
            if p is not sparsest:
                keep &= p.mask(q, k, n)
        return torch.stack([k[keep], q[keep]])

    def max_edges(self, n: int) -> int:
        return min(p.max_edges(n) for p in self.parts)

    @property
    def has_generator(self) -> bool:
        return any(p.has_generator for p in self.parts)

    def pieces(self) -> Pieces | None:
        """Only an intersection of bands has pieces: a band reaching as far as its shortest part."""
        pieces = [p for p in (part.pieces() for part in self.parts)
                  if p is not None and p.band is not None and not p.global_nodes and not p.randoms]
        if len(pieces) != len(self.parts):
            return None
        return Pieces(self, min(p.left for p in pieces), min(p.right for p in pieces), full=all(p.full for p in pieces))

    def __repr__(self) -> str:
        return " & ".join(f"({p!r})" if isinstance(p, Union) else repr(p) for p in self.parts)
