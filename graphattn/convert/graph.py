"""Graphs with their attention patterns, and back: ``graph_to_data`` and ``to_networkx``.

A real graph (Cora, a molecule) is one more pattern: by default node ``i`` attends over its
in-neighbours and itself, ``GraphEdges(edge_index, n) | SelfLoops()``. Add global virtual
nodes or expander edges with ``add=VirtualNodes(1) | Expander(4)`` (Exphormer's recipe).
"""

from __future__ import annotations

import networkx as nx
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import from_networkx
from torch_geometric.utils import to_networkx as pyg_to_networkx

from ..checks import MAX_INDEX, check_allocation, check_int
from ..patterns import GraphEdges, Pattern, SelfLoops, check_edge_index
from .sequence import _as_label, check_pattern

__all__ = ["graph_to_data", "to_networkx"]


def graph_to_data(graph: Data | nx.Graph, pattern: Pattern | None = None, *, add: Pattern | None = None,
                  node_attrs: list[str] | None = None, y: object = None) -> Data:
    """A graph as a ``Data`` that carries its attention pattern.

    Args:
        graph: a PyG ``Data`` (not modified) or a networkx graph (converted with PyG's
            ``from_networkx``; nodes are renumbered ``0 .. n-1`` in ``graph.nodes`` order and
            an undirected graph gives both directions).
        pattern: the attention pattern (default ``GraphEdges(edge_index, n) | SelfLoops()``:
            each node attends over its in-neighbours and itself).
        add: a pattern joined to the default (or given) one with ``|``, e.g.
            ``VirtualNodes(1)`` or ``Expander(4)``.
        node_attrs: networkx node attributes to stack into ``x`` (PyG's ``group_node_attrs``).
        y: a label, stored as ``data.y`` (replacing the graph's own).

    Returns:
        ``Data`` with the graph's attributes as they were (``edge_index`` and ``edge_attr``
        are the graph's own edges, so PyG transforms applied afterwards see the graph), the
        attention ``pattern`` and ``num_nodes``. ``AttentionGraph.from_data`` (or a model
        given ``data.pattern``) lays the pattern; a ``Batch`` of such graphs collates one
        pattern per graph, which ``AttentionGraph.build`` accepts as a list. A graph without
        features gets ``x = 1`` per node (``[n, 1]``, as PyG's ``Constant`` transform). A graph
        without edges is valid: with the default pattern each node attends only to itself.
        Virtual nodes (``extra_nodes``) are not added to the data: the model that learns them
        inserts them.

    Raises:
        TypeError: ``graph`` is neither a ``Data`` nor a networkx graph, or a pattern is not a Pattern.
        ValueError: the graph has no node count, or the pattern does not fit it.
    """
    if isinstance(graph, nx.Graph):
        data = from_networkx(graph, group_node_attrs=node_attrs)
        if data.num_nodes is None:
            data.num_nodes = graph.number_of_nodes()
    elif isinstance(graph, Data):
        if node_attrs is not None:
            raise ValueError("node_attrs only applies to networkx graphs; a Data already has x")
        data = Data.from_dict(graph.to_dict())  # a new Data sharing the tensors; the input stays as it was
    else:
        raise TypeError(f"graph must be a torch_geometric Data or a networkx graph, got {type(graph).__name__}")
    n = data.num_nodes
    if n is None:
        raise ValueError("graph must know its number of nodes (x or num_nodes)")
    edges = data.edge_index if data.edge_index is not None else torch.empty(2, 0, dtype=torch.long)
    edges = check_edge_index(edges, n, name="graph.edge_index")
    if pattern is None:
        pattern = GraphEdges(edges, n) | SelfLoops()
    check_pattern(pattern)
    if add is not None:
        pattern = pattern | check_pattern(add, "add")
    for size in {n, n + pattern.extra_nodes}:
        pattern.validate(size)
    data.num_nodes = n
    data.edge_index = edges
    if data.x is None:
        data.x = torch.ones(n, 1)
    if y is not None:
        data.y = _as_label(y)
    data.pattern = pattern
    return data


