"""The prepared attention graph: built once per batch, handed to every layer.

Like FlexAttention's ``BlockMask`` (``create_block_mask`` once, reused by every layer), an
:class:`AttentionGraph` is derived once from whatever says who attends to whom (a pattern, an
``edge_index``, an ``EdgeIndex``, a sparse ``adj_t``) together with the batch layout
(sequence sizes, virtual nodes), positions and edge features. :meth:`AttentionGraph.build` is its
one constructor: it checks every value (ids in range, finite positions and edge features) and
lays out the sequences once; the forward then asks the device for nothing. Each kernel keeps
its own typed plan on the graph (:meth:`AttentionGraph.plan`), built the first time it runs and
reused by every layer and the backward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, TypeVar, cast

import torch
from torch import Tensor

from ..checks import MAX_INDEX, check_bool, check_int, check_tensor
from ..patterns import Pattern, batch_edge_index, check_sizes, sizes_from_batch
from .adjacency import as_edge_index

__all__ = ["AttentionGraph", "Layout", "CSR"]

Edges = Any  # Pattern | list of Patterns | edge_index | EdgeIndex | sparse adj_t | SparseTensor
P = TypeVar("P", covariant=True)
T = TypeVar("T")


class Planner(Protocol[P]):
    """Anything that derives a plan from a graph alone: a kernel, a score encoding."""

    @property
    def plan_key(self) -> object: ...

    def plan(self, graph: AttentionGraph) -> P: ...


class Layout(NamedTuple):
    """The sequences of a batch, laid out once: ``lengths`` (Python ints, virtual nodes
    included), ``ptr [B + 1]`` first node of each sequence, ``batch [N]`` each node's sequence,
    ``position [N]`` each node's index in its own sequence."""

    lengths: tuple[int, ...]
    ptr: Tensor
    batch: Tensor
    position: Tensor

    @staticmethod
    def of(sizes: Tensor, device: torch.device | None) -> Layout:
        ptr = torch.cat([sizes.new_zeros(1), torch.cumsum(sizes, 0)])
        batch = torch.repeat_interleave(torch.arange(sizes.numel()), sizes)
        position = torch.arange(int(ptr[-1])) - ptr[:-1][batch]
        return Layout(tuple(sizes.tolist()), ptr.to(device), batch.to(device), position.to(device))

    def to(self, device: torch.device) -> Layout:
        return Layout(self.lengths, self.ptr.to(device), self.batch.to(device), self.position.to(device))


class CSR(NamedTuple):
    """The edges sorted by (query, key), stably: ``rowptr [N + 1]``, the keys ``col [E]`` of query
    ``i`` at ``rowptr[i]:rowptr[i + 1]``, and ``perm [E]`` mapping each sorted position to the
    caller's edge (``edge_index[:, perm]`` is sorted; duplicates keep their order)."""

    rowptr: Tensor
    col: Tensor
    perm: Tensor

    def to(self, device: torch.device) -> CSR:
        return CSR(*(t.to(device) for t in self))


