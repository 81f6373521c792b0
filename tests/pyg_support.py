"""Helpers of the drop-in tests: twin layers (graphattn's and PyG's, same seed), PyG's adjacency forms,
and a host round-trip counter that also walks into graphattn's GAT custom ops."""

from __future__ import annotations

import torch
import torch_geometric.nn as pyg_nn
from torch_geometric import EdgeIndex
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csc_tensor, to_torch_csr_tensor

import graphattn.nn as ga_nn

#: The drop-ins that are MessagePassing layers, by name.
LAYERS = ("GATConv", "GATv2Conv", "TransformerConv")


def twins(name: str, *args, seed: int = 0, **kwargs) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(graphattn's layer, PyG's layer)`` built from the same seed (so with the same weights)."""
    torch.manual_seed(seed)
    ours = getattr(ga_nn, name)(*args, **kwargs)
    torch.manual_seed(seed)
    theirs = getattr(pyg_nn, name)(*args, **kwargs)
    return ours, theirs


def forms(edge_index: torch.Tensor, num_src: int, num_dst: int) -> dict[str, object]:
    """The adjacency forms PyG's layers take for ``edge_index`` (duplicates merged by the sparse ones)."""
    size = (num_src, num_dst)
    return {
        "edge_index": edge_index,
        "EdgeIndex": EdgeIndex(edge_index, sparse_size=size),
        "torch COO adj_t": to_torch_coo_tensor(edge_index, size=size).t(),
        "torch CSR adj_t": to_torch_csc_tensor(edge_index, size=size).t(),  # a CSC matrix transposed is CSR
        "torch CSC adj_t": to_torch_csr_tensor(edge_index, size=size).t(),
        "SparseTensor adj_t": SparseTensor.from_edge_index(edge_index, sparse_sizes=size).t(),
    }


