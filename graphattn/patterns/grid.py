"""Two-dimensional local attention over a grid of image patches.

Patches are numbered row-major: on a grid of ``width`` columns node ``i`` sits at row
``i // width`` and column ``i % width``, so ``n = rows * width``. Without a ``width`` the grid
is square (``width = sqrt(n)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt

import torch
from torch import Tensor

from .base import Pattern, check_fields, check_num_nodes

__all__ = ["Grid2D"]


@dataclass(frozen=True)
class Grid2D(Pattern):
    """Local attention in two dimensions: patch ``(r, c)`` sees ``(r', c')`` within ``radius``.

    .. math::
        (r, c) \\leftarrow (r', c') \\iff \\max(|r - r'|, |c - c'|) \\le \\text{radius}

    The Chebyshev neighbourhood: ``Grid2D(1, w)`` gives 9 keys to an interior patch (self
    included), 6 on an edge and 4 in a corner. It is the two-dimensional twin of
    ``Window(radius)``; with ``width=1`` (one column) it equals ``Window(radius)``.

    Args:
        radius: how many rows and columns the neighbourhood reaches (>= 0).
        width: the number of columns of the grid (>= 1); ``n`` must be a multiple of it.
            ``None``: a square grid, ``n`` must be a perfect square. (default: ``None``)
    """

    radius: int
    width: int | None = None

    def __post_init__(self) -> None:
        check_fields(self, radius=0, width=1)

    def grid_width(self, n: int) -> int:
        """The number of grid columns for ``n`` nodes."""
        self.validate(n)
        return self.width if self.width is not None else max(isqrt(n), 1)

    def rows(self, n: int) -> int:
        """The number of grid rows for ``n`` nodes."""
        return n // self.grid_width(n)

    def validate(self, n: int) -> None:
        check_num_nodes(n)
        if self.width is None:
            if isqrt(n) ** 2 != n:
                raise ValueError(f"Grid2D without a width needs a square grid (n a perfect square), got n={n}; give width=")
        elif n % self.width:
            raise ValueError(
                f"Grid2D(width={self.width}) needs n to be a multiple of the width (rows * width), got n={n}"
            )

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        w = self.grid_width(n)
        dr = (k_idx // w - q_idx // w).abs()
        dc = (k_idx % w - q_idx % w).abs()
        return (dr <= self.radius) & (dc <= self.radius)

    def generate_edges(self, n: int) -> Tensor:
        w = self.grid_width(n)
        rows = n // w
        rr = min(self.radius, rows - 1)
        rc = min(self.radius, w - 1)
        dr = torch.arange(-rr, rr + 1).repeat_interleave(2 * rc + 1)  # (K,)
        dc = torch.arange(-rc, rc + 1).repeat(2 * rr + 1)  # (K,)
        q = torch.arange(n)
        kr = (q // w)[:, None] + dr[None, :]  # (n, K)
        kc = (q % w)[:, None] + dc[None, :]  # (n, K)
        valid = (kr >= 0) & (kr < rows) & (kc >= 0) & (kc < w)
        # |dc| < w, so the key kr * w + kc grows with (dr, dc): row-major order is sorted.
        k = kr * w + kc
        return torch.stack([k[valid], q[:, None].expand_as(k)[valid]])

    def max_edges(self, n: int) -> int:
        if n == 0:
            return 0
        w = self.width if self.width is not None else max(isqrt(n), 1)
        rows = max(n // w, 1)
        per_query = (2 * min(self.radius, rows - 1) + 1) * (2 * min(self.radius, w - 1) + 1)
        return n * min(n, per_query)

    def __repr__(self) -> str:
        if self.width is None:
            return f"Grid2D(radius={self.radius})"
        return f"Grid2D(radius={self.radius}, width={self.width})"
