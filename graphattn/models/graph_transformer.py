"""GraphTransformer: input projection, L pre-norm attention blocks, final norm, task head."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from ..checks import check_int
from ..nn.block import TransformerBlock
from ..patterns import Pattern, check_edge_index, parse_pattern, positions, sizes_from_batch

__all__ = ["GraphTransformer", "POOLINGS"]

#: What ``pooling=`` accepts: per-node outputs, the mean per graph, or the first node per graph.
POOLINGS = (None, "mean", "cls")


class GraphTransformer(nn.Module):
    r"""A transformer whose self-attention runs along a graph: a pattern or the data's edges.

    .. math::
        h^{(0)} = W_{in} x + \operatorname{PE}(pos), \qquad
        h^{(l)} = \operatorname{Block}_l(h^{(l-1)}, E), \qquad
        y = W_{out} \operatorname{Pool}(\operatorname{LN}(h^{(L)}))

    where each block is a pre-norm :class:`~graphattn.nn.TransformerBlock` and ``E`` is
    ``edges`` if given, else the model's ``pattern`` laid on each sequence / graph of
    ``batch``. With ``pattern=Full()`` it is a plain (non-causal) transformer encoder.

    Virtual nodes: if the pattern has ``extra_nodes = k > 0`` (``VirtualNodes(k)``), the model
    learns ``k`` embeddings and appends them after the real nodes of *every* sequence / graph
    of the batch (the pattern is laid on each with its ``k`` extra nodes, so they are the last
    ``k`` nodes of each), and drops them again before the norm, pooling and head: outputs have
    one row per real node. Returned attention weights index the extended node list.
    ``Data`` from :mod:`graphattn.convert` already carries ``k`` zero rows for them in ``x``:
    pass ``x[:num_real_nodes]`` with ``data.pattern`` (learned virtual nodes), or ``x`` with
    ``data.edge_index`` (the zero rows then enter as ordinary nodes and come back as rows).

    Args:
        in_channels: input feature width ``F``, or the vocabulary size with ``embedding=True``.
        hidden_channels: model width ``H * C``.
        out_channels: output width (number of classes or targets).
        num_layers: number of blocks ``L``. (default: ``2``)
        heads: attention heads ``H`` (must divide ``hidden_channels``). (default: ``4``)
        pattern: default attention pattern (a :class:`~graphattn.patterns.Pattern` or its text,
            see :func:`~graphattn.patterns.parse_pattern`), used when ``forward`` gets no
            ``edges``. Its ``extra_nodes`` fixes the number of learned virtual nodes.
            (default: ``None``)
        pooling: ``None`` (one output per node), ``"mean"`` (``global_mean_pool`` per graph) or
            ``"cls"`` (the first node of each sequence / graph, e.g. a ``Global((0,))`` token).
            (default: ``None``)
        dropout: dropout on the residual branches. (default: ``0.1``)
        attn_dropout: dropout on the attention weights. (default: ``0.0``)
        input_norm: a LayerNorm right after the input projection (BERT's embedding norm).
            Without it the pre-norm blocks add unit-scale attention outputs to the raw
            projection, so tiny inputs (row-normalised bag-of-words) are drowned: with
            ``Full()`` on Cora the shared attention output then hides every node's own
            features and training stalls. (default: ``False``)
        input_dropout: dropout on the input features (on the token embeddings with
            ``embedding=True``). (default: ``0.0``)
        ffn_ratio: feed-forward width as a multiple of ``hidden_channels``. (default: ``2``)
        feature_encoding: optional module ``pos -> (N, hidden_channels)`` added after the input
            projection (e.g. sinusoidal or Laplacian encodings). (default: ``None``)
        position: optional score-side encoding (relative bias, ALiBi, rotary) given to every
            attention layer. The *same instance* is shared by all layers: right for fixed
            encodings; a learned one then has one set of parameters for the whole model (as
            T5 shares its relative bias). (default: ``None``)
        score: ``"dot"`` or ``"additive"``. (default: ``"dot"``)
        backend: attention kernel, ``"auto"`` or a name in ``graphattn.ops.KERNELS``.
            (default: ``"auto"``)
        edge_dim: edge feature width (needs ``edge_index`` edges), or ``None``. (default: ``None``)
        embedding: ``x`` holds token ids ``(N)`` looked up in an ``nn.Embedding`` with
            ``in_channels`` entries instead of features ``(N, F)``. (default: ``False``)

    Shapes:
        - input: ``x`` ``(N, F)`` float, or ``(N)`` long ids with ``embedding=True``;
          ``edges`` a pattern or ``(2, E)``; ``batch`` ``(N)``; ``pos`` ``(N)`` or ``(N, D)``;
          ``edge_attr`` ``(E, edge_dim)``
        - output: ``(N, out_channels)`` with ``pooling=None``, else ``(B, out_channels)`` for
          ``B`` graphs; with weights also a list of ``L`` pairs ``((2, E), (E, H))``
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 2,
        heads: int = 4,
        pattern: Pattern | str | None = None,
        pooling: str | None = None,
        *,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        input_dropout: float = 0.0,
        input_norm: bool = False,
        ffn_ratio: int = 2,
        feature_encoding: nn.Module | None = None,
        position: nn.Module | None = None,
        score: str = "dot",
        backend: str = "auto",
        edge_dim: int | None = None,
        embedding: bool = False,
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
        for name, p in (("dropout", dropout), ("attn_dropout", attn_dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        for name, module in (("feature_encoding", feature_encoding), ("position", position)):
            if module is not None and not isinstance(module, nn.Module):
                raise TypeError(f"{name} must be an nn.Module or None, got {type(module).__name__}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.heads = heads
        self.pattern = pattern
        self.pooling = pooling
        self.embedding = bool(embedding)
        self.lin_in = nn.Embedding(in_channels, hidden_channels) if embedding else nn.Linear(in_channels, hidden_channels)
        self.input_drop = nn.Dropout(input_dropout)
        self.input_norm = nn.LayerNorm(hidden_channels) if input_norm else None
        self.feature_encoding = feature_encoding
        num_virtual = pattern.extra_nodes if pattern is not None else 0
        self.virtual = nn.Parameter(torch.empty(num_virtual, hidden_channels)) if num_virtual else None
        self.blocks = nn.ModuleList(
            TransformerBlock(hidden_channels, heads, ffn_ratio=ffn_ratio, dropout=dropout, attn_dropout=attn_dropout,
                             score=score, backend=backend, position=position, edge_dim=edge_dim)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_channels)
        self.head = nn.Linear(hidden_channels, out_channels)
        self.reset_parameters()

    @property
    def num_virtual_nodes(self) -> int:
        return 0 if self.virtual is None else self.virtual.size(0)

    def reset_parameters(self) -> None:
        self.lin_in.reset_parameters()
        if self.input_norm is not None:
            self.input_norm.reset_parameters()
        if self.feature_encoding is not None and hasattr(self.feature_encoding, "reset_parameters"):
            self.feature_encoding.reset_parameters()
        if self.virtual is not None:
            nn.init.normal_(self.virtual, std=0.02)
        for block in self.blocks:
            block.reset_parameters()
        self.norm.reset_parameters()
        self.head.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edges: Pattern | Tensor | None = None,
        *,
        batch: Tensor | None = None,
        pos: Tensor | None = None,
        edge_attr: Tensor | None = None,
        return_attention_weights: bool = False,
    ) -> Tensor | tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Run the model. ``edges`` (default: the model's ``pattern``) is a pattern laid on each
        sequence / graph of ``batch`` (default: one), or an ``edge_index`` over all ``N`` nodes.
        ``pos`` defaults to each node's index inside its own sequence."""
        n = self._check_x(x)
        edges = self._check_edges(edges, n)
        sizes = torch.tensor([n]) if batch is None else sizes_from_batch(batch, n).cpu()
        num_virtual = edges.extra_nodes if isinstance(edges, Pattern) else 0
        if num_virtual and pos is not None and self.blocks[0].attn.position is not None:
            raise ValueError("pos cannot be laid on virtual nodes; pass pos=None so the score-side encoding "
                             "uses sequence positions (virtual nodes last)")

        if self.embedding:
            h = self.input_drop(self.lin_in(x))  # (N, hidden)
        else:
            h = self.lin_in(self.input_drop(x))  # (N, hidden)
        if self.input_norm is not None:
            h = self.input_norm(h)
        if self.feature_encoding is not None:
            h = h + self._encode(pos if pos is not None else positions(sizes).to(h.device), n)
        lengths, real = sizes, None
        if num_virtual:
            h, lengths, real = self._append_virtual(h, sizes)  # (N + B * k, hidden)

        weights = []
        for block in self.blocks:
            res = block(h, edges, lengths=lengths, edge_attr=edge_attr, pos=pos,
                        return_attention_weights=return_attention_weights)
            h = res[0] if return_attention_weights else res
            if return_attention_weights:
                weights.append(res[1])
        if real is not None:
            h = h[real]  # (N, hidden): virtual nodes dropped
        out = self.head(self._pool(self.norm(h), batch, sizes))
        return (out, weights) if return_attention_weights else out

    def _check_x(self, x: Tensor) -> int:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if self.embedding:
            if x.dim() != 1 or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
                raise ValueError(f"x must be a 1-D integer tensor of token ids [N] (embedding=True), "
                                 f"got {x.dtype} {list(x.shape)}")
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.in_channels):
                raise ValueError(f"x holds token ids in [{int(x.min())}, {int(x.max())}] but the embedding "
                                 f"has in_channels={self.in_channels} entries (ids must be in [0, {self.in_channels}))")
        else:
            if x.dim() != 2 or x.size(1) != self.in_channels:
                raise ValueError(f"x must have shape [N, in_channels={self.in_channels}], got {list(x.shape)}")
            if not x.is_floating_point():
                raise TypeError(f"x must be a floating-point tensor (or use embedding=True for ids), got {x.dtype}")
        return x.size(0)

    def _check_edges(self, edges: Pattern | Tensor | None, n: int) -> Pattern | Tensor:
        if edges is None:
            if self.pattern is None:
                raise ValueError("edges is required: pass a Pattern or an edge_index, "
                                 "or build the model with a default pattern=")
            edges = self.pattern
        if isinstance(edges, Tensor):
            return check_edge_index(edges, n, name="edges")
        if not isinstance(edges, Pattern):
            raise TypeError(f"edges must be a Pattern or an edge_index tensor [2, E], got {type(edges).__name__}")
        if edges.extra_nodes != self.num_virtual_nodes:
            raise ValueError(f"edges asks for {edges.extra_nodes} virtual nodes but the model learned "
                             f"{self.num_virtual_nodes}; build the model with that pattern= so it learns them")
        return edges

    def _encode(self, pos: Tensor, n: int) -> Tensor:
        enc = self.feature_encoding(pos)
        if not isinstance(enc, Tensor) or enc.shape != (n, self.hidden_channels):
            got = list(enc.shape) if isinstance(enc, Tensor) else type(enc).__name__
            raise ValueError(f"feature_encoding must map pos to [N, hidden_channels] = [{n}, {self.hidden_channels}], got {got}")
        return enc

    def _append_virtual(self, h: Tensor, sizes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Put the learned virtual nodes after the real nodes of each sequence; returns the new
        features, the new lengths and the rows of the real nodes in the new layout."""
        k, num_seq = self.num_virtual_nodes, sizes.numel()
        sizes = sizes.to(h.device)
        new_sizes = sizes + k
        new_start = torch.cumsum(new_sizes, 0) - new_sizes  # (B)
        seq = torch.repeat_interleave(torch.arange(num_seq, device=h.device), sizes)  # (N)
        real = torch.arange(h.size(0), device=h.device) + k * seq  # (N)
        virt = ((new_start + sizes)[:, None] + torch.arange(k, device=h.device)).flatten()  # (B * k)
        out = h.new_zeros(h.size(0) + num_seq * k, h.size(1))
        out = out.index_copy(0, real, h).index_copy(0, virt, self.virtual.repeat(num_seq, 1))
        return out, new_sizes.cpu(), real

    def _pool(self, h: Tensor, batch: Tensor | None, sizes: Tensor) -> Tensor:
        if self.pooling is None:
            return h
        if self.pooling == "mean":
            if batch is None:
                return h.mean(dim=0, keepdim=True)  # (1, hidden)
            return global_mean_pool(h, batch, size=sizes.numel())  # (B, hidden)
        if bool((sizes == 0).any()):
            raise ValueError("pooling='cls' needs at least one node in every graph of batch; "
                             f"got sizes {sizes.tolist()}")
        first = (torch.cumsum(sizes, 0) - sizes).to(h.device)
        return h[first]  # (B, hidden)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, {self.out_channels}, "
                f"num_layers={self.num_layers}, heads={self.heads}, pattern={self.pattern!r}, "
                f"pooling={self.pooling!r})")
