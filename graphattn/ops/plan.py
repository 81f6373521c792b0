"""How the blocked kernel sees a sequence pattern: a band, global tokens and random keys.

A pattern the blocked kernel can compute is a union of three kinds of pieces:

* **band** pieces whose mask depends only on the offset ``d = k - q`` and vanishes outside
  ``-left <= d <= right``: ``Window``, ``Causal``, ``Stride``, ``Full``, ``SelfLoops`` and
  intersections of them. Their union is one band, evaluated exactly (``mask``) inside each
  query block's contiguous key span;
* ``Global`` tokens: global rows (those queries attend to their whole sequence) and global
  key columns;
* ``Random`` keys: a small per-query key table.

Anything else (``GraphEdges``, ``Expander``, a union under an intersection...) has no plan;
the dispatcher then uses the dense or scatter kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..patterns import Causal, Full, Global, Intersection, Pattern, Random, SelfLoops, Stride, Union, Window

__all__ = ["BlockPlan", "plan_blocks"]

INF = math.inf


@dataclass(frozen=True)
class BlockPlan:
    """The pieces of a pattern, as the blocked kernel computes them.

    ``band`` is the union of the band pieces (``None`` if there are none), reaching ``left``
    keys back and ``right`` keys ahead (``inf`` when unbounded); ``global_nodes`` the global
    tokens (Python-style indices, may be negative); ``randoms`` the random-key pieces.
    """

    band: Pattern | None
    left: float
    right: float
    global_nodes: tuple[int, ...]
    randoms: tuple[Random, ...]

    @property
    def is_full(self) -> bool:
        return self.band is not None and self.left == INF and self.right == INF

    def keys_per_query(self, length: int, block: int) -> int:
        """Key columns one query pays for in a sequence of ``length`` (the kernel's work)."""
        left, right = min(self.left, length), min(self.right, length)
        span = int(block + left + right) if self.band is not None else 0
        return span + len(self.global_nodes) + block * sum(r.per_query for r in self.randoms)


def _band_reach(p: Pattern) -> tuple[float, float] | None:
    """``(left, right)`` reach of a band piece (a mask of ``k - q`` only), or None."""
    if isinstance(p, Window):
        return p.left, p.right
    if isinstance(p, Stride):
        reach = INF if p.reach is None else p.reach
        return reach, reach
    if isinstance(p, Causal):
        return INF, 0
    if isinstance(p, Full):
        return INF, INF
    if isinstance(p, SelfLoops):
        return 0, 0
    if isinstance(p, Intersection):
        reaches = [_band_reach(part) for part in p.parts]
        if any(r is None for r in reaches):
            return None
        return min(r[0] for r in reaches), min(r[1] for r in reaches)
    if isinstance(p, Union):
        reaches = [_band_reach(part) for part in p.parts]
        if any(r is None for r in reaches):
            return None
        return max(r[0] for r in reaches), max(r[1] for r in reaches)
    return None


def plan_blocks(pattern: Pattern | None) -> BlockPlan | None:
    """Split ``pattern`` into band, global and random pieces; None if a piece is unsupported."""
    if pattern is None:
        return None
    parts = pattern.parts if isinstance(pattern, Union) else (pattern,)
    band: list[Pattern] = []
    left = right = -INF
    global_nodes: list[int] = []
    randoms: list[Random] = []
    for part in parts:
        if isinstance(part, Global):
            global_nodes.extend(part.nodes)
        elif isinstance(part, Random):
            if part.per_query:
                randoms.append(part)
        else:
            reach = _band_reach(part)
            if reach is None:
                return None
            band.append(part)
            left, right = max(left, reach[0]), max(right, reach[1])
    band_pattern = None if not band else band[0] if len(band) == 1 else Union(tuple(band))
    return BlockPlan(band_pattern, max(left, 0), max(right, 0), tuple(global_nodes), tuple(randoms))
