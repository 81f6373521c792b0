"""GraphTransformer: input projection, L pre-norm attention blocks, final norm, task head."""

from __future__ import annotations

import copy
from typing import Any

from torch import Tensor, nn

from ..checks import check_bool, check_probability
from ..nn.block import TransformerBlock
from ..nn.encodings.base import Prepared
from ..nn.reset import reset_parameters
from ..ops import AttentionGraph
from ..patterns import Pattern
from .base import AttentionModel

__all__ = ["GraphTransformer"]


class GraphTransformer(AttentionModel):
    r"""A transformer whose self-attention runs along a graph: a pattern or the data's edges.

    .. math::
        h^{(0)} = W_{in} x + \operatorname{PE}(pos), \qquad
        h^{(l)} = \operatorname{Block}_l(h^{(l-1)}, E), \qquad
        y = W_{out} \operatorname{Pool}(\operatorname{LN}(h^{(L)}))

    where each block is a pre-norm :class:`~graphattn.nn.TransformerBlock` and ``E`` is
    ``edges`` if given, else the model's ``pattern`` laid on each sequence / graph of
    ``batch``, prepared once per forward as an :class:`~graphattn.AttentionGraph` that every
    block reuses. With ``pattern=Full()`` it is a plain (non-causal) transformer encoder.

    Virtual nodes: if the pattern has ``extra_nodes = k > 0`` (``VirtualNodes(k)``), the model
    learns ``k`` embeddings and inserts them after the real nodes of *every* sequence / graph
    of the batch (where the AttentionGraph lays them: the last ``k`` nodes of each), and drops
    them again before the norm, pooling and head: outputs have one row per real node. Returned
    attention weights index the extended node list. ``Data`` from :mod:`graphattn.convert`
    holds only the real nodes: pass ``data.x`` with ``data.pattern``.

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
        pooling: ``None`` (one output per node), ``"mean"`` (``global_mean_pool`` per graph),
            ``"max"`` (``global_max_pool``: each feature's largest value in the graph) or
            ``"cls"`` (the first node of each sequence / graph, e.g. a ``Global((0,))`` token).
            (default: ``None``)
        dropout: dropout on the residual branches. (default: ``0.1``)
        attn_dropout: dropout on the attention weights. (default: ``0.0``)
        input_norm: a LayerNorm right after the input projection (BERT's embedding norm).
            Without it the pre-norm blocks add unit-scale attention outputs to the raw
            projection, so tiny inputs (row-normalised bag-of-words) are drowned: with
            ``Full()`` on Cora the shared attention output then hides every node's own
            features and training stalls. (default: ``False``)
        ffn_ratio: feed-forward width as a multiple of ``hidden_channels``. (default: ``2``)
        score: ``"dot"`` or ``"additive"``. (default: ``"dot"``)
        backend: attention kernel, ``"auto"`` or a name in ``graphattn.ops.KERNELS``.
            (default: ``"auto"``)
        edge_dim: edge feature width (needs ``edge_index`` edges), or ``None``. (default: ``None``)
        operator: an attention operator (``Linformer``, ``LinearAttention``, ``performer()``) that
            computes every block's attention along ``Full()``; each block gets its own copy, with
            its own parameters (as ``nn.TransformerEncoder`` copies its layer). (default: ``None``)
        **inputs: ``input_dropout``, ``feature_encoding``, ``position``, ``embedding``,
            ``virtual_nodes``, as :class:`~graphattn.models.AttentionModel` takes them.

    Shapes:
        - input: ``x`` ``(N, F)`` float (dense or sparse), or ``(N)`` long ids with ``embedding=True``;
          ``edges`` a pattern or ``(2, E)``; ``batch`` ``(N)``; ``pos`` ``(N)`` or ``(N, D)``;
          ``edge_attr`` ``(E, edge_dim)``
        - output: ``(N, out_channels)`` with ``pooling=None``, else ``(B, out_channels)`` for
          ``B`` graphs; with weights also a list of ``L`` pairs ``((2, E), (E, H))``
    """

    def __init__(
        self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2, heads: int = 4,
        pattern: Pattern | str | None = None, pooling: str | None = None, *,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        input_norm: bool = False,
        ffn_ratio: int = 2,
        score: str = "dot",
        backend: str = "auto",
        edge_dim: int | None = None,
        operator: nn.Module | None = None,
        **inputs: Any,
    ) -> None:
        super().__init__(in_channels, hidden_channels, out_channels, num_layers, heads, pattern, pooling, **inputs)
        for name, p in (("dropout", dropout), ("attn_dropout", attn_dropout)):
            check_probability(p, name)
        check_bool(input_norm, "input_norm")
        self.input_norm = nn.LayerNorm(hidden_channels) if input_norm else None
        self.blocks = nn.ModuleList(
            TransformerBlock(hidden_channels, heads, ffn_ratio=ffn_ratio, dropout=dropout, attn_dropout=attn_dropout,
                             score=score, backend=backend, position=self.position, edge_dim=edge_dim,
                             operator=copy.deepcopy(operator))
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_channels)
        self.head = nn.Linear(hidden_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for block in self.blocks:
            reset_parameters(block, "blocks[i]")
        self.norm.reset_parameters()
        self.head.reset_parameters()

    def _layers(self, h: Tensor, graph: AttentionGraph, weights: list | None, encoding: Prepared | None) -> Tensor:
        for block in self.blocks:
            res = block(h, graph, return_attention_weights=weights is not None, encoding=encoding)
            if weights is not None:
                h = res[0]
                weights.append(res[1])
            else:
                h = res
        return h

    def _readout(self, h: Tensor, batch: Tensor | None, sizes: Tensor) -> Tensor:
        return self.head(self._pool(self.norm(h), batch, sizes))
