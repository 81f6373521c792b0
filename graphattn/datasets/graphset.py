"""A PyG ``InMemoryDataset`` assembled from tensors built here, with no folder behind it.

PyG stores a dataset of graphs as one concatenated ``Data`` plus ``slices`` (where each graph's
rows start in each attribute). :func:`graph_set` builds exactly that from per-graph node and edge
counts, so ZINC and Peptides-func need neither ten thousand ``Data`` objects nor a processed
file: the tensors come from verified sources or a checked cache.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

__all__ = ["GraphSet", "graph_set"]


class GraphSet(InMemoryDataset):
    """Graphs held in memory (``dataset[i]`` is the ``i``-th ``Data``); ``transform`` is applied on access.

    Args:
        data: the graphs' attributes concatenated along their first dimension (``edge_index``
            along its second, with node ids local to each graph).
        slices: per attribute, ``[num_graphs + 1]`` offsets of each graph's rows.
        name: shown by ``repr``.
    """

    def __init__(self, data: Data, slices: dict[str, Tensor], name: str, transform: Callable | None = None):
        self.name = name
        super().__init__(None, transform)
        self._data, self.slices = data, slices

    def __repr__(self) -> str:
        return f"{self.name}({len(self)})"


def _offsets(counts: Tensor) -> Tensor:
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def graph_set(name: str, *, num_nodes: Tensor, num_edges: Tensor, x: Tensor, edge_index: Tensor,
              edge_attr: Tensor, y: Tensor, transform: Callable | None = None) -> GraphSet:
    """A :class:`GraphSet` of ``G`` graphs from concatenated tensors.

    Args:
        num_nodes: ``[G]`` nodes per graph; ``num_edges``: ``[G]`` directed edges per graph.
        x: ``[sum(num_nodes), ...]`` node features; ``edge_attr``: ``[sum(num_edges), ...]``.
        edge_index: ``[2, sum(num_edges)]`` with node ids local to each graph.
        y: ``[G, ...]`` one target row per graph.
    """
    if not (len(num_nodes) == len(num_edges) == len(y)):
        raise ValueError(f"num_nodes, num_edges and y must have one entry per graph, got "
                         f"{len(num_nodes)}, {len(num_edges)}, {len(y)}")
    if x.size(0) != int(num_nodes.sum()) or edge_index.size(1) != int(num_edges.sum()) or len(edge_attr) != edge_index.size(1):
        raise ValueError("x, edge_index and edge_attr must hold sum(num_nodes) nodes and sum(num_edges) edges")
    node_ptr, edge_ptr = _offsets(num_nodes), _offsets(num_edges)
    data = Data(x=x, edge_index=edge_index, edge_attr=edge_attr, y=y)
    slices = {"x": node_ptr, "edge_index": edge_ptr, "edge_attr": edge_ptr, "y": torch.arange(len(y) + 1)}
    return GraphSet(data, slices, name, transform)
