"""PyG's adjacency forms, prepared once per adjacency for the attention layers.

PyG's layers take an ``edge_index`` ``[2, E]`` (row 0 sources ``j``, row 1 destinations ``i``),
an ``EdgeIndex``, a torch sparse ``adj_t`` (COO, CSR or CSC, ``[N_dst, N_src]``) or a
``torch_sparse.SparseTensor`` ``adj_t``, on one node set or two (bipartite ``(x_src, x_dst)``),
and GAT-style layers replace self-loops on every call. :func:`prepare` does that work once per
adjacency and keeps it (:class:`Edges`): the messages in PyG's order, the adjacency as PyG's layer
would pass it on, and the :class:`~graphattn.ops.AttentionGraph` the kernels run on, laid on
``max(N_src, N_dst)`` nodes (queries come from the destinations, keys from the sources: both sides
padded to that many rows). A later call with the same adjacency finds it again by identity, version
counter, shape and node counts (an edge tensor edited in place, or a new one, is prepared anew):

* an ``EdgeIndex`` keeps it on itself, as PyG keeps its CSR there, so ``torch.compile`` reads it
  without a graph break; an ``EdgeIndex``'s ids are trusted, as PyG's layers trust them;
* any other adjacency is looked up in a small table by identity (:data:`CACHE_SIZE` entries, least
  recently used first out, dropped as soon as the adjacency is freed);
* a prepared :class:`~graphattn.ops.AttentionGraph` is attended as built (no self-loop rule: build
  it with the self-loops wanted), its ``edge_attr`` the edge features.

A raw ``edge_index``'s ids are checked where it is prepared (once), never on a later call.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import torch
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import add_self_loops, remove_self_loops, to_edge_index
from torch_geometric.utils.loop import compute_loop_attr

from ..ops import AttentionGraph
from ..patterns import check_edge_index

__all__ = ["Edges", "prepare", "edge_features", "is_sparse", "node_counts", "pad_rows", "pyg_tools_active", "CACHE_SIZE"]

#: How many prepared adjacencies (other than ``EdgeIndex``, which keeps its own) stay cached.
CACHE_SIZE = 8
#: The self-loop rules: ``"keep"`` the edges as given, ``"replace"`` every self-loop by exactly
#: one per node (PyG's ``remove_self_loops`` then ``add_self_loops``, as ``GATConv`` does).
LOOPS = ("keep", "replace")

_CACHE: OrderedDict[tuple, tuple[Any, tuple, Edges]] = OrderedDict()
_ATTR = "_graphattn_edges"


@dataclass(frozen=True, eq=False)
class Edges:
    """One adjacency, prepared (see the module docstring).

    Attributes:
        adj: the adjacency as PyG's layer passes it on after its self-loop rule, in the form given.
        edge_index: ``[2, E]`` sources (row 0) and destinations (row 1) in PyG's order of messages
            (a sparse adjacency: its own order, rows first).
        values: a sparse adjacency's values in that order (PyG reads edge features there), or None.
        num_src, num_dst: source and destination nodes.
        kept: ``[E_kept]`` the caller's edges the self-loop rule kept, or None for all, in order.
        loops: self-loops appended after the kept edges.
        graph: the kernels' graph on ``max(num_src, num_dst)`` nodes: ``edge_index``, in its order.
        memo: what layers derive from it once (graphattn.nn.pyg.extras: unions with a pattern).
    """

    adj: Any
    edge_index: Tensor
    values: Tensor | None
    num_src: int
    num_dst: int
    kept: Tensor | None
    loops: int
    graph: AttentionGraph
    memo: dict = field(default_factory=dict, repr=False)

    @property
    def sparse(self) -> bool:
        return is_sparse(self.adj)


class _Kept:
    """The prepared forms kept on an ``EdgeIndex``; a copy or a pickle of it starts empty."""

    def __init__(self) -> None:
        self.entries: dict[tuple, tuple[tuple, Edges]] = {}

    def __reduce__(self):
        return (_Kept, ())

    def __deepcopy__(self, memo: dict) -> _Kept:
        return _Kept()


def is_sparse(adj: object) -> TypeGuard[Tensor | SparseTensor]:
    """Whether ``adj`` is a sparse ``adj_t`` (torch sparse or ``SparseTensor``)."""
    return isinstance(adj, SparseTensor) or isinstance(adj, Tensor) and adj.layout != torch.strided


def _stamp(adj: Tensor | SparseTensor) -> tuple:
    """What must not have changed for a prepared adjacency to be reused."""
    if isinstance(adj, SparseTensor):
        parts = (adj.storage._rowptr, adj.storage._row, adj.storage._col, adj.storage._value)
        return tuple((id(t), t._version) if t is not None else None for t in parts) + (tuple(adj.sizes()),)
    return adj._version, tuple(adj.shape)


def prepare(adj: object, num_src: int, num_dst: int, loops: str = "keep", fill_value: Any = None, *,
            name: str = "edge_index") -> Edges:
    """The prepared form of ``adj`` between ``num_src`` sources and ``num_dst`` destinations under
    the self-loop rule ``loops`` (see :data:`LOOPS`), built once and found again (module docstring).
    ``fill_value`` fills a torch sparse adjacency's values on its new self-loops (PyG's
    ``add_self_loops``); an ``edge_attr`` given beside is filled per call by :func:`edge_features`.
    ``name`` names the adjacency in errors."""
    if isinstance(adj, AttentionGraph):  # prepared by the caller: attended as built
        if num_src != adj.num_nodes or num_dst != adj.num_nodes:
            raise ValueError(f"the prepared graph has {adj.num_nodes} nodes but x has {num_src} sources and {num_dst} "
                             f"destinations")
        return Edges(adj.edge_index, adj.edge_index, adj.edge_attr, num_src, num_dst, None, 0, adj)
    if not isinstance(adj, (Tensor, SparseTensor)):
        raise TypeError(f"{name} must be an edge_index [2, E], an EdgeIndex, a sparse adj_t, a SparseTensor or a "
                        f"prepared AttentionGraph, got {type(adj).__name__}")
    fill_key = fill_value if isinstance(fill_value, (str, int, float, type(None))) else id(fill_value)
    key = (num_src, num_dst, loops, fill_key)
    if isinstance(adj, EdgeIndex):
        kept = getattr(adj, _ATTR, None)
        found = kept.entries.get(key) if kept is not None else None
        if found is not None and (torch.compiler.is_compiling() or found[0] == _stamp(adj)):
            return found[1]
        edges = _build(adj, num_src, num_dst, loops, fill_value, name)
        if kept is None:
            kept = _Kept()
            setattr(adj, _ATTR, kept)
        kept.entries[key] = (_stamp(adj), edges)
        return edges
    if torch.compiler.is_compiling():  # no table lookups in traced code
        return _build(adj, num_src, num_dst, loops, fill_value, name)
    by_id = (id(adj), *key)
    found = _CACHE.get(by_id)
    if found is not None and found[0]() is adj and found[1] == _stamp(adj):
        _CACHE.move_to_end(by_id)
        return found[2]
    edges = _build(adj, num_src, num_dst, loops, fill_value, name)
    _CACHE[by_id] = (weakref.ref(adj, _forget(by_id)), _stamp(adj), edges)
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return edges


def _forget(key: tuple) -> Any:
    """The callback that drops ``key``'s entry when its adjacency is freed (and not a newer entry
    that reuses the freed object's id)."""
    def callback(ref: weakref.ref, cache: OrderedDict = _CACHE) -> None:  # the table itself, not the module's name
        entry = cache.get(key)
        if entry is not None and entry[0] is ref:
            del cache[key]
    return callback


