"""The attention graph handed to kernels: a pattern over sequences, or explicit edges."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..patterns import Pattern, batch_dense_mask, batch_edge_index

__all__ = ["AttentionGraph"]


@dataclass(eq=False)
class AttentionGraph:
    """Who attends to whom on ``N`` nodes, in whichever form a kernel wants.

    Either ``pattern`` laid block-diagonally on sequences of lengths ``sizes`` (structured
    kernels use it directly) or an explicit ``edge_index`` (multi-edges allowed: a duplicate
    edge is one more message). ``edge_index`` is derived from the pattern on first use.
    """

    num_nodes: int
    pattern: Pattern | None = None
    sizes: Tensor | None = None
    _edge_index: Tensor | None = field(default=None, repr=False)

    @classmethod
    def from_pattern(cls, pattern: Pattern, sizes: Tensor) -> AttentionGraph:
        return cls(int(sizes.sum()), pattern=pattern, sizes=sizes)

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: int) -> AttentionGraph:
        return cls(num_nodes, _edge_index=edge_index)

    @property
    def edge_index(self) -> Tensor:
        """``[2, E]``: row 0 keys ``j``, row 1 queries ``i``; sorted by query for patterns."""
        if self._edge_index is None:
            self._edge_index = batch_edge_index(self.pattern, self.sizes)
        return self._edge_index

    def dense_counts(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """``[N, N]`` number of edges ``j -> i`` indexed ``[query, key]`` (0/1 for patterns)."""
        if self.pattern is not None:
            return batch_dense_mask(self.pattern, self.sizes.to(device)).to(dtype)
        n = self.num_nodes
        counts = torch.zeros(n * n, device=device, dtype=dtype)
        src, dst = self.edge_index.to(device)
        counts.index_add_(0, dst * n + src, torch.ones(src.numel(), device=device, dtype=dtype))
        return counts.view(n, n)
