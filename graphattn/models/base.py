"""What every graphattn model does around its attention layers: inputs, virtual nodes, pooling."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_max_pool, global_mean_pool

from ..checks import all_finite, check_bool, check_int, check_module, check_probability
from ..debug import debugging
from ..nn.encodings.base import Prepared, check_encoding, prepare
from ..nn.reset import Resettable, reset_parameters
from ..ops import AttentionGraph
from ..patterns import Pattern, parse_pattern

__all__ = ["AttentionModel", "POOLINGS"]

#: What ``pooling=`` accepts: per-node outputs, the mean or the feature-wise max per graph (the
#: max-over-time of Kim's text CNN), or the first node per graph.
POOLINGS = (None, "mean", "max", "cls")


class AttentionModel(nn.Module):
    """Base of :class:`GraphTransformer` and :class:`GraphAttentionNetwork`.

    It owns the input side, ``h = W_in x`` (or a token embedding) plus an optional feature
    encoding, the one :class:`~graphattn.AttentionGraph` of each forward (built once, handed
    to every layer), the learned virtual nodes (inserted after the real nodes of every sequence /
    graph where the graph's layout puts them, dropped again before the readout), the pooling,
    and the checks of ``x`` and ``edges``. Subclasses define ``_layers(h, graph, weights)`` and
    ``_readout(h, batch, sizes)``.

    Args (the inputs, shared by every model; keyword-only):
        input_dropout: dropout on the input features (their stored entries if ``x`` is sparse;
            on the token embeddings with ``embedding=True``). (default: ``0.0``)
        feature_encoding: optional module ``pos -> (N, hidden_channels)`` added after the input
            projection (e.g. sinusoidal or Laplacian encodings). (default: ``None``)
        position: optional score-side encoding (relative bias, ALiBi, rotary) given to every
            attention layer. The *same instance* is shared by all layers: right for fixed
            encodings; a learned one then has one set of parameters for the whole model (as
            T5 shares its relative bias). (default: ``None``)
        embedding: ``x`` holds token ids ``(N)`` looked up in an ``nn.Embedding`` with
            ``in_channels`` entries instead of features ``(N, F)``; ids ``(N, K)`` give each
            node the mean embedding of its row's non-zero ids (0 is padding), e.g. a word and
            its hashed character trigrams (:class:`~graphattn.convert.Tokenizer`'s
            ``subwords``). (default: ``False``)
        virtual_nodes: learned virtual nodes ``k``, for edges that lay them when the default
            ``pattern`` does not (e.g. one pattern per molecule, each with ``VirtualNodes(k)``).
            (default: the ``pattern``'s ``extra_nodes``)
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int,
        heads: int,
        pattern: Pattern | str | None,
        pooling: str | None,
        *,
        input_dropout: float = 0.0,
        feature_encoding: nn.Module | None = None,
        position: nn.Module | None = None,
        embedding: bool = False,
        virtual_nodes: int | None = None,
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                            ("out_channels", out_channels), ("num_layers", num_layers), ("heads", heads)):
            check_int(value, name)
        if hidden_channels % heads:
            raise ValueError(f"heads ({heads}) must divide hidden_channels ({hidden_channels})")
        if isinstance(pattern, str):
            pattern = parse_pattern(pattern)
        if pattern is not None and not isinstance(pattern, Pattern):
            raise TypeError(f"pattern must be a Pattern, its text, or None, got {type(pattern).__name__}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        check_probability(input_dropout, "input_dropout")
        check_module(feature_encoding, "feature_encoding", "a feature encoding module: forward(pos) -> [N, "
                     "hidden_channels] (SinusoidalEncoding, LearnedEncoding, ...)", arguments=1)
        check_encoding(position)
        check_bool(embedding, "embedding")
        if pooling == "cls" and pattern is not None:
            _warn_if_cls_is_blind(pattern, num_layers)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.heads = heads
        self.pattern = pattern
        self.pooling = pooling
        self.embedding = bool(embedding)
        self.position = position
        self.lin_in = nn.Embedding(in_channels, hidden_channels) if embedding else nn.Linear(in_channels, hidden_channels)
        self.input_drop = nn.Dropout(input_dropout)
        self.input_norm: nn.Module | None = None
        self.feature_encoding = feature_encoding
        num_virtual = (pattern.extra_nodes if pattern is not None else 0) if virtual_nodes is None else virtual_nodes
        check_int(num_virtual, "virtual_nodes", 0)
        if pattern is not None and pattern.extra_nodes not in (0, num_virtual):
            raise ValueError(f"virtual_nodes={num_virtual} but pattern {pattern!r} lays {pattern.extra_nodes}")
        self.virtual = nn.Parameter(torch.empty(num_virtual, hidden_channels)) if num_virtual else None

    @property
    def num_virtual_nodes(self) -> int:
        return 0 if self.virtual is None else self.virtual.size(0)

    def reset_parameters(self) -> None:
        self.lin_in.reset_parameters()
        if self.input_norm is not None:
            reset_parameters(self.input_norm, "input_norm")
        if isinstance(self.feature_encoding, Resettable):  # an encoding without parameters has none
            self.feature_encoding.reset_parameters()
        if self.virtual is not None:
            nn.init.normal_(self.virtual, std=0.02)

    def forward(
        self,
        x: Tensor,
        edges: AttentionGraph | Pattern | Tensor | None = None,
        edge_attr: Tensor | None = None,
        *,
        batch: Tensor | None = None,
        pos: Tensor | None = None,
        return_attention_weights: bool = False,
    ) -> Tensor | tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Run the model. ``edges`` (default: the model's ``pattern``) is a prepared
        :class:`~graphattn.AttentionGraph` of ``x``'s nodes, or anything
        ``AttentionGraph.build`` accepts (a pattern laid on each sequence / graph of ``batch``,
        default one; an ``edge_index``, ``EdgeIndex`` or sparse ``adj_t`` over all ``N`` nodes).
        The graph is prepared once here and every layer reuses it. ``pos`` defaults to each
        node's index inside its own sequence. ``x`` may be a sparse matrix (e.g. bag-of-words
        features). With ``return_attention_weights`` also returns one ``(edge_index, alpha)``
        pair per attention layer (indexing the nodes with the virtual ones)."""
        # a prepared graph: metadata only; a meta tensor (shape inference) has no values
        meta = isinstance(x, Tensor) and x.is_meta
        check_bool(return_attention_weights, "return_attention_weights")
        n = self._check_x(x, values=(debugging() or not isinstance(edges, AttentionGraph)) and not meta)
        graph = self._graph(edges, n, batch, pos, edge_attr, x.device)
        if batch is None and graph.sizes.numel() > 1:  # a prepared graph holds the batch: pool per graph
            batch = graph.real(graph.batch)

        if self.embedding:
            h = self.input_drop(self._embed(x))  # (N, hidden)
        else:
            h = self.lin_in(self._drop_input(x))  # (N, hidden)
        if self.input_norm is not None:
            h = self.input_norm(h)
        if self.feature_encoding is not None:
            h = h + self._encode(graph.real_positions(), n)
        if graph.num_virtual:  # _graph refuses a graph whose virtual nodes are not the model's
            assert self.virtual is not None
            h = graph.with_virtual(h, self.virtual)  # (N + B * k, hidden)
        weights: list[tuple[Tensor, Tensor]] | None = [] if return_attention_weights else None
        encoding = None if self.position is None else prepare(self.position, graph)  # once for every layer
        h = graph.real(self._layers(h, graph, weights, encoding))  # (N, hidden): virtual nodes dropped
        out = self._readout(h, batch, graph.real_sizes)
        return (out, weights) if weights is not None else out  # weights: a list when return_attention_weights

    def _graph(self, edges: AttentionGraph | Pattern | Tensor | None, n: int, batch: Tensor | None,
               pos: Tensor | None, edge_attr: Tensor | None, device: torch.device) -> AttentionGraph:
        if edges is None:
            if self.pattern is None:
                raise ValueError("edges is required: pass an AttentionGraph, a Pattern or an edge_index, "
                                 "or build the model with a default pattern=")
            edges = self.pattern
        if isinstance(edges, Pattern) and edges.extra_nodes != self.num_virtual_nodes:
            raise ValueError(f"edges asks for {edges.extra_nodes} virtual nodes but the model learned "
                             f"{self.num_virtual_nodes}; build the model with that pattern= so it learns them")
        if isinstance(edges, AttentionGraph):
            if batch is not None or pos is not None or edge_attr is not None:
                raise ValueError("edges is a prepared AttentionGraph: give batch, pos and edge_attr to "
                                 "AttentionGraph.build, not to the model")
            graph = edges
        else:
            graph = AttentionGraph.build(edges, n, batch=batch, pos=pos, edge_attr=edge_attr)
        if graph.num_real_nodes != n:
            raise ValueError(f"edges spans {graph.num_real_nodes} real nodes but x has {n} rows")
        if graph.num_virtual not in (0, self.num_virtual_nodes):
            raise ValueError(f"edges has {graph.num_virtual} virtual nodes per sequence but the model learned "
                             f"{self.num_virtual_nodes}; build the model with that pattern= so it learns them")
        return graph.to(device)

    def _embed(self, x: Tensor) -> Tensor:
        """Token embeddings: one id a node ``(N)``, or the mean over each row's non-zero ids ``(N, K)``."""
        if x.dim() == 1:
            return self.lin_in(x)
        keep = (x != 0).unsqueeze(-1)  # (N, K, 1): 0 is padding
        return (self.lin_in(x) * keep).sum(1) / keep.sum(1).clamp(min=1)

    def _drop_input(self, x: Tensor) -> Tensor:
        """Input dropout; on a sparse matrix only the stored entries are dropped (a zero stays
        zero under dropout anyway), which is ``F.dropout`` of the dense matrix."""
        if x.layout == torch.strided or not self.training or self.input_drop.p == 0:
            return self.input_drop(x)
        if x.layout == torch.sparse_csr:
            return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), self.input_drop(x.values()), x.shape,
                                           check_invariants=False)  # x's own indices: valid already
        if x.layout == torch.sparse_coo:
            x = x.coalesce()
            return torch.sparse_coo_tensor(x.indices(), self.input_drop(x.values()), x.shape, is_coalesced=True,
                                           check_invariants=False)
        raise ValueError(f"x must be dense, sparse COO or sparse CSR, got layout {x.layout}")

    def _layers(self, h: Tensor, graph: AttentionGraph, weights: list | None, encoding: Prepared | None) -> Tensor:
        raise NotImplementedError

    def _readout(self, h: Tensor, batch: Tensor | None, sizes: Tensor) -> Tensor:
        raise NotImplementedError

    def _check_x(self, x: Tensor, values: bool) -> int:
        """The number of rows of ``x``, after checking its shape and dtype, and its values when ``values``
        (ids in range, finite features)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if self.embedding:
            if x.dim() not in (1, 2) or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
                raise ValueError(f"x must be a 1-D integer tensor of token ids [N], or [N, K] for K ids a node "
                                 f"(embedding=True), got {x.dtype} {list(x.shape)}")
            if values and x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.in_channels):
                raise ValueError(f"x holds token ids in [{int(x.min())}, {int(x.max())}] but the embedding "
                                 f"has in_channels={self.in_channels} entries (ids must be in [0, {self.in_channels}))")
        else:
            if x.dim() != 2 or x.size(1) != self.in_channels:
                raise ValueError(f"x must have shape [N, in_channels={self.in_channels}], got {list(x.shape)}")
            if not x.is_floating_point():
                raise TypeError(f"x must be a floating-point tensor (or use embedding=True for ids), got {x.dtype}")
            stored = x if x.layout == torch.strided else x.coalesce().values() if x.layout == torch.sparse_coo else x.values()
            if values and not all_finite(stored):  # a sparse matrix's implicit zeros are finite
                raise ValueError("x contains NaN or infinite values")
        return x.size(0)

    def _encode(self, pos: Tensor, n: int) -> Tensor:
        assert self.feature_encoding is not None  # forward encodes only with one
        enc = self.feature_encoding(pos)
        if not isinstance(enc, Tensor) or enc.shape != (n, self.hidden_channels):
            got = list(enc.shape) if isinstance(enc, Tensor) else type(enc).__name__
            raise ValueError(f"feature_encoding must map pos to [N, hidden_channels] = [{n}, {self.hidden_channels}], got {got}")
        return enc

    def _pool(self, h: Tensor, batch: Tensor | None, sizes: Tensor) -> Tensor:
        if self.pooling is None:
            return h
        if self.pooling == "mean":
            if batch is None:
                return h.mean(dim=0, keepdim=True)  # (1, C)
            return global_mean_pool(h, batch, size=sizes.numel())  # (B, C)
        if self.pooling == "max":
            if batch is None:
                return h.amax(dim=0, keepdim=True)  # (1, C)
            return global_max_pool(h, batch, size=sizes.numel())  # (B, C)
        if bool((sizes == 0).any()):
            raise ValueError("pooling='cls' needs at least one node in every graph of batch; "
                             f"got sizes {sizes.tolist()}")
        first = (torch.cumsum(sizes, 0) - sizes).to(h.device)
        return h[first]  # (B, C)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, {self.out_channels}, "
                f"num_layers={self.num_layers}, heads={self.heads}, pattern={self.pattern!r}, "
                f"pooling={self.pooling!r})")


def _warn_if_cls_is_blind(pattern: Pattern, num_layers: int, n: int = 64) -> None:
    """Warn when ``pooling="cls"`` would read a first node that, through ``num_layers`` layers of
    ``pattern`` on a sequence of ``n`` nodes, hears from only part of it (no global token): the
    readout then ignores most of the sequence. Node 0 hears from ``R_L``, where
    ``R_1 = {j : mask[0, j]}`` and ``R_{l+1} = R_l | {k : mask[j, k], j in R_l}``. Patterns that
    cannot be laid on ``n`` nodes (a fixed graph, a grid of another width) are not judged."""
    size = n + pattern.extra_nodes
    try:
        pattern.validate(size)
        mask = pattern.dense_mask(size)  # (size, size): [query, key]
    except (TypeError, ValueError):
        return
    heard = mask[0].clone()
    for _ in range(num_layers - 1):
        heard |= mask[heard].any(dim=0)
    count = int(heard[:n].sum())
    if count < n:
        # stacklevel: the caller of the model class
        warnings.warn(f"pooling='cls' reads the first node of each sequence, but through {num_layers} layer(s) of "
                      f"pattern {pattern!r} it hears from only {count} of {n} nodes; add a global token (e.g. "
                      f"pattern | Global([0])) or use pooling='mean' or 'max'", UserWarning, stacklevel=4)
