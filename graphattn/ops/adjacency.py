"""Every adjacency PyG users pass, as one ``edge_index``.

``edge_index`` ``[2, E]`` (row 0 keys ``j``, row 1 queries ``i``), ``torch_geometric.EdgeIndex``,
and sparse adjacencies in PyG's ``adj_t`` convention (rows are queries, columns keys): torch
COO / CSR tensors and, when ``torch_sparse`` is installed, ``SparseTensor``.

Duplicates follow one rule: an edge list (``edge_index``, ``EdgeIndex``) lists messages, so each
column counts, duplicates included; a sparse matrix holds one entry per (query, key) pair, so its
duplicate entries (an uncoalesced COO tensor's, or a CSR row's repeated column) are merged, as
``coalesce()`` merges them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..patterns import check_edge_index, check_sizes

__all__ = ["as_edge_index"]


def as_edge_index(edges: object, num_nodes: int | None, batch: Tensor | None,
                   lengths: object, trusted: bool = False) -> tuple[Tensor, int]:
    """``(edge_index [2, E], num_nodes)`` from an ``edge_index``, ``EdgeIndex`` or ``adj_t``. Node
    ids are checked (a host round trip) unless ``trusted`` or the edges are an ``EdgeIndex``,
    whose own validation PyG's layers trust as well; shape and dtype always are."""
    size = None
    if isinstance(edges, Tensor) and edges.layout != torch.strided:  # torch sparse adj_t [N_q, N_k]
        if edges.dim() != 2 or edges.size(0) != edges.size(1):
            raise ValueError(f"a sparse adj_t must be a square [N, N] matrix (rows queries, columns keys), "
                             f"got {list(edges.shape)}")
        if edges.layout == torch.sparse_coo:
            rows, cols = edges.coalesce().indices()
        elif edges.layout == torch.sparse_csr:
            crow = edges.crow_indices()
            rows = torch.repeat_interleave(torch.arange(edges.size(0), device=crow.device), crow.diff())
            cols = edges.col_indices()
        else:
            raise ValueError(f"a sparse adj_t must be COO or CSR, got layout {edges.layout}")
        edges, size = _merged(rows, cols, edges.size(0)), edges.size(0)
    elif _is_sparse_tensor(edges):
        rows, cols, _ = edges.coo()
        if edges.size(0) != edges.size(1):
            raise ValueError(f"a SparseTensor adj_t must be square [N, N], got {list(edges.sizes())}")
        edges, size = _merged(rows, cols, edges.size(0)), edges.size(0)
    elif isinstance(edges, Tensor) and hasattr(edges, "sparse_size") and hasattr(edges, "as_tensor"):  # EdgeIndex
        sparse = edges.sparse_size()
        size = next((s for s in sparse if s is not None), None)
        edges, trusted = edges.as_tensor(), True
    elif not isinstance(edges, Tensor):
        raise TypeError("edges must be a Pattern, an edge_index [2, E], an EdgeIndex or a sparse adj_t, "
                        f"got {type(edges).__name__}")
    if num_nodes is None:
        num_nodes = size
    if num_nodes is None and batch is not None:
        num_nodes = batch.numel()
    if num_nodes is None and lengths is not None:
        num_nodes = int(check_sizes(lengths).sum())
    if num_nodes is None:
        raise ValueError("an edge_index needs num_nodes (or batch / lengths) to know how many nodes there are")
    if size is not None and size != num_nodes:
        raise ValueError(f"the adjacency spans {size} nodes but num_nodes is {num_nodes}")
    if trusted:  # the same type, dtype and shape checks, without asking the device for the ids
        check_edge_index(edges[:, :0] if edges.dim() == 2 else edges, name="edges")
        return edges.long(), num_nodes
    return check_edge_index(edges, num_nodes, name="edges"), num_nodes


def _merged(rows: Tensor, cols: Tensor, n: int) -> Tensor:
    """``edge_index`` of a sparse matrix's entries, one per (query ``row``, key ``col``) pair, sorted."""
    rows, cols = rows.long(), cols.long()
    if rows.numel() and (int(rows.min()) < 0 or int(cols.min()) < 0 or int(rows.max()) >= n or int(cols.max()) >= n):
        raise ValueError(f"the sparse adj_t has an index outside [0, {n})")
    code = torch.unique(rows * max(n, 1) + cols)
    return torch.stack([code % max(n, 1), code // max(n, 1)])


def _is_sparse_tensor(edges: object) -> bool:
    try:
        from torch_sparse import SparseTensor
    except ImportError:
        return False
    return isinstance(edges, SparseTensor)
