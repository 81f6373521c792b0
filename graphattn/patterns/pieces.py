"""What a pattern is made of, as structured kernels compute it: band, global and random pieces.

A pattern that a structured (tile) kernel can compute without looking at every pair is a
union of three kinds of pieces, each counted by exactly one set of key columns:

* a **band**: keys at offsets ``d = k - q`` with ``-left <= d <= right`` whose mask depends on
  ``d`` only (``Window``, ``Causal``, ``Stride``, ``Full``, ``SelfLoops`` and intersections of
  them); a union of bands is one band, evaluated exactly by its own ``mask`` on offsets;
* **global** tokens: their rows attend to the whole sequence, their columns are seen by every
  query (``Global``, ``VirtualNodes``; Python-style indices, negative from the end);
* **random** keys: objects with ``per_query`` and ``table(n) -> [n, per_query]`` (``Random``).

A pattern reports its pieces through :meth:`Pattern.pieces`; ``None`` means "none of these"
and kernels then evaluate its ``mask`` tile by tile. Kernels never test a pattern's class.
A user pattern declares its pieces the same way, e.g. a band of radius 16 that keeps even
offsets only::

    class EvenBand(Pattern):
        def mask(self, q_idx, k_idx, n):
            d = k_idx - q_idx
            return (d.abs() <= 16) & (d % 2 == 0)

        def pieces(self):
            return Pieces(band=self, left=16, right=16)  # its mask depends on k - q only
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from torch import Tensor

__all__ = ["Pieces", "Predicate", "INF"]

INF = math.inf


class Predicate(Protocol):
    """What a band piece must offer: the pattern's broadcasting ``mask(q_idx, k_idx, n)``."""

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor: ...


@dataclass(frozen=True)
class Pieces:
    """The pieces of a pattern (see the module docstring).

    ``band`` is the union of the band pieces (``None`` if there are none), reaching ``left``
    keys back and ``right`` keys ahead (``inf`` when unbounded); its ``mask`` must depend on
    the offset ``k - q`` only (kernels evaluate it on offsets, with negative ``k``); ``stride`` is set only when the
    whole pattern is one dilated band ``Stride(stride, reach)``, which kernels may permute into
    ``stride`` interleaved sub-sequences.
    """

    band: Predicate | None = None
    left: float = 0
    right: float = 0
    global_nodes: tuple[int, ...] = ()
    randoms: tuple = ()
    stride: int | None = None
    reach: int | None = None
    full: bool = False

    @property
    def is_empty(self) -> bool:
        """Whether no query attends to any key."""
        return self.band is None and not self.global_nodes and not any(r.per_query for r in self.randoms)

    def keys_per_query(self, length: int, block: int) -> int:
        """Key columns one query pays for in a sequence of ``length`` (a tile kernel's work)."""
        left, right = min(self.left, length), min(self.right, length)
        span = int(block + left + right) if self.band is not None else 0
        return span + len(self.global_nodes) + block * sum(r.per_query for r in self.randoms)

    def union(self, other: Pieces) -> Pieces:
        """The pieces of the union of two patterns (a lone stride stops being alone)."""
        bands = tuple(b for b in (self.band, other.band) if b is not None)
        band = None if not bands else bands[0] if len(bands) == 1 else bands[0] | bands[1]
        left = max(p.left for p in (self, other) if p.band is not None) if bands else 0
        right = max(p.right for p in (self, other) if p.band is not None) if bands else 0
        return Pieces(band, left, right, self.global_nodes + other.global_nodes, self.randoms + other.randoms,
                      full=self.full or other.full)
