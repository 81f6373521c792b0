"""GNNPlus: tuned message passing for node classification (Luo et al.'s "GNN+"), with optional attention."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from ..checks import check_bool, check_int, check_probability
from ..nn.attention import SelfAttentionConv
from ..ops import AttentionGraph
from ..patterns import Pattern, parse_pattern

__all__ = ["GNNPlus", "gcn_adjacency", "PLUS_LOCAL_LAYERS", "PLUS_NORMS"]

#: What ``local=`` accepts: PyG's ``GCNConv`` or ``GATConv``, or ``None`` (attention only).
PLUS_LOCAL_LAYERS = ("gcn", "gat", None)
#: What ``norm=`` accepts.
PLUS_NORMS = ("layer_norm", "batch_norm", None)


class GNNPlus(nn.Module):
    r"""Node classification by message passing with the tuning of Luo et al. (NeurIPS 2024):
    residual connections, normalisation and dropout in every layer; optionally graphattn's
    attention along ``pattern`` summed with the message passing in each layer.

    .. math::
        h^{(0)} = W_{in} x, \qquad y = W_{out} h^{(L)}

        h^{(l)} = \operatorname{Dropout}\Big(\operatorname{ReLU}\big(\operatorname{Norm}_l\big(
            \operatorname{MPNN}_l(h^{(l-1)}, E) + \operatorname{Attn}_l(h^{(l-1)}, E_{attn})
            + W_l h^{(l-1)}\big)\big)\Big)

    ``MPNN_l`` is ``GCNConv`` (on the normalised adjacency of :func:`gcn_adjacency`, built once
    per forward or given: one sparse product per layer instead of PyG's gather and scatter over
    the edges, about ten times faster on a CPU) or ``GATConv`` (``heads`` heads of ``C / heads``
    channels, concatenated) along the graph's edges, ``Attn_l`` a :class:`~graphattn.nn.SelfAttentionConv`
    along the edges of a prepared :class:`~graphattn.AttentionGraph` (``pattern`` laid on the
    graph: its edges, virtual nodes, expander edges; each layer learns its own virtual nodes),
    ``W_l h`` the residual (``residual=False`` drops it). Without ``pattern`` this is Luo et
    al.'s ``MPNNs`` (their ``tunedGNN/medium_graph/model.py``) with ``--res`` and ``--ln``, but
    for the input map: their first layer maps the raw features itself, here ``W_in`` does (the
    same function class: no activation or dropout lies between ``W_in`` and the first layer's
    linear maps), which lets sparse bag-of-words features be read once.

    Args:
        in_channels: node feature width ``F``.
        hidden_channels: model width ``C``.
        out_channels: classes.
        num_layers: layers ``L``. (default: ``2``)
        heads: heads of the attention and of ``GATConv`` (must divide ``C``). (default: ``1``)
        pattern: the attention's pattern (or its text); ``None``: no attention. (default: ``None``)
        local: one of :data:`PLUS_LOCAL_LAYERS`. (default: ``"gcn"``)
        dropout: after each layer's activation. (default: ``0.5``)
        norm: one of :data:`PLUS_NORMS`. (default: ``"layer_norm"``)
        residual: add ``W_l h`` in each layer. (default: ``True``)
        attn_dropout: dropout on the attention weights. (default: ``0.0``)

    Shapes:
        - input: ``x`` ``(N, F)`` (dense or sparse CSR); ``edge_index`` ``(2, E)``;
          ``attention`` an ``AttentionGraph`` of the ``N`` nodes (with ``pattern``);
          ``adjacency`` ``gcn_adjacency(edge_index, N)`` (optional, ``local="gcn"``)
        - output: ``(N, out_channels)``
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2, heads: int = 1,
                 pattern: Pattern | str | None = None, *, local: str | None = "gcn", dropout: float = 0.5,
                 norm: str | None = "layer_norm", residual: bool = True, attn_dropout: float = 0.0):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                            ("out_channels", out_channels), ("num_layers", num_layers), ("heads", heads)):
            check_int(value, name)
        if hidden_channels % heads:
            raise ValueError(f"heads ({heads}) must divide hidden_channels ({hidden_channels})")
        if local not in PLUS_LOCAL_LAYERS:
            raise ValueError(f"local must be one of {PLUS_LOCAL_LAYERS}, got {local!r}")
        if norm not in PLUS_NORMS:
            raise ValueError(f"norm must be one of {PLUS_NORMS}, got {norm!r}")
        pattern = parse_pattern(pattern) if isinstance(pattern, str) else pattern
        if pattern is not None and not isinstance(pattern, Pattern):
            raise TypeError(f"pattern must be a Pattern, its text or None, got {type(pattern).__name__}")
        if pattern is None and local is None:
            raise ValueError("local and pattern cannot both be None: the layers would pass no messages")
        self.dropout = check_probability(dropout, "dropout")
        self.residual = check_bool(residual, "residual")
        self.in_channels, self.hidden_channels, self.out_channels = in_channels, hidden_channels, out_channels
        self.num_layers, self.heads, self.pattern, self.local, self.norm = num_layers, heads, pattern, local, norm
        c = hidden_channels
        self.lin_in = nn.Linear(in_channels, c)
        self.convs = nn.ModuleList(_local(local, c, heads) for _ in range(num_layers)) if local else None
        self.attns = nn.ModuleList(SelfAttentionConv(c, c, heads, dropout=attn_dropout) for _ in range(num_layers)) \
            if pattern is not None else None
        virtual = 0 if pattern is None else pattern.extra_nodes
        self.virtual = nn.ParameterList(nn.Parameter(torch.empty(virtual, c)) for _ in range(num_layers)) \
            if virtual else None
        self.skips = nn.ModuleList(nn.Linear(c, c) for _ in range(num_layers)) if residual else None
        self.norms = nn.ModuleList(_norm(norm, c) for _ in range(num_layers)) if norm else None
        self.lin_out = nn.Linear(c, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (self.lin_in, *(self.convs or ()), *(self.attns or ()), *(self.skips or ()),
                       *(self.norms or ()), self.lin_out):
            module.reset_parameters()
        for weight in self.virtual or ():
            nn.init.normal_(weight, std=0.02)

    def forward(self, x: Tensor, edge_index: Tensor, *, attention: AttentionGraph | None = None,
                adjacency: Tensor | None = None) -> Tensor:
        """``(N, out_channels)``. ``attention`` is the prepared graph the attention runs along
        (required with ``pattern``: the model lays nothing itself, the graph is the caller's);
        ``adjacency`` the GCN's, ``gcn_adjacency(edge_index, N)`` (made here if not given)."""
        if (attention is None) != (self.attns is None):
            raise ValueError("attention (an AttentionGraph of x's nodes) is required: the model attends along "
                             f"{self.pattern!r}" if self.attns is not None else
                             "attention was given but the model has no attention (pattern=None)")
        h = self.lin_in(x)  # (N, C)
        edges = edge_index
        if self.local == "gcn":
            edges = gcn_adjacency(edge_index, x.size(0), dtype=h.dtype) if adjacency is None else adjacency.to(h.dtype)
        for layer in range(self.num_layers):
            out = self.convs[layer](h, edges) if self.convs is not None else 0
            if self.attns is not None and attention is not None:  # checked above: both or neither
                keys = attention.with_virtual(h, self.virtual[layer]) if self.virtual is not None else h  # (N + k, C)
                out = out + attention.real(self.attns[layer](keys, attention))  # (N, C)
            if self.skips is not None:
                out = out + self.skips[layer](h)
            if self.norms is not None:
                out = self.norms[layer](out)
            assert isinstance(out, Tensor)  # local and pattern are never both None: a conv or attention gave it
            h = F.dropout(F.relu(out), self.dropout, self.training)
        return self.lin_out(h)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, {self.out_channels}, "
                f"num_layers={self.num_layers}, heads={self.heads}, pattern={self.pattern!r}, local={self.local!r}, "
                f"norm={self.norm!r}, residual={self.residual})")