class AttentionGraph:
    """Who attends to whom on ``N`` nodes, prepared once for every layer and kernel.

    Either a ``pattern`` laid block-diagonally on sequences of ``sizes`` (structured kernels
    use its pieces or its mask) or an explicit ``edge_index`` (duplicate edges allowed: a
    duplicate is one more message; order kept, so attention weights come back aligned with the
    caller's edges). Build it with :meth:`build`.

    Virtual nodes: a pattern with ``extra_nodes = k`` (``VirtualNodes(k)``) is laid on each
    sequence with ``k`` nodes after its real ones. ``num_real_nodes`` counts the real nodes,
    ``num_nodes`` all of them; :meth:`with_virtual` inserts rows for the virtual nodes and
    :meth:`real` removes them again. Models own the rows they insert (learned embeddings).

    Attributes:
        num_nodes: nodes ``N`` the kernels see (real and virtual).
        pattern: the pattern, or ``None`` for explicit edges.
        sizes: ``[B]`` CPU tensor of sequence / graph sizes, virtual nodes included.
        layout: the :class:`Layout` of the sequences on the graph's device.
        num_virtual: virtual nodes per sequence ``k``.
        pos: ``[N_real]`` or ``[N_real, D]`` node positions given to :meth:`build`, or ``None``.
        edge_attr: ``[E, D]`` edge features aligned with ``edge_index``, or ``None``.
    """

    def __init__(self, num_nodes: int, sizes: Tensor, *, pattern: Pattern | None = None,
                 edge_index: Tensor | None = None, num_virtual: int = 0, pos: Tensor | None = None,
                 edge_attr: Tensor | None = None, device: torch.device | str | None = None):
        """Internal: use :meth:`build`, which checks what this trusts."""
        self.num_nodes = num_nodes
        self.pattern = pattern
        self.sizes = sizes
        self.num_virtual = num_virtual
        self.pos = pos
        self.edge_attr = edge_attr
        self.device = torch.device("cpu" if device is None else device)
        self.layout = Layout.of(sizes, self.device)
        self._edge_index = edge_index
        self._csr: CSR | None = None
        self._plans: dict[object, Any] = {}  # plan_key -> what that planner's plan() gave (each with a .to)
        self.choices: dict[object, object] = {}  # what ``auto`` picked, per kind of call (ops.dispatch)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, edges: Edges, num_nodes: int | None = None, *, batch: Tensor | None = None,
              lengths: Tensor | Sequence[int] | None = None, pos: Tensor | None = None,
              edge_attr: Tensor | None = None, includes_virtual: bool = False, trusted: bool = False) -> AttentionGraph:
        """Prepare the attention graph of one batch.

        ``num_nodes``, ``batch`` and ``lengths`` describe the rows of the data; a pattern with
        ``extra_nodes = k`` lays ``k`` virtual nodes after each sequence. By default the rows are
        the real nodes and the virtual ones come on top (what a model does before it inserts
        their learned rows, :meth:`with_virtual`); with ``includes_virtual`` the rows already
        hold them, as the last ``k`` of each sequence (what a layer or ``ops.attention`` gets).

        Args:
            edges: a :class:`~graphattn.patterns.Pattern` laid on each sequence; a list of
                patterns, one per sequence (a collated PyG ``Batch.pattern``); an ``edge_index``
                ``[2, E]`` (row 0 keys ``j``, row 1 queries ``i``) or a ``torch_geometric.EdgeIndex``;
                a sparse adjacency in PyG's ``adj_t`` convention (torch COO / CSR ``[N, N]``, or a
                ``torch_sparse.SparseTensor``): rows are queries, columns keys. A prepared graph
                is returned as it is (then nothing else may be given).
            num_nodes: the number of rows; optional when ``batch``, ``lengths`` or a sparse
                adjacency tells it.
            batch: ``[N]`` sequence / graph id of every row (sorted, as PyG builds it).
            lengths: sequence lengths summing to ``num_nodes`` (instead of ``batch``).
            pos: ``[N]`` or ``[N, D]`` positions of the real nodes (default: each node's
                index in its own sequence).
            edge_attr: ``[E, D]`` edge features aligned with an explicit ``edge_index``.
            includes_virtual: the rows include the pattern's virtual nodes.
            trusted: the node ids of an explicit ``edge_index`` were checked already (by a layer
                that derived it, or by ``EdgeIndex``, which is always trusted as PyG's layers
                trust it): only its shape and dtype are checked, so nothing asks the device for
                a number.
        """
        check_bool(includes_virtual, "includes_virtual")
        check_bool(trusted, "trusted")
        num_nodes = num_nodes if num_nodes is None else check_int(num_nodes, "num_nodes", 0, MAX_INDEX)
        if isinstance(edges, AttentionGraph):
            if any(a is not None for a in (batch, lengths, pos, edge_attr)):  # num_nodes is checked by the caller
                raise ValueError("edges is a prepared AttentionGraph: give batch, lengths, pos and edge_attr "
                                 "to AttentionGraph.build, not again")
            return edges
        # A graph prepared under inference_mode may be trained with later: it holds no inference tensors.
        with torch.inference_mode(False):
            return cls._build(_normal(edges), num_nodes, _normal(batch), _normal(lengths), _normal(pos), _normal(edge_attr),
                              includes_virtual, trusted)

    @classmethod
    def _build(cls, edges: Edges, num_nodes: int | None, batch: Tensor | None, lengths: object, pos: Tensor | None,
               edge_attr: Tensor | None, includes_virtual: bool, trusted: bool) -> AttentionGraph:
        if batch is not None and lengths is not None:
            raise ValueError("give either batch or lengths, not both")
        device = next((t.device for t in (batch, edges, pos) if isinstance(t, Tensor)), None)
        if isinstance(edges, (list, tuple)):
            edges = _one_pattern(edges)
        if isinstance(edges, Pattern) or isinstance(edges, list):
            graph = cls._from_patterns(edges, num_nodes, batch, lengths, device, includes_virtual, pos)
        else:
            edge_index, num_nodes = as_edge_index(edges, num_nodes, batch, lengths, trusted)
            sizes = _sizes(num_nodes, batch, lengths)
            graph = cls(num_nodes, sizes, edge_index=edge_index.to(device) if device else edge_index,
                        device=edge_index.device if device is None else device)
        if pos is not None:
            graph.pos = _check_pos(pos, graph.num_real_nodes)
        if edge_attr is not None:
            graph.edge_attr = _check_edge_attr(edge_attr, graph)
        return graph

    @classmethod
    def _from_patterns(cls, patterns: Pattern | list[Pattern], num_nodes: int | None, batch: Tensor | None,
                       lengths: object, device: torch.device | None, includes_virtual: bool,
                       pos: Tensor | None) -> AttentionGraph:
        if num_nodes is None and batch is None and lengths is None:
            raise ValueError("a pattern needs num_nodes (or batch / lengths) to be laid on nodes")
        rows = _sizes(num_nodes, batch, lengths)
        extra = {p.extra_nodes for p in patterns} if isinstance(patterns, list) else {patterns.extra_nodes}
        if len(extra) > 1:
            raise ValueError(f"the patterns of one batch must ask for the same number of virtual nodes, got {extra}")
        k = extra.pop() if extra else 0
        if includes_virtual and k:
            if pos is not None:
                raise ValueError("pos cannot be laid on virtual nodes; leave pos=None so score-side encodings use "
                                 "sequence positions (virtual nodes last)")
            if bool((rows < k).any()):
                raise ValueError(f"pattern {patterns!r} lays {k} virtual node(s) on the last rows of every sequence, "
                                 f"but a sequence has only {int(rows.min())} rows")
        sizes = rows if includes_virtual else rows + k
        if isinstance(patterns, Pattern):
            for size in set(sizes.tolist()):  # kernels that never build edge_index must not see bad patterns
                patterns.validate(size)
            return cls(int(sizes.sum()), sizes, pattern=patterns, num_virtual=k, device=device)
        if len(patterns) != sizes.numel():
            raise ValueError(f"edges holds {len(patterns)} patterns but the batch has {sizes.numel()} sequences")
        parts, offset = [], 0
        for p, size in zip(patterns, sizes.tolist()):
            parts.append(p.edge_index(size) + offset)
            offset += size
        edge_index = torch.cat(parts, dim=1) if parts else torch.empty(2, 0, dtype=torch.long)
        return cls(offset, sizes, edge_index=edge_index.to(device), num_virtual=k, device=device)

    @classmethod
    def from_data(cls, data: Any) -> AttentionGraph:
        """:meth:`build` on a converted ``Data`` / ``Batch``: its ``pattern`` (one, or one per
        graph) laid on ``batch``, else its ``edge_index`` with ``edge_attr``."""
        batch = getattr(data, "batch", None)
        pattern = getattr(data, "pattern", None)
        if pattern is not None:
            return cls.build(pattern, data.num_nodes, batch=batch)
        return cls.build(data.edge_index, data.num_nodes, batch=batch, edge_attr=getattr(data, "edge_attr", None))

    def to(self, device: torch.device | str) -> AttentionGraph:
        """The same graph with every tensor (plans included) on ``device``."""
        device = torch.device(device)
        if device == self.device:
            return self
        with torch.inference_mode(False):
            return self._moved(device)

    def _moved(self, device: torch.device) -> AttentionGraph:
        out = AttentionGraph(self.num_nodes, self.sizes, pattern=self.pattern, num_virtual=self.num_virtual,
                             edge_index=None if self._edge_index is None else self._edge_index.to(device),
                             pos=None if self.pos is None else self.pos.to(device),
                             edge_attr=None if self.edge_attr is None else self.edge_attr.to(device), device=device)
        out._csr = None if self._csr is None else self._csr.to(device)
        out._plans = {key: plan.to(device) for key, plan in self._plans.items()}
        out.choices = dict(self.choices)
        return out

    # ------------------------------------------------------------------ what it holds
    def plan(self, planner: Planner[P]) -> P:
        """``planner.plan(self)``, built once per graph and kept under ``planner.plan_key``."""
        key = planner.plan_key
        if key not in self._plans:
            with torch.inference_mode(False):  # usable for training even when first planned under inference_mode
                self._plans[key] = planner.plan(self)
        return self._plans[key]

    @property
    def edge_index(self) -> Tensor:
        """``[2, E]``: row 0 keys ``j``, row 1 queries ``i``; sorted by query for patterns."""
        if self._edge_index is None:  # built from a pattern (a graph of edges holds them from the start)
            self._edge_index = batch_edge_index(cast(Pattern, self.pattern), self.sizes).to(self.device)
        return self._edge_index

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.size(1))

    def edge_bound(self) -> int:
        """An upper bound on ``num_edges`` without building ``edge_index`` (a pattern's ``max_edges``
        per sequence), for estimating memory before anything is allocated."""
        if self._edge_index is not None or self.pattern is None:
            return self.num_edges
        return sum(self.pattern.max_edges(size) for size in self.layout.lengths)

    @property
    def num_real_nodes(self) -> int:
        return self.num_nodes - self.num_virtual * self.sizes.numel()

    @property
    def batch(self) -> Tensor:
        """``[N]`` the sequence / graph id of every node (virtual nodes included)."""
        return self.layout.batch

    def csr(self) -> CSR:
        """The :class:`CSR` of ``edge_index`` by (query, key), built once."""
        if self._csr is None:
            src, dst = self.edge_index
            n = max(self.num_nodes, 1)
            perm = torch.sort(dst * n + src, stable=True).indices
            counts = torch.bincount(dst, minlength=self.num_nodes)
            self._csr = CSR(torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)]), src[perm], perm)
        return self._csr

    def node_positions(self) -> Tensor:
        """Positions for score-side encodings, one per node the kernels see: ``pos`` as given,
        or each node's index in its own sequence (virtual nodes last)."""
        if self.pos is None:
            return self.layout.position
        if self.num_virtual:
            raise ValueError("pos cannot be laid on virtual nodes; leave pos=None so score-side encodings use "
                             "sequence positions (virtual nodes last)")
        return self.pos

    def real_positions(self) -> Tensor:
        """Positions of the real nodes (``pos`` as given, or their index in their sequence)."""
        if self.pos is not None:
            return self.pos
        return self.real(self.layout.position)

    # ------------------------------------------------------------------ virtual nodes
    @property
    def real_sizes(self) -> Tensor:
        return self.sizes - self.num_virtual if self.sizes.numel() else self.sizes

    @property
    def real_index(self) -> Tensor:
        """``[N_real]`` rows of the real nodes among all ``N`` nodes."""
        return self.plan(_VIRTUAL).real

    @property
    def virtual_index(self) -> Tensor:
        """``[B * k]`` rows of the virtual nodes, sequence by sequence."""
        return self.plan(_VIRTUAL).virtual

    def with_virtual(self, h: Tensor, rows: Tensor) -> Tensor:
        """``h [N_real, ...]`` with ``rows [k, ...]`` inserted after each sequence: ``[N, ...]``."""
        if self.num_virtual == 0:
            return h
        if h.size(0) != self.num_real_nodes or rows.shape != (self.num_virtual, *h.shape[1:]):
            raise ValueError(f"with_virtual needs h [{self.num_real_nodes}, ...] and rows [{self.num_virtual}, ...], "
                             f"got {list(h.shape)} and {list(rows.shape)}")
        out = h.new_empty(self.num_nodes, *h.shape[1:]).index_copy(0, self.real_index, h)
        return out.index_copy(0, self.virtual_index, rows.repeat(self.sizes.numel(), *([1] * (h.dim() - 1))))

    def real(self, h: Tensor) -> Tensor:
        """The rows of the real nodes of ``h [N, ...]``."""
        return h if self.num_virtual == 0 else h.index_select(0, self.real_index)

    def __repr__(self) -> str:
        what = repr(self.pattern) if self.pattern is not None else f"edge_index with {self.num_edges} edges"
        virtual = f", num_virtual={self.num_virtual}" if self.num_virtual else ""
        return f"AttentionGraph({what}, num_nodes={self.num_nodes}, sequences={self.sizes.numel()}{virtual})"


