"""The general kernel: gather, segment softmax, scatter, over an arbitrary ``edge_index``.

Each edge ``(j, i)`` gathers ``q_i`` and ``k_j``, a softmax over the edges that share a query
(``torch_geometric.utils.softmax``) normalises the scores, and the weighted values are
summed into their query (``torch_geometric.utils.scatter``). Duplicate edges are separate
messages. Memory: O(E H C) for the gathered rows, O(E H) for the scores. Its slow twin is
:func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor
from torch_geometric.utils import scatter, softmax

from .graph import AttentionGraph
from .scores import ScoreSpec

__all__ = ["scatter_attention", "falls_back_to_scatter"]


def scatter_attention(
    q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, *, return_weights: bool = False
) -> tuple[Tensor, Tensor | None]:
    n = q.size(0)
    src, dst = graph.edge_index.to(q.device)
    q_i, k_j, v_j = q[dst], k[src], v[src]  # (E, H, C)
    if spec.edge_kv is not None:
        k_j = k_j + spec.edge_kv
        v_j = v_j + spec.edge_kv
    if spec.score == "dot":
        scores = (q_i * k_j).sum(dim=-1) * spec.scale  # (E, H)
    else:
        scores = (torch.tanh(q_i + k_j) * spec.att).sum(dim=-1)
    if spec.bias is not None:
        scores = scores + spec.bias(dst, src)
    alpha = softmax(scores, dst, num_nodes=n)  # (E, H)
    messages = spec.apply_dropout(alpha).unsqueeze(-1) * v_j
    out = scatter(messages, dst, dim=0, dim_size=n, reduce="sum")  # (N, H, C)
    return out, (alpha if return_weights else None)


def falls_back_to_scatter(unsupported: Callable[[AttentionGraph, ScoreSpec], str | None]) -> Callable:
    """Decorate a kernel so that what ``unsupported(graph, spec)`` refuses runs on this general
    kernel instead (a kernel called directly still answers; ``ops.attention`` warns first)."""
    def wrap(kernel: Callable) -> Callable:
        @functools.wraps(kernel)
        def run(q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, *,
                return_weights: bool = False, **options) -> tuple[Tensor, Tensor | None]:
            if unsupported(graph, spec) is not None:
                return scatter_attention(q, k, v, graph, spec, return_weights=return_weights)
            return kernel(q, k, v, graph, spec, return_weights=return_weights, **options)
        return run
    return wrap