def _build(adj: Tensor | SparseTensor, num_src: int, num_dst: int, loops: str, fill_value: Any, name: str) -> Edges:
    kept, num_loops, values = None, 0, None
    trusted = isinstance(adj, EdgeIndex) or is_sparse(adj)  # sparse ids lie inside the matrix's shape
    if not isinstance(adj, EdgeIndex):  # an alias of the same data: the table must not keep the caller's object alive
        adj = SparseTensor.from_storage(adj.storage) if isinstance(adj, SparseTensor) else adj.detach()
    if isinstance(adj, SparseTensor):
        if loops == "replace":
            import torch_sparse

            adj = torch_sparse.set_diag(adj)
        row, col, values = adj.coo()
        edge_index = torch.stack([col, row])
    elif is_sparse(adj):
        if loops == "replace":  # PyG's own utilities, so the adjacency comes back exactly as PyG's layer has it
            adj = add_self_loops(remove_self_loops(adj)[0], fill_value=fill_value)[0]
        index, values = to_edge_index(adj)
        edge_index = index.flip(0)
    else:
        if not trusted:
            _check_ids(adj, num_src, num_dst, name)
        if loops == "replace":
            num_edges = adj.size(1)
            adj, kept = remove_self_loops(adj, torch.arange(num_edges, device=adj.device))
            num_loops = min(num_src, num_dst)
            adj, _ = add_self_loops(adj, num_nodes=num_loops)
            kept = None if kept.numel() == num_edges else kept
        edge_index = adj.as_tensor() if isinstance(adj, EdgeIndex) else adj
    graph = AttentionGraph.build(edge_index, max(num_src, num_dst), trusted=True)
    return Edges(adj, edge_index, values, num_src, num_dst, kept, num_loops, graph)


