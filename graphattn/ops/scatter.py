"""The general kernel: gather, segment softmax, scatter, over an arbitrary ``edge_index``.

Each edge ``(j, i)`` gathers ``q_i`` and ``k_j``, a softmax over the edges that share a query
(:func:`~graphattn.ops.kernel.segment_softmax`) normalises the scores, and the weighted values are
summed into their query (``torch_geometric.utils.scatter``). Duplicate edges are separate
messages. It computes everything the others may not (every score, edge features, a caller's
dropout mask), and its
autograd is torch's own (double backward included). Memory: O(E H C) for the gathered rows,
O(E H) for the scores. Slow twin: :func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

from torch import Tensor
from torch_geometric.utils import scatter

from .graph import AttentionGraph
from .kernel import Kernel, KernelResult, edge_scores, segment_softmax
from .scores import ScoreSpec

__all__ = ["Scatter"]


class Scatter(Kernel[None]):
    """Gather / scatter message passing (see the module docstring)."""

    name = backend = "scatter"

    def footprint(self, graph: AttentionGraph, spec: ScoreSpec, need_weights: bool) -> int:
        heads, channels, value_channels = spec.shape
        return graph.edge_bound() * heads * (2 * channels + value_channels + 3) * spec.dtype.itemsize  # gathered rows

    def plan(self, graph: AttentionGraph) -> None:
        return None

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: None, *,
                need_weights: bool) -> KernelResult:
        n = q.size(0)
        src, dst = graph.edge_index
        alpha = segment_softmax(edge_scores(q, k, graph, spec), dst, n)  # (E, H)
        v_j = v.index_select(0, src)
        if spec.edge_kv is not None:
            v_j = v_j + spec.edge_kv
        dropped = spec.apply_dropout(alpha) if spec.keep is None else alpha * spec.keep
        messages = dropped.unsqueeze(-1) * v_j
        out = scatter(messages, dst, dim=0, dim_size=n, reduce="sum")  # (N, H, C)
        return KernelResult(out, alpha=alpha if need_weights else None)