def _node_tensors(data: Data) -> list[str]:
    n = data.num_nodes
    return [k for k in ("x", "pos", "y") if isinstance(data.get(k), Tensor) and data[k].dim() >= 1
            and data[k].size(0) == n]


def to_networkx(data_or_pattern: Data | Pattern, n: int | None = None,
                attention: tuple[Tensor, Tensor] | None = None) -> nx.DiGraph:
    """The attention graph as a networkx ``DiGraph`` with an edge ``j -> i`` when ``i`` attends to ``j``.

    Args:
        data_or_pattern: a ``Data`` (its ``edge_index``; node tensors ``x``, ``pos``, ``y``
            become node attributes as lists) or a ``Pattern`` laid on ``n`` nodes.
        n: the number of nodes; required for a pattern, must match ``data.num_nodes`` if given.
        attention: attention weights ``(edge_index, alpha)`` with ``alpha`` ``[E, H]`` (or
            ``[E]``), as every kernel returns them; each edge gets ``weight`` (the mean over
            heads) and ``alpha`` (the list per head).

    Raises:
        ValueError: ``n`` is missing or wrong, the attention is malformed, or it weighs an
            edge that is not in the graph.
    """
    if isinstance(data_or_pattern, Pattern):
        if n is None:
            raise ValueError("n (the number of nodes) is required to draw a pattern")
        check_int(n, "n", 0, MAX_INDEX)
        data_or_pattern.validate(n)
        _check_size(data_or_pattern.max_edges(n), f"{data_or_pattern!r} on n={n}")
        data = Data(edge_index=data_or_pattern.edge_index(n), num_nodes=n)
    elif isinstance(data_or_pattern, Data):
        data = data_or_pattern
        if n is not None and n != data.num_nodes:
            raise ValueError(f"n={n} does not match data.num_nodes={data.num_nodes}")
        if data.edge_index is None:
            data = Data(edge_index=torch.empty(2, 0, dtype=torch.long), num_nodes=data.num_nodes)
        _check_size(data.num_edges, f"a graph of {data.num_nodes} nodes")
    else:
        raise TypeError(f"data_or_pattern must be a Data or a Pattern, got {type(data_or_pattern).__name__}")
    graph = pyg_to_networkx(data, node_attrs=_node_tensors(data) or None, to_undirected=False,
                            remove_self_loops=False)
    if attention is not None:
        _add_attention(graph, attention, data.num_nodes)
    return graph


#: Bytes networkx spends on one edge of a ``DiGraph`` (its entries in the successor and
#: predecessor dicts and its attribute dict), measured: about 0.5 KB.
NX_EDGE_BYTES = 512


def _check_size(edges: int, what: str) -> None:
    check_allocation(edges * NX_EDGE_BYTES, f"a networkx DiGraph of {what} ({edges:,} edges)", "cpu",
                     "networkx holds every edge as Python objects: draw a smaller n or a sparser pattern")


def _add_attention(graph: nx.DiGraph, attention: object, n: int) -> None:
    if not isinstance(attention, (tuple, list)) or len(attention) != 2:
        raise TypeError("attention must be a pair (edge_index [2, E], alpha [E, H])")
    edge_index, alpha = attention
    edge_index = check_edge_index(edge_index, n, name="attention edge_index")
    if not isinstance(alpha, Tensor) or alpha.dim() not in (1, 2) or alpha.size(0) != edge_index.size(1):
        shape = list(alpha.shape) if isinstance(alpha, Tensor) else type(alpha).__name__
        raise ValueError(f"attention alpha must be a tensor [E, H] or [E] with E={edge_index.size(1)}, got {shape}")
    alpha = alpha.detach().float().cpu()
    alpha = alpha[:, None] if alpha.dim() == 1 else alpha  # (E, H)
    for (j, i), a in zip(edge_index.t().tolist(), alpha.tolist()):
        if not graph.has_edge(j, i):
            raise ValueError(f"attention weighs edge ({j} -> {i}), which is not in the graph")
        graph[j][i]["alpha"] = a
        graph[j][i]["weight"] = sum(a) / len(a)
