"""GraphAttentionNetwork: attention layers stacked as GAT stacks them, with any pattern."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int, check_probability
from ..nn.attention import SelfAttentionConv
from ..nn.encodings.base import Prepared
from ..nn.reset import reset_parameters
from ..ops import AttentionGraph
from ..patterns import Pattern
from .base import AttentionModel

__all__ = ["GraphAttentionNetwork"]


class GraphAttentionNetwork(AttentionModel):
    r"""Self-attention layers in the form of GAT (Velickovic et al., 2018): no residuals, no
    norms, no feed-forward blocks; an ELU and dropout between layers; the last layer attends
    straight into the output space.

    .. math::
        h^{(0)} = W_{in} x + \operatorname{PE}(pos), \qquad
        h^{(1)} = \operatorname{ELU}\big(\operatorname{Attn}_1(h^{(0)}, E)\big), \qquad
        h^{(l)} = \operatorname{ELU}\big(\operatorname{Attn}_l(\operatorname{Drop}(h^{(l-1)}), E)\big),
        \qquad y = \operatorname{Pool}\Big(\tfrac{1}{H_{out}} \sum_{h=1}^{H_{out}}
        \operatorname{Attn}_L(\operatorname{Drop}(h^{(L-1)}), E)^h\Big)

    With ``residual=True`` every layer adds a linear skip, ``Attn_l(h) + W^{res}_l h``, before
    the ELU (PyG's ``GATConv(residual=True)``): a node then keeps its own features even where
    attention is spread over many keys, which ``Full()`` on a large graph needs.

    Each ``Attn_l`` is a :class:`~graphattn.nn.SelfAttentionConv` without ``W_o`` whose heads
    are concatenated (the last layer's ``H_out`` heads are averaged). With the default
    ``projection="shared"`` a layer projects once, ``q = k = v = W_l h``, and the first layer's
    ``W_1`` is ``W_in`` itself, so ``graph`` edges with self-loops give the dot-product GAT of
    SuperGAT (Kim & Oh, 2021) with exactly GAT's weight count. On small labelled graphs this
    form beats the pre-norm :class:`GraphTransformer` (Cora, public split, 10 seeds: 82.6% vs
    78.7%; README). Virtual nodes are appended after ``W_in``, as in the GraphTransformer.

    Args:
        in_channels: input feature width ``F``, or the vocabulary size with ``embedding=True``.
        hidden_channels: width ``H * C`` of the hidden layers.
        out_channels: output width (number of classes or targets).
        num_layers: attention layers ``L``. (default: ``2``)
        heads: heads ``H`` of the hidden layers (must divide ``hidden_channels``). (default: ``8``)
        pattern: default attention pattern or its text; its ``extra_nodes`` fixes the number of
            learned virtual nodes. (default: ``None``)
        pooling: ``None``, ``"mean"``, ``"max"`` or ``"cls"``, applied to the last layer's output.
            (default: ``None``)
        out_heads: heads ``H_out`` of the last layer, averaged. (default: ``1``)
        dropout: dropout on the input of every attention layer after the first (the first
            sees ``W_in x``; drop its input with ``input_dropout``). (default: ``0.6``, as GAT)
        attn_dropout: dropout on the attention weights. (default: ``0.6``, as GAT)
        residual: add a linear skip to every layer. (default: ``False``)
        projection: ``"shared"``, ``"separate"`` (``W_q, W_k, W_v`` per layer) or ``"none"``
            (every layer attends with its input; ``hidden_channels == out_channels * out_heads``
            needed for the last layer), see :class:`~graphattn.nn.SelfAttentionConv`.
            (default: ``"shared"``)
        score, backend, edge_dim: as in :class:`GraphTransformer`.
        **inputs: ``input_dropout``, ``feature_encoding``, ``position``, ``embedding``,
            ``virtual_nodes``, as :class:`~graphattn.models.AttentionModel` takes them.

    Shapes:
        - input: ``x`` ``(N, F)`` float (dense or sparse), or ``(N)`` ids with ``embedding=True``;
          ``edges`` a pattern or ``(2, E)``; ``batch`` ``(N)``; ``pos`` ``(N)`` or ``(N, D)``;
          ``edge_attr`` ``(E, edge_dim)``
        - output: ``(N, out_channels)`` with ``pooling=None``, else ``(B, out_channels)``; with
          weights also a list of ``L`` pairs ``((2, E), (E, H))``
    """

    def __init__(
        self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2, heads: int = 8,
        pattern: Pattern | str | None = None, pooling: str | None = None, *,
        out_heads: int = 1,
        projection: str = "shared",
        residual: bool = False,
        dropout: float = 0.6,
        attn_dropout: float = 0.6,
        score: str = "dot",
        backend: str = "auto",
        edge_dim: int | None = None,
        **inputs: Any,
    ) -> None:
        super().__init__(in_channels, hidden_channels, out_channels, num_layers, heads, pattern, pooling, **inputs)
        check_int(out_heads, "out_heads")
        for name, p in (("dropout", dropout), ("attn_dropout", attn_dropout)):
            check_probability(p, name)
        if not isinstance(residual, bool):
            raise TypeError(f"residual must be a bool, got {type(residual).__name__}")
        self.out_heads = out_heads
        self.dropout = dropout
        self.projection = projection
        widths = [hidden_channels] * (num_layers - 1) + [out_channels * out_heads]

        def layer(i: int) -> SelfAttentionConv:
            last = i == num_layers - 1
            # the first shared projection is W_in: a second matrix right after it only adds weights
            proj = "none" if i == 0 and not last and projection == "shared" else projection
            return SelfAttentionConv(hidden_channels, out_channels * out_heads if last else hidden_channels,
                                     out_heads if last else heads, score=score, dropout=attn_dropout,
                                     edge_dim=edge_dim, backend=backend, position=self.position,
                                     projection=proj, project_out=False)

        self.convs = nn.ModuleList(layer(i) for i in range(num_layers))
        self.skips = nn.ModuleList(nn.Linear(hidden_channels, w, bias=False) for w in widths) if residual else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for conv in self.convs:
            reset_parameters(conv, "convs[i]")
        for skip in self.skips or ():
            reset_parameters(skip, "skips[i]")

    def _layers(self, h: Tensor, graph: AttentionGraph, weights: list | None, encoding: Prepared | None) -> Tensor:
        for i, conv in enumerate(self.convs):
            if i > 0:  # the first layer's input is W_in x, which input_dropout already covers
                h = F.dropout(h, self.dropout, self.training)
            res = conv(h, graph, return_attention_weights=weights is not None, encoding=encoding)
            if weights is not None:
                res, alpha = res
                weights.append(alpha)
            if self.skips is not None:
                res = res + self.skips[i](h)
            h = F.elu(res) if i < len(self.convs) - 1 else res
        return h.view(h.size(0), self.out_heads, self.out_channels).mean(dim=1)  # (N', out)

    def _readout(self, h: Tensor, batch: Tensor | None, sizes: Tensor) -> Tensor:
        return self._pool(h, batch, sizes)
