"""The prepared attention graph: built once per batch, handed to every layer.

Like FlexAttention's ``BlockMask`` (``create_block_mask`` once, reused by every layer), an
:class:`AttentionGraph` is derived once from whatever says who attends to whom (a pattern, an
``edge_index``, an ``EdgeIndex``, a sparse ``adj_t``) together with the batch layout
(sequence sizes, virtual nodes), positions and edge features. Kernels read what they need from
its lazy caches (backend choice, tile plans and masks, the query-sorted CSR, dense masks) and
never rebuild it, so a model that passes one graph to all its layers derives each of them
once per forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..checks import all_finite, check_tensor
from ..patterns import Pattern, batch_edge_index, check_sizes, positions, sizes_from_batch
from .adjacency import as_edge_index

__all__ = ["AttentionGraph"]

Edges = Any  # Pattern | list of Patterns | edge_index | EdgeIndex | sparse adj_t | SparseTensor


def _move(value: object, device: torch.device) -> object:
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_move(v, device) for v in value)
    if isinstance(value, tuple):  # a NamedTuple plan
        return type(value)(*(_move(v, device) for v in value))
    if isinstance(value, AttentionGraph):
        return value.to(device)
    return value


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
        num_virtual: virtual nodes per sequence ``k``.
        pos: ``[N_real]`` or ``[N_real, D]`` node positions given to :meth:`build`, or ``None``.
        edge_attr: ``[E, D]`` edge features aligned with ``edge_index``, or ``None``.
    """

    def __init__(self, num_nodes: int, *, pattern: Pattern | None = None, sizes: Tensor | None = None,
                 edge_index: Tensor | None = None, num_virtual: int = 0, pos: Tensor | None = None,
                 edge_attr: Tensor | None = None, device: torch.device | str | None = None):
        self.num_nodes = num_nodes
        self.pattern = pattern
        self.sizes = torch.tensor([num_nodes]) if sizes is None else sizes.cpu().long()
        self.num_virtual = num_virtual
        self.pos = pos
        self.edge_attr = edge_attr
        self.device = torch.device("cpu" if device is None else device)
        self._edge_index = edge_index
        self._cache: dict[object, object] = {}

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, edges: Edges, num_nodes: int | None = None, *, batch: Tensor | None = None,
              lengths: Tensor | Sequence[int] | None = None, pos: Tensor | None = None,
              edge_attr: Tensor | None = None) -> AttentionGraph:
        """Prepare the attention graph of one batch.

        ``num_nodes``, ``batch`` and ``lengths`` describe the real nodes (the rows of the data); a
        pattern with ``extra_nodes = k`` adds ``k`` virtual nodes after each sequence (see
        :meth:`with_virtual`; for rows that already include them, :meth:`for_rows`).

        Args:
            edges: a :class:`~graphattn.patterns.Pattern` laid on each sequence; a list of
                patterns, one per sequence (a collated PyG ``Batch.pattern``); an ``edge_index``
                ``[2, E]`` (row 0 keys ``j``, row 1 queries ``i``) or a ``torch_geometric.EdgeIndex``;
                a sparse adjacency in PyG's ``adj_t`` convention (torch COO / CSR ``[N, N]``, or a
                ``torch_sparse.SparseTensor``): rows are queries, columns keys.
            num_nodes: the number of (real) nodes; optional when ``batch``, ``lengths`` or a
                sparse adjacency tells it.
            batch: ``[N]`` sequence / graph id of every node (sorted, as PyG builds it).
            lengths: sequence lengths summing to ``num_nodes`` (instead of ``batch``).
            pos: ``[N]`` or ``[N, D]`` positions of the real nodes (default: each node's
                index in its own sequence).
            edge_attr: ``[E, D]`` edge features aligned with an explicit ``edge_index``.
        """
        if isinstance(edges, AttentionGraph):
            return _prepared(edges, num_nodes, batch, lengths, pos, edge_attr)
        if batch is not None and lengths is not None:
            raise ValueError("give either batch or lengths, not both")
        device = next((t.device for t in (batch, edges, pos) if isinstance(t, Tensor)), None)
        if isinstance(edges, (list, tuple)):
            edges = _one_pattern(edges)
        if isinstance(edges, Pattern) or _is_pattern_list(edges):
            graph = cls._from_patterns(edges, num_nodes, batch, lengths, device)
        else:
            edge_index, num_nodes = as_edge_index(edges, num_nodes, batch, lengths)
            sizes = _real_sizes(num_nodes, batch, lengths)
            graph = cls(num_nodes, sizes=sizes, edge_index=edge_index.to(device) if device else edge_index,
                        device=edge_index.device if device is None else device)
        if pos is not None:
            graph.pos = _check_pos(pos, graph.num_real_nodes)
        if edge_attr is not None:
            graph.edge_attr = _check_edge_attr(edge_attr, graph)
        return graph

    @classmethod
    def for_rows(cls, edges: Edges, num_rows: int, *, batch: Tensor | None = None,
                 lengths: Tensor | Sequence[int] | None = None, pos: Tensor | None = None,
                 edge_attr: Tensor | None = None) -> AttentionGraph:
        """:meth:`build` for inputs that already hold a row for every node: a pattern's virtual
        nodes are the last ``k`` of the ``num_rows`` rows of each sequence (of ``batch`` /
        ``lengths``, which count them too). What a layer or ``ops.attention`` does with a pattern."""
        if isinstance(edges, AttentionGraph):
            return _prepared(edges, None, batch, lengths, pos, edge_attr)
        k = edges.extra_nodes if isinstance(edges, Pattern) else 0
        if k == 0:
            return cls.build(edges, num_rows, batch=batch, lengths=lengths, pos=pos, edge_attr=edge_attr)
        if pos is not None:
            raise ValueError("pos cannot be laid on virtual nodes; leave pos=None so score-side encodings use "
                             "sequence positions (virtual nodes last)")
        sizes = _real_sizes(num_rows, batch, lengths)
        if bool((sizes < k).any()):
            raise ValueError(f"pattern {edges!r} lays {k} virtual node(s) on the last rows of every sequence, "
                             f"but a sequence has only {int(sizes.min())} rows")
        return cls.build(edges, lengths=sizes - k, edge_attr=edge_attr).to(
            batch.device if batch is not None else torch.device("cpu"))

    @classmethod
    def _from_patterns(cls, patterns: Pattern | list[Pattern], num_nodes: int | None, batch: Tensor | None,
                       lengths: object, device: torch.device | None) -> AttentionGraph:
        if num_nodes is None and batch is None and lengths is None:
            raise ValueError("a pattern needs num_nodes (or batch / lengths) to be laid on nodes")
        real = _real_sizes(num_nodes, batch, lengths)
        if isinstance(patterns, Pattern):
            k = patterns.extra_nodes
            sizes = real + k
            for size in set(sizes.tolist()):  # kernels that never build edge_index must not see bad patterns
                patterns.validate(size)
            return cls(int(sizes.sum()), pattern=patterns, sizes=sizes, num_virtual=k, device=device)
        if len(patterns) != real.numel():
            raise ValueError(f"edges holds {len(patterns)} patterns but the batch has {real.numel()} sequences")
        extra = {p.extra_nodes for p in patterns}
        if len(extra) > 1:
            raise ValueError(f"the patterns of one batch must ask for the same number of virtual nodes, got {extra}")
        k = extra.pop() if extra else 0
        sizes = real + k
        parts, offset = [], 0
        for p, size in zip(patterns, sizes.tolist()):
            parts.append(p.edge_index(size) + offset)
            offset += size
        edge_index = torch.cat(parts, dim=1) if parts else torch.empty(2, 0, dtype=torch.long)
        return cls(offset, sizes=sizes, edge_index=edge_index.to(device), num_virtual=k, device=device)

    @classmethod
    def from_data(cls, data: Any) -> AttentionGraph:
        """The attention graph of a converted ``Data`` / ``Batch``: its ``pattern`` (one, or one
        per graph) laid on ``batch``, else its ``edge_index`` with ``edge_attr``."""
        batch = getattr(data, "batch", None)
        pattern = getattr(data, "pattern", None)
        if pattern is not None:
            return cls.build(pattern, data.num_nodes, batch=batch)
        return cls.build(data.edge_index, data.num_nodes, batch=batch, edge_attr=getattr(data, "edge_attr", None))

    def to(self, device: torch.device | str) -> AttentionGraph:
        """The same graph with every tensor (caches included) on ``device``."""
        device = torch.device(device)
        if device == self.device:
            return self
        out = AttentionGraph(self.num_nodes, pattern=self.pattern, sizes=self.sizes,
                             edge_index=_move(self._edge_index, device), num_virtual=self.num_virtual,
                             pos=_move(self.pos, device), edge_attr=_move(self.edge_attr, device), device=device)
        out._cache = {key: _move(value, device) for key, value in self._cache.items()}
        return out

    # ------------------------------------------------------------------ what it holds
    @property
    def edge_index(self) -> Tensor:
        """``[2, E]``: row 0 keys ``j``, row 1 queries ``i``; sorted by query for patterns."""
        if self._edge_index is None:
            self._edge_index = batch_edge_index(self.pattern, self.sizes).to(self.device)
        return self._edge_index

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.size(1))

    @property
    def num_real_nodes(self) -> int:
        return self.num_nodes - self.num_virtual * self.sizes.numel()

    def cached(self, key: object, compute: Callable[[], object]) -> object:
        """``compute()`` once per graph under ``key``; kernels keep their derived structures here."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def batch(self) -> Tensor:
        """``[N]`` the sequence / graph id of every node (virtual nodes included)."""
        return self.cached("batch", lambda: torch.repeat_interleave(
            torch.arange(self.sizes.numel()), self.sizes).to(self.device))

    def csr(self) -> tuple[Tensor, Tensor, Tensor]:
        """The query-sorted CSR of ``edge_index``: ``(rowptr [N + 1], col [E], perm [E])`` with
        ``col`` the keys of query ``i`` at ``rowptr[i]:rowptr[i + 1]`` and ``perm`` mapping each
        sorted position to the caller's edge (``edge_index[:, perm]`` is sorted; stable, so
        duplicates keep their order)."""
        def compute() -> tuple[Tensor, Tensor, Tensor]:
            src, dst = self.edge_index
            perm = torch.sort(dst, stable=True).indices
            counts = torch.bincount(dst, minlength=self.num_nodes)
            rowptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
            return rowptr, src[perm], perm
        return self.cached("csr", compute)

    def dense_counts(self, dtype: torch.dtype) -> Tensor:
        """``[N, N]`` number of edges ``j -> i`` indexed ``[query, key]`` (0/1 for patterns)."""
        def compute() -> Tensor:
            n = self.num_nodes
            if self.pattern is not None:
                mask = torch.zeros(n, n, dtype=torch.bool, device=self.device)
                start = 0
                for size in self.sizes.tolist():
                    mask[start:start + size, start:start + size] = self.pattern.dense_mask(size, device=self.device)
                    start += size
                return mask
            counts = torch.zeros(n * n, device=self.device, dtype=torch.long)
            src, dst = self.edge_index
            counts.index_add_(0, dst * n + src, torch.ones_like(src))
            return counts.view(n, n)
        return self.cached("dense_counts", compute).to(dtype)

    def node_positions(self) -> Tensor:
        """Positions for score-side encodings, one per node the kernels see: ``pos`` as given,
        or each node's index in its own sequence (virtual nodes last)."""
        if self.pos is None:
            return self.cached("positions", lambda: positions(self.sizes).to(self.device))
        if self.num_virtual:
            raise ValueError("pos cannot be laid on virtual nodes; leave pos=None so score-side encodings use "
                             "sequence positions (virtual nodes last)")
        return self.pos

    def real_positions(self) -> Tensor:
        """Positions of the real nodes (``pos`` as given, or their index in their sequence)."""
        if self.pos is not None:
            return self.pos
        return self.cached("real_positions", lambda: positions(self.real_sizes).to(self.device))

    # ------------------------------------------------------------------ virtual nodes
    @property
    def real_sizes(self) -> Tensor:
        return self.sizes - self.num_virtual if self.sizes.numel() else self.sizes

    @property
    def real_index(self) -> Tensor:
        """``[N_real]`` rows of the real nodes among all ``N`` nodes."""
        def compute() -> Tensor:
            real = self.real_sizes
            seq = torch.repeat_interleave(torch.arange(real.numel()), real)
            return (torch.arange(int(real.sum())) + self.num_virtual * seq).to(self.device)
        return self.cached("real_index", compute)

    @property
    def virtual_index(self) -> Tensor:
        """``[B * k]`` rows of the virtual nodes, sequence by sequence."""
        def compute() -> Tensor:
            ends = torch.cumsum(self.sizes, 0)
            return ((ends - self.num_virtual)[:, None] + torch.arange(self.num_virtual)).flatten().to(self.device)
        return self.cached("virtual_index", compute)

    def with_virtual(self, h: Tensor, rows: Tensor) -> Tensor:
        """``h [N_real, ...]`` with ``rows [k, ...]`` inserted after each sequence: ``[N, ...]``."""
        if self.num_virtual == 0:
            return h
        if h.size(0) != self.num_real_nodes or rows.shape != (self.num_virtual, *h.shape[1:]):
            raise ValueError(f"with_virtual needs h [{self.num_real_nodes}, ...] and rows [{self.num_virtual}, ...], "
                             f"got {list(h.shape)} and {list(rows.shape)}")
        out = h.new_empty(self.num_nodes, *h.shape[1:])
        out = out.index_copy(0, self.real_index, h)
        return out.index_copy(0, self.virtual_index, rows.repeat(self.sizes.numel(), *([1] * (h.dim() - 1))))

    def real(self, h: Tensor) -> Tensor:
        """The rows of the real nodes of ``h [N, ...]``."""
        return h if self.num_virtual == 0 else h[self.real_index]

    def __repr__(self) -> str:
        what = repr(self.pattern) if self.pattern is not None else f"edge_index with {self.num_edges} edges"
        virtual = f", num_virtual={self.num_virtual}" if self.num_virtual else ""
        return f"AttentionGraph({what}, num_nodes={self.num_nodes}, sequences={self.sizes.numel()}{virtual})"


