"""``pattern=``: extra attention edges for the drop-in layers, beyond PyG.

A layer given a pattern (``VirtualNodes(1) | Expander(4)``, ``Global((0,))``, any pattern) attends
along PyG's edges (after its own self-loop rule) together with the pattern's edges laid on each graph
of ``batch`` (one graph without it). A pattern with ``k`` virtual nodes makes the layer learn ``k``
input rows (``virtual``), inserted after each graph's nodes before the projections and dropped from
the output, so each layer has its own global tokens; the pattern's edges carry zero edge features.
The union is prepared once per (adjacency, ``batch``) and kept beside the adjacency's own
preparation (:mod:`graphattn.nn.edges`).
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ...ops import AttentionGraph
from ...patterns import Pattern, parse_pattern
from ..edges import Edges, edge_features, node_counts, prepare

__all__ = ["check_pattern", "virtual_rows", "layer_edges", "PatternLayer"]

#: Unions kept per prepared adjacency (one per ``batch`` tensor seen last).
_KEPT = 4


def check_pattern(pattern: object) -> Pattern | None:
    """``pattern`` as a :class:`~graphattn.patterns.Pattern` (or its text), or None."""
    if pattern is None or isinstance(pattern, Pattern):
        return pattern
    if isinstance(pattern, str):
        return parse_pattern(pattern)
    raise TypeError(f"pattern must be a Pattern, its text or None, got {type(pattern).__name__}")


def virtual_rows(pattern: Pattern | None, channels: object) -> nn.Parameter | None:
    """The learned input rows of the pattern's virtual nodes, or None (lazy ``in_channels``: none yet)."""
    if pattern is None or not pattern.extra_nodes:
        return None
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"a pattern with virtual nodes needs a fixed int in_channels (their learned input rows), "
                         f"got {channels!r}")
    return nn.Parameter(torch.randn(pattern.extra_nodes, channels) * 0.02)


class PatternLayer(Protocol):
    """What :func:`layer_edges` reads of a drop-in: its pattern and the virtual rows it learns."""

    @property
    def pattern(self) -> Pattern | None: ...
    @property
    def virtual(self) -> Tensor | None: ...


def layer_edges(layer: PatternLayer, x: Any, adj: Any, edge_attr: Tensor | None, size: Any, batch: Tensor | None,
                loops: str, fill_value: Any, features: bool) -> tuple[Any, Edges, Tensor | None, AttentionGraph | None]:
    """What a drop-in attends along: ``(x, edges, edge_attr, laid)``. Without a pattern: ``x`` as
    given, ``adj`` prepared (:func:`graphattn.nn.edges.prepare`), ``edge_attr`` aligned with it (when
    ``features``) and ``laid`` None. With ``layer.pattern``: ``x`` with the virtual rows, the union's
    edges and features, and ``laid``, the pattern's graph (``laid.real(out)`` keeps the real rows)."""
    if layer.pattern is None:
        if batch is not None:
            raise ValueError("batch= lays a pattern on each graph; this layer has no pattern")
        x_src, x_dst = x if isinstance(x, tuple) else (x, x)
        edges = prepare(adj, *node_counts(x_src, x_dst, adj, size), loops, fill_value)
        return x, edges, (edge_features(edges, edge_attr, fill_value) if features else None), None
    if not isinstance(x, Tensor):
        raise ValueError("pattern= needs one node set: x must be a [N, F] tensor, not a pair (x_src, x_dst)")
    n = x.size(0)
    if size is not None and tuple(size) != (n, n):
        raise ValueError(f"size must be ({n}, {n}) for one node set of {n} nodes, got {size!r}")
    own = prepare(adj, n, n, loops, fill_value)
    ref = None if batch is None else weakref.ref(batch)
    key = (layer.pattern, None if batch is None else (id(batch), batch._version, n))
    found = own.memo.get(key)
    if found is None or (batch is not None and found[0]() is not batch):
        laid = AttentionGraph.build(layer.pattern, n, batch=batch).to(x.device)  # virtual nodes after each graph
        union = torch.cat([laid.real_index[own.edge_index], laid.edge_index], dim=1)
        total = laid.num_nodes
        found = (ref, Edges(union, union, None, total, total, None, 0, AttentionGraph.build(union, total, trusted=True)),
                 laid)
        own.memo[key] = found
        while len(own.memo) > _KEPT:
            own.memo.pop(next(iter(own.memo)))
    _, edges, laid = found
    rows = laid.with_virtual(x, layer.virtual.to(x.dtype)) if layer.virtual is not None else x  # (N + B k, F)
    if not features:
        return rows, edges, None, laid
    edge_attr = edge_features(own, edge_attr, fill_value)
    if edge_attr is not None:  # the pattern's edges carry zero features
        extra = edges.edge_index.size(1) - edge_attr.size(0)
        edge_attr = torch.cat([edge_attr, edge_attr.new_zeros(extra, *edge_attr.shape[1:])])
    return rows, edges, edge_attr, laid
