"""What the drop-in layers share: the kernel call on a prepared adjacency, dropout drawn as PyG
draws it, attention weights in PyG's formats, and the ``backend=`` check."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.typing import SparseTensor
from torch_geometric.utils.sparse import set_sparse_value

from ... import ops
from ...ops import AttentionGraph
from ..edges import Edges, pad_rows

__all__ = ["attend", "dropout_mask", "pyg_weights", "check_backend"]


def check_backend(backend: object) -> str:
    if backend not in ops.BACKENDS:
        raise ValueError(f"backend must be one of {ops.BACKENDS}, got {backend!r}")
    return backend


def dropout_mask(edges: Edges, heads: int, p: float, training: bool, like: Tensor) -> Tensor | None:
    """``F.dropout`` of ones ``[E, H]`` in PyG's edge order, or None when no dropout applies: the
    same draw as PyG's ``F.dropout(alpha)`` on that shape, so a seeded run drops the same weights."""
    if not training or p == 0:
        return None
    return F.dropout(like.new_ones(edges.edge_index.size(1), heads), p, training=True)


def attend(q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, num_dst: int,
           **kwargs: Any) -> tuple[Tensor, Tensor | None]:
    """``(out [N_dst, H, C_v], alpha [E, H] | None)``: :func:`graphattn.ops.attention` of the
    destinations' ``q`` over the sources' ``k, v`` along ``graph`` (both sides padded to its
    nodes: queries are its first ``num_dst`` rows), ``alpha`` in its edge order when ``return_weights``."""
    n = graph.num_nodes
    res = ops.attention(pad_rows(q, n), pad_rows(k, n), pad_rows(v, n), graph, **kwargs)
    return res.out[:num_dst], (res.weights[1] if res.weights is not None else None)


def pyg_weights(edges: Edges, alpha: Tensor, *, sparse_values: bool) -> Any:
    """Attention weights in PyG's format for the adjacency given: ``(edge_index, alpha)``; for a
    ``SparseTensor`` the adjacency carrying ``alpha``; for a torch sparse one ``(adj, alpha)``, the
    adjacency carrying ``alpha`` when ``sparse_values`` (GAT) or as given (TransformerConv)."""
    adj = edges.adj
    if isinstance(adj, SparseTensor):
        return adj.set_value(alpha, layout="coo")
    if isinstance(adj, Tensor) and adj.layout != torch.strided and sparse_values:
        return set_sparse_value(adj, alpha), alpha
    return adj, alpha


def gat_output(layer: Any, out: Tensor, alpha: Tensor | None, res: Tensor | None, laid: Any, edges: Edges,
               return_attention_weights: bool | None) -> Any:
    """The end of ``GATConv`` / ``GATv2Conv``'s forward from their messages ``out [N_dst, H, C]``:
    heads concatenated (or averaged), the residual and bias added, a laid pattern's virtual rows
    dropped, and the weights ``alpha`` in PyG's format when asked for."""
    out = out.flatten(1) if layer.concat else out.mean(dim=1)  # (N_dst, H C) or (N_dst, C)
    if res is not None:
        out = out + res
    if layer.bias is not None:
        out = out + layer.bias
    if laid is not None:
        out = laid.real(out)  # the virtual rows' outputs are dropped
    if return_attention_weights:
        assert alpha is not None, "the weights were asked of the kernel"
        return out, pyg_weights(edges, alpha, sparse_values=True)
    return out