class _VirtualRows(NamedTuple):
    real: Tensor
    virtual: Tensor

    def to(self, device: torch.device) -> _VirtualRows:
        return _VirtualRows(self.real.to(device), self.virtual.to(device))


class _VirtualPlanner:
    """The rows of the real and the virtual nodes, derived once per graph."""

    plan_key = "virtual_rows"

    def plan(self, graph: AttentionGraph) -> _VirtualRows:
        layout, k = graph.layout, graph.num_virtual
        real = torch.arange(graph.num_real_nodes, device=graph.device)
        real = real + k * torch.repeat_interleave(torch.arange(len(layout.lengths), device=graph.device),
                                                  graph.real_sizes.to(graph.device))
        virtual = ((layout.ptr[1:] - k)[:, None] + torch.arange(k, device=graph.device)).flatten()
        return _VirtualRows(real, virtual)


_VIRTUAL = _VirtualPlanner()


def _normal(value: T) -> T:
    """An inference tensor cloned into a normal one (which autograd may save, of its type); anything else as it is."""
    return cast(T, value.clone()) if isinstance(value, Tensor) and value.is_inference() else value


def _one_pattern(patterns: Sequence[object]) -> Pattern | list[Pattern]:
    """A collated list of patterns: one pattern if they are all equal, else the list."""
    found = [p for p in patterns if isinstance(p, Pattern)]
    if not patterns or len(found) != len(patterns):
        inner = type(patterns[0]).__name__ if patterns else "nothing"
        raise TypeError(f"edges must be a Pattern (or a list of them, one per sequence), an edge_index [2, E], "
                        f"an EdgeIndex or a sparse adj_t; got a {type(patterns).__name__} of {inner}")
    return found[0] if all(p == found[0] for p in found[1:]) else found