def gcn_adjacency(edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""The normalised adjacency of GCN as a sparse CSR matrix ``[N, N]`` whose row ``i`` holds
    the weights of ``i``'s in-neighbours: :math:`\hat A = D^{-1/2}(A + I)D^{-1/2}` with the
    self-loops and weights of PyG's ``gcn_norm`` (``GCNConv(normalize=True)`` computes the same
    on every call), in ``dtype``. ``GCNConv(normalize=False)(x, gcn_adjacency(...))`` equals
    ``GCNConv(normalize=True)(x, edge_index)``."""
    ones = torch.ones(edge_index.size(1), dtype=dtype, device=edge_index.device)
    edges, weight = gcn_norm(edge_index, ones, num_nodes, add_self_loops=True)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": products with it are stable
        warnings.simplefilter("ignore", UserWarning)
        adjacency = torch.sparse_coo_tensor(edges.flip(0), weight, (num_nodes, num_nodes)).coalesce()
        return adjacency.to_sparse_csr()


def _local(name: str, channels: int, heads: int) -> nn.Module:
    if name == "gcn":
        return GCNConv(channels, channels, normalize=False)
    return GATConv(channels, channels // heads, heads=heads)


def _norm(name: str, channels: int) -> nn.Module:
    return nn.LayerNorm(channels) if name == "layer_norm" else nn.BatchNorm1d(channels)