def _prepared(graph: AttentionGraph, *given: object) -> AttentionGraph:
    if any(a is not None for a in given):
        raise ValueError("edges is a prepared AttentionGraph: give batch, lengths, pos and edge_attr "
                         "to AttentionGraph.build, not again")
    return graph


def _is_pattern_list(edges: object) -> bool:
    return isinstance(edges, (list, tuple)) and all(isinstance(p, Pattern) for p in edges)


def _one_pattern(patterns: Sequence[object]) -> Pattern | list[Pattern]:
    """A collated list of patterns: one pattern if they are all equal, else the list."""
    if not patterns or not all(isinstance(p, Pattern) for p in patterns):
        inner = type(patterns[0]).__name__ if patterns else "nothing"
        raise TypeError(f"edges must be a Pattern (or a list of them, one per sequence), an edge_index [2, E], "
                        f"an EdgeIndex or a sparse adj_t; got a {type(patterns).__name__} of {inner}")
    first = patterns[0]
    return first if all(p == first for p in patterns[1:]) else list(patterns)


def _real_sizes(num_nodes: int | None, batch: Tensor | None, lengths: object) -> Tensor:
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
    if not isinstance(edge_attr, Tensor):
        raise TypeError(f"edge_attr must be a float tensor [E, D], got {type(edge_attr).__name__}")
    if not edge_attr.is_floating_point():
        raise TypeError(f"edge_attr must be a floating-point tensor [E, D], got {edge_attr.dtype}")
    if edge_attr.dim() != 2 or edge_attr.size(0) != graph.num_edges:
        raise ValueError(f"edge_attr must have shape [E, D] with E={graph.num_edges}, got {list(edge_attr.shape)}")
    if not all_finite(edge_attr):
        raise ValueError("edge_attr contains NaN or infinite values")
    return edge_attr