def _sizes(num_nodes: int | None, batch: Tensor | None, lengths: object) -> Tensor:
    if lengths is not None:
        return check_sizes(lengths, num_nodes, name="lengths").cpu()
    if batch is not None:
        return sizes_from_batch(batch, num_nodes).cpu()
    return torch.tensor([num_nodes])


def _check_pos(pos: object, n: int) -> Tensor:
    pos = check_tensor(pos, "pos", kind="real", shape="[N] or [N, D]")
    if pos.dim() not in (1, 2) or pos.size(0) != n:
        raise ValueError(f"pos must be a tensor of shape [N] or [N, D] with N={n} (real nodes), got {list(pos.shape)}")
    return check_tensor(pos, "pos", finite=True)


def _check_edge_attr(edge_attr: object, graph: AttentionGraph) -> Tensor:
    if graph.pattern is not None:
        raise ValueError("edge_attr needs an explicit edge_index, not a pattern")
    edge_attr = check_tensor(edge_attr, "edge_attr", kind="float", shape="[E, D]")
    if edge_attr.dim() != 2 or edge_attr.size(0) != graph.num_edges:
        raise ValueError(f"edge_attr must have shape [E, D] with E={graph.num_edges}, got {list(edge_attr.shape)}")
    return check_tensor(edge_attr, "edge_attr", finite=True)
