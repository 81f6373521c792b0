"""GPSConv: the GraphGPS layer whose global attention runs along any pattern."""

from __future__ import annotations

import copy
import inspect

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn.resolver import activation_resolver, normalization_resolver

from ..checks import check_int, check_probability
from ..ops import AttentionGraph
from ..patterns import Pattern, parse_pattern
from .attention import SelfAttentionConv

__all__ = ["GPSConv"]


class GPSConv(nn.Module):
    r"""The GPS layer (Rampasek et al., 2022): a local message-passing layer and global attention
    side by side, then an MLP, each with a residual and a norm.

    .. math::
        h_L = \operatorname{N}_1\big(x + \operatorname{Dropout}(\operatorname{MPNN}(x, E_{graph}))\big),
        \qquad
        h_G = \operatorname{N}_2\big(x + \operatorname{Dropout}(\operatorname{Attn}(x, E_{attn}))\big)

        x' = \operatorname{N}_3\big(h + \operatorname{MLP}(h)\big), \qquad h = h_L + h_G

    where ``Attn`` is a :class:`SelfAttentionConv` over the edges of ``pattern`` laid on every
    graph of the batch: ``Full()`` is GraphGPS's transformer (and then this layer equals PyG's
    ``GPSConv(attn_type="multihead")``, see :meth:`from_pyg`), ``bigbird(...)`` its BigBird
    variant (PyG issue #8320), ``VirtualNodes(k) | Expander(d)`` Exphormer, ``Window(r)`` a
    local window over the nodes' order in each graph (reorder the nodes to window over another
    ordering). With ``pattern=None`` there is no global branch, ``x' = N_3(h_L + MLP(h_L))``:
    the local layer with a residual, a norm, dropout and a feed-forward block (the "GNN+" of
    Luo et al., 2025). The MLP is ``Linear(C, 2C) -> act -> Dropout -> Linear(2C, C) -> Dropout``, as in PyG.

    Virtual nodes: a pattern with ``extra_nodes = k`` makes the layer learn ``k`` rows that are
    inserted after each graph's nodes for the attention only (keys, values and queries of the
    global branch); their outputs are dropped, so every layer has its own learned global tokens.

    Args:
        channels: node width ``C`` (input and output).
        conv: the local layer, called as ``conv(x, edge_index, **kwargs)``, or ``None`` for
            attention only.
        heads: attention heads ``H`` (must divide ``channels``). (default: ``1``)
        pattern: who attends to whom in the global branch, a pattern or its text, laid on each
            graph of ``batch``; ``None``: no global branch (then ``conv`` is required).
            (default: ``Full()``)
        dropout: dropout on the branch outputs and inside the MLP. (default: ``0.0``)
        attn_dropout: dropout on the attention weights. (default: ``0.0``)
        act: the MLP's activation, a name or module for PyG's ``activation_resolver``.
            (default: ``"relu"``)
        norm: the three norms, a name or ``None`` for PyG's ``normalization_resolver``.
            (default: ``"batch_norm"``)
        backend: attention kernel, ``"auto"`` or a name in ``graphattn.ops.KERNELS``.
            (default: ``"auto"``)

    Shapes:
        - input: ``x`` ``(N, C)``; ``edge_index`` ``(2, E)`` (or any adjacency ``conv``
          accepts); ``batch`` ``(N)``; ``attention`` an ``AttentionGraph`` of the ``N`` nodes
        - output: ``(N, C)``
    """

    def __init__(
        self,
        channels: int,
        conv: nn.Module | None,
        heads: int = 1,
        *,
        pattern: Pattern | str | None = "Full()",
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        act: str | nn.Module = "relu",
        norm: str | None = "batch_norm",
        backend: str = "auto",
    ):
        super().__init__()
        check_int(channels, "channels")
        check_probability(dropout, "dropout")
        if conv is not None and not isinstance(conv, nn.Module):
            raise TypeError(f"conv must be an nn.Module or None, got {type(conv).__name__}")
        pattern = parse_pattern(pattern) if isinstance(pattern, str) else pattern
        if pattern is None and conv is None:
            raise ValueError("conv and pattern cannot both be None: the layer would have no branch")
        if pattern is not None and not isinstance(pattern, Pattern):
            raise TypeError(f"pattern must be a Pattern, its text or None, got {type(pattern).__name__}")
        self.channels, self.heads, self.pattern, self.dropout = channels, heads, pattern, dropout
        self.conv = conv
        self.attn = None if pattern is None else SelfAttentionConv(channels, channels, heads, dropout=attn_dropout,
                                                                   backend=backend)
        extra = 0 if pattern is None else pattern.extra_nodes
        self.virtual = nn.Parameter(torch.empty(extra, channels)) if extra else None
        self.mlp = nn.Sequential(
            nn.Linear(channels, 2 * channels),
            activation_resolver(act),
            nn.Dropout(dropout),
            nn.Linear(2 * channels, channels),
            nn.Dropout(dropout),
        )
        self.norm1 = normalization_resolver(norm, channels)
        self.norm2 = normalization_resolver(norm, channels) if self.attn is not None else None
        self.norm3 = normalization_resolver(norm, channels)
        self.norm_with_batch = _takes_batch(self.norm1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.conv is not None and hasattr(self.conv, "reset_parameters"):
            self.conv.reset_parameters()
        if self.attn is not None:
            self.attn.reset_parameters()
        if self.virtual is not None:
            nn.init.normal_(self.virtual, std=0.02)
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        for norm in (self.norm1, self.norm2, self.norm3):
            if norm is not None and hasattr(norm, "reset_parameters"):
                norm.reset_parameters()

    @classmethod
    def from_pyg(cls, gps: nn.Module, *, pattern: Pattern | str = "Full()", backend: str = "auto") -> GPSConv:
        """A layer with a copy of PyG's ``GPSConv(attn_type="multihead")`` (its local conv, its
        attention weights, MLP and norms, copied, not shared). With ``Full()`` it computes what
        ``gps`` computes; another ``pattern`` keeps the weights and changes who attends to whom."""
        from torch_geometric.nn import GPSConv as PyGGPSConv

        if not isinstance(gps, PyGGPSConv):
            raise TypeError(f"gps must be a torch_geometric.nn.GPSConv, got {type(gps).__name__}")
        if not isinstance(gps.attn, nn.MultiheadAttention):
            raise ValueError(f"gps must use attn_type='multihead', got {gps.attn_type!r}")
        layer = cls(gps.channels, None, gps.heads, pattern=pattern, dropout=gps.dropout, norm=None, backend=backend)
        layer.conv = copy.deepcopy(gps.conv)
        layer.attn = SelfAttentionConv.from_torch(gps.attn, backend=backend)
        layer.mlp = copy.deepcopy(gps.mlp)
        layer.norm1, layer.norm2, layer.norm3 = (copy.deepcopy(n) for n in (gps.norm1, gps.norm2, gps.norm3))
        layer.norm_with_batch = _takes_batch(layer.norm1)
        return layer.to(gps.attn.in_proj_weight.device)

    def forward(self, x: Tensor, edge_index: object, batch: Tensor | None = None, *,
                attention: AttentionGraph | None = None, **kwargs) -> Tensor:
        """``x`` through both branches and the MLP. ``attention`` is the prepared graph of the
        global branch (``AttentionGraph.build(pattern, N, batch=batch)``, what a model builds
        once for all its layers); without it the layer lays its ``pattern`` on ``batch``.
        ``kwargs`` (e.g. ``edge_attr``) go to ``conv``. Without a global branch ``attention``
        is not used."""
        if self.attn is None:
            h = F.dropout(self.conv(x, edge_index, **kwargs), self.dropout, self.training)
            h = self._norm(self.norm1, h + x, batch)
            return self._norm(self.norm3, h + self.mlp(h), batch)
        if attention is None:
            attention = AttentionGraph.build(self.pattern, x.size(0), batch=batch).to(x.device)
        elif not isinstance(attention, AttentionGraph):
            raise TypeError(f"attention must be an AttentionGraph or None, got {type(attention).__name__}")
        if attention.num_real_nodes != x.size(0) or attention.num_virtual != (0 if self.virtual is None
                                                                               else self.virtual.size(0)):
            raise ValueError(f"attention must lay {self.pattern.extra_nodes} virtual node(s) on the {x.size(0)} "
                             f"nodes of x, got {attention!r}")
        hs = []
        if self.conv is not None:
            h = F.dropout(self.conv(x, edge_index, **kwargs), self.dropout, self.training)
            hs.append(self._norm(self.norm1, h + x, batch))
        h = attention.with_virtual(x, self.virtual) if self.virtual is not None else x  # (N + B * k, C)
        h = attention.real(self.attn(h, attention))  # (N, C)
        h = F.dropout(h, self.dropout, self.training)
        hs.append(self._norm(self.norm2, h + x, batch))
        out = sum(hs)
        return self._norm(self.norm3, out + self.mlp(out), batch)

    def _norm(self, norm: nn.Module | None, h: Tensor, batch: Tensor | None) -> Tensor:
        if norm is None:
            return h
        return norm(h, batch=batch) if self.norm_with_batch else norm(h)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, conv={self.conv}, heads={self.heads}, "
                f"pattern={self.pattern!r})")


def _takes_batch(norm: nn.Module | None) -> bool:
    """Whether a norm takes ``batch`` (GraphNorm, PyG's LayerNorm in graph mode, ...), as PyG checks."""
    return norm is not None and "batch" in inspect.signature(norm.forward).parameters
