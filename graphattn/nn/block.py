"""TransformerBlock: pre-norm self-attention and feed-forward, each with a residual."""

from __future__ import annotations

from torch import Tensor, nn

from ..checks import check_int, check_probability
from ..ops import AttentionGraph
from ..patterns import Pattern
from .attention import SelfAttentionConv
from .encodings.base import Prepared

__all__ = ["TransformerBlock"]


class TransformerBlock(nn.Module):
    r"""One pre-norm transformer block whose attention runs along a graph.

    .. math::
        x \leftarrow x + \operatorname{Dropout}\big(\operatorname{Attn}(\operatorname{LN}_1(x), E)\big)

        x \leftarrow x + \operatorname{Dropout}\big(W_2\, \operatorname{GELU}(W_1 \operatorname{LN}_2(x))\big)

    where ``Attn`` is :class:`SelfAttentionConv` over the edges ``E`` (a pattern or an
    ``edge_index``). With ``Full()`` this is the block of GPT-2 / ViT without a causal mask.

    Args:
        channels: model width ``H * C`` (input and output width).
        heads: number of attention heads ``H`` (must divide ``channels``).
        ffn_ratio: hidden width of the feed-forward MLP as a multiple of ``channels``.
            (default: ``2``, as in GraphGPS; GPT-2 uses ``4``)
        dropout: dropout on both residual branches. (default: ``0.0``)
        attn_dropout: dropout on the attention weights. (default: ``0.0``)
        score: ``"dot"`` or ``"additive"``. (default: ``"dot"``)
        backend: attention kernel, ``"auto"`` or a name in ``graphattn.ops.KERNELS``.
            (default: ``"auto"``)
        position: optional score-side positional encoding handed to the attention.
            (default: ``None``)
        edge_dim: edge feature width for the attention, or ``None``. (default: ``None``)
        operator: an attention operator for the attention (``Linformer``, ``LinearAttention``),
            owned by this block, or ``None`` for the graph kernels. (default: ``None``)

    Shapes:
        - input: ``x`` ``(N, channels)``; ``edges`` an ``AttentionGraph``, a pattern or ``(2, E)``
        - output: ``(N, channels)``; with weights also ``((2, E), (E, H))``
    """

    def __init__(
        self,
        channels: int,
        heads: int = 1,
        *,
        ffn_ratio: int = 2,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        score: str = "dot",
        backend: str = "auto",
        position: nn.Module | None = None,
        edge_dim: int | None = None,
        operator: nn.Module | None = None,
    ):
        super().__init__()
        check_int(channels, "channels")
        check_int(ffn_ratio, "ffn_ratio")
        check_probability(dropout, "dropout")
        check_probability(attn_dropout, "attn_dropout")
        self.channels = channels
        self.heads = heads
        self.ffn_ratio = ffn_ratio
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(channels)
        self.attn = SelfAttentionConv(channels, channels, heads, score=score, dropout=attn_dropout,
                                      edge_dim=edge_dim, backend=backend, position=position, operator=operator)
        self.norm2 = nn.LayerNorm(channels)
        self.ffn = nn.Sequential(
            nn.Linear(channels, ffn_ratio * channels),
            nn.GELU(),
            nn.Linear(ffn_ratio * channels, channels),
        )
        self.drop = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.norm1.reset_parameters()
        self.attn.reset_parameters()
        self.norm2.reset_parameters()
        for layer in self.ffn:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edges: AttentionGraph | Pattern | Tensor,
        edge_attr: Tensor | None = None,
        *,
        return_attention_weights: bool = False,
        encoding: Prepared | None = None,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend along ``edges``, a prepared :class:`~graphattn.AttentionGraph` (which holds the
        batch layout and positions) or the edges of one sequence, and apply the feed-forward
        block. Returns ``(N, channels)``, and ``(edge_index, alpha)`` when
        ``return_attention_weights``. ``encoding``: the score encoding prepared for ``edges``
        (see :class:`SelfAttentionConv`)."""
        res = self.attn(self.norm1(x), edges, edge_attr, return_attention_weights=return_attention_weights,
                        encoding=encoding)
        h, weights = res if isinstance(res, tuple) else (res, None)  # a tuple when return_attention_weights
        x = x + self.drop(h)
        x = x + self.drop(self.ffn(self.norm2(x)))
        return (x, weights) if weights is not None else x

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, heads={self.heads}, ffn_ratio={self.ffn_ratio})"
