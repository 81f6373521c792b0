"""Helpers of the drop-in tests: twin layers (graphattn's and PyG's, same seed), PyG's adjacency forms,
and a host round-trip counter that also walks into graphattn's GAT custom ops."""

from __future__ import annotations

import torch
import torch_geometric.nn as pyg_nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch_geometric import EdgeIndex
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csc_tensor, to_torch_csr_tensor

import graphattn.nn as ga_nn
from graphattn.ops import sparse, sparse_gat

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


aten = torch.ops.aten
SYNCS = {aten._local_scalar_dense, aten.item, aten.nonzero, aten.is_nonzero}
BODIES = {op._opoverload: op._init_fn for op in (
    sparse._sparse_attention, sparse._sparse_backward, sparse_gat._gat_scores, sparse_gat._gatv2_scores,
    sparse_gat._gatv2_backward_op, sparse_gat._softmax_spmm, sparse_gat._softmax_spmm_backward_op)}


class SyncCounter(TorchDispatchMode):
    """Counts the ops that make the host wait for the device, inside graphattn's custom ops too."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket in SYNCS:
            self.calls.append(str(func))
        if func in BODIES:
            with self:
                return BODIES[func](*args, **kwargs)
        return func(*args, **kwargs)