def _check_ids(edge_index: Tensor, num_src: int, num_dst: int, name: str) -> None:
    check_edge_index(edge_index, num_src if num_src == num_dst else None, name=name)  # type, shape, id range
    if num_src == num_dst:
        return
    for row, n, what in ((0, num_src, "source nodes"), (1, num_dst, "destination nodes")):
        top = int(edge_index[row].max()) if edge_index.size(1) else -1
        if top >= n:
            raise ValueError(f"{name}[{row}] has node id {top} but there are only {n} {what} (ids must be < {n})")


def edge_features(edges: Edges, edge_attr: Tensor | None, fill_value: Any = "mean") -> Tensor | None:
    """``edge_attr`` aligned with ``edges.edge_index`` as PyG's layer sees it: from a sparse
    adjacency's values when not given (a torch sparse one only if they are vectors), the kept edges'
    rows, and the appended self-loops' filled by ``fill_value`` (PyG's ``add_self_loops``)."""
    if edge_attr is None:
        values = edges.values
        if values is None or (not isinstance(edges.adj, SparseTensor) and values.dim() < 2):
            return None
        return values
    if edges.kept is None and edges.loops == 0:
        return edge_attr
    kept = edge_attr if edges.kept is None else edge_attr.index_select(0, edges.kept)
    if edges.loops == 0:
        return kept
    kept_index = edges.edge_index[:, : kept.size(0)]
    return torch.cat([kept, compute_loop_attr(kept_index, kept, edges.loops, False, fill_value)], dim=0)


def node_counts(x_src: Tensor, x_dst: Tensor | None, adj: object, size: tuple[int, int] | None) -> tuple[int, int]:
    """``(N_src, N_dst)`` as PyG's ``propagate`` infers them: from a sparse ``adj_t``'s shape,
    ``size``, ``x_dst``, or else ``N_dst = N_src``; every source that tells them must agree."""
    told: list[tuple[str, int | None, int | None]] = [("x", x_src.size(0), None if x_dst is None else x_dst.size(0))]
    if size is not None:
        if not isinstance(size, (tuple, list)) or len(size) != 2:
            raise ValueError(f"size must be a pair (N_src, N_dst), got {size!r}")
        told.append(("size", size[0], size[1]))
    if is_sparse(adj):
        told.append(("the sparse adj_t's shape [N_dst, N_src]", adj.size(1), adj.size(0)))
    num_src = x_src.size(0)
    num_dst = next((d for _, _, d in told if d is not None), num_src)
    for what, s, d in told:
        if (s is not None and s != num_src) or (d is not None and d != num_dst):
            raise ValueError(f"{what} says {s} source and {d} destination nodes, but the inputs hold {num_src} "
                             f"sources and {num_dst} destinations")
    return num_src, num_dst


def pad_rows(t: Tensor, n: int) -> Tensor:
    """``t`` with zero rows appended up to ``n`` rows (one side of a bipartite graph on the kernels' nodes)."""
    return t if t.size(0) == n else torch.cat([t, t.new_zeros(n - t.size(0), *t.shape[1:])])


#: The hook tables of ``MessagePassing``; any hook there routes a layer through ``propagate``.
_HOOKS = ("_propagate_forward_pre_hooks", "_propagate_forward_hooks", "_message_forward_pre_hooks",
          "_message_forward_hooks", "_aggregate_forward_pre_hooks", "_aggregate_forward_hooks",
          "_message_and_aggregate_forward_pre_hooks", "_message_and_aggregate_forward_hooks",
          "_edge_update_forward_pre_hooks", "_edge_update_forward_hooks")


def pyg_tools_active(module: Any) -> bool:
    """Whether PyG's explain mode or a message-passing hook is on for ``module``: then PyG must see
    its ``propagate`` and ``message``."""
    return bool(module.explain) or any(getattr(module, name) for name in _HOOKS)
