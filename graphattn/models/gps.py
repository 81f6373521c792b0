"""GraphGPS: a local message-passing layer beside attention along any pattern, encodings, pooled head."""

from __future__ import annotations

import copy

from torch import Tensor, nn
from torch_geometric.nn import GCNConv, GINConv, GINEConv, ResGatedGraphConv, global_add_pool, global_mean_pool

from ..checks import check_int, check_probability
from ..nn.pyg.gps_conv import GPSConv
from ..ops import AttentionGraph
from ..patterns import Pattern, parse_pattern

__all__ = ["GraphGPS", "GPS_POOLINGS", "LOCAL_LAYERS"]

#: What ``pooling=`` accepts: the sum (GIN's readout) or the mean of each graph's nodes.
GPS_POOLINGS = ("add", "mean")
#: What ``local=`` accepts (see :class:`GraphGPS`).
LOCAL_LAYERS = ("gine", "gatedgcn", "gcn")
#: The local layers that read edge features.
_EDGE_AWARE = ("gine", "gatedgcn")


class GraphGPS(nn.Module):
    r"""A stack of :class:`~graphattn.nn.GPSConv` layers for graph-level prediction (GraphGPS).

    .. math::
        h^{(0)} = \operatorname{Enc}(x) + W_{pe}\, \mathrm{pe}, \qquad
        h^{(l)} = \operatorname{GPS}_l(h^{(l-1)}, E_{graph}, E_{attn}), \qquad
        y = \operatorname{MLP}\big(\operatorname{Pool}(h^{(L)})\big)

    ``Enc`` is the linear map ``W_in`` of ``in_channels`` features, or a module given as
    ``in_channels`` (e.g. a :class:`~graphattn.nn.CategoricalEncoder` of atom types). The local
    layer of each block (``local``) is

    * ``"gine"``: ``GINEConv`` over the graph's edges with their features (``GINConv`` without
      ``edge_dim``), whose MLP is ``Linear -> BatchNorm -> ReLU -> Linear``;
    * ``"gatedgcn"``: PyG's ``ResGatedGraphConv`` (Bresson & Laurent's residual gated graph
      convnet), the edge features in its gates, ``h_i' = W_s h_i + sum_j sigma(W_k [h_i, e_ij] +
      W_q [h_j, e_ij]) * W_v [h_j, e_ij]``; benchmarking-gnns' GatedGCN also keeps and updates an
      edge stream, which this one does not;
    * ``"gcn"``: ``GCNConv`` (no edge features).

    The global attention runs along ``pattern`` laid on every graph of the batch, or nowhere with
    ``pattern=None``: then each block is its local layer with a residual, a norm, dropout and a
    feed-forward block, the "GNN+" of Luo et al. (2025). The :class:`~graphattn.AttentionGraph`
    of the attention is built once per forward (or given as ``attention``) and handed to every
    layer. ``pe`` are structural / positional features such as PyG's ``AddRandomWalkPE``
    (GraphGPS's RWSE).

    Args:
        in_channels: node feature width ``F``, or a module mapping ``x`` to ``(N, C)``.
        hidden_channels: model width ``C``.
        out_channels: classes or targets.
        num_layers: GPS layers ``L``. (default: ``3``)
        heads: attention heads ``H``. (default: ``4``)
        pattern: the global attention's pattern (or its text), or ``None``. (default: ``Full()``)
        edge_dim: edge feature width, or a module mapping ``edge_attr`` to ``(E, C)``, or ``None``
            for no edge features. (default: ``None``)
        pe_dim: width of ``pe``, or ``0`` for none. (default: ``0``)
        dropout: dropout in every block and before the head's last layer. (default: ``0.0``)
        pooling: ``"add"`` or ``"mean"`` over each graph's nodes. (default: ``"add"``)
        local: the local layer, one of :data:`LOCAL_LAYERS`. (default: ``"gine"``)
        attn_dropout: dropout on the attention weights. (default: ``0.0``)
        operator: an attention operator for the global branch (``performer()``: GraphGPS's
            Performer variant), copied into every layer. (default: ``None``)

    Shapes:
        - input: ``x`` ``(N, F)`` (or what the ``in_channels`` module takes); ``edge_index``
          ``(2, E)``; ``edge_attr`` ``(E, edge_dim)``; ``batch`` ``(N)``; ``pe`` ``(N, pe_dim)``
        - output: ``(B, out_channels)``
    """

    def __init__(self, in_channels: int | nn.Module, hidden_channels: int, out_channels: int, num_layers: int = 3,
                 heads: int = 4, pattern: Pattern | str | None = "Full()", *, edge_dim: int | nn.Module | None = None,
                 pe_dim: int = 0, dropout: float = 0.0, pooling: str = "add", local: str = "gine",
                 attn_dropout: float = 0.0, operator: nn.Module | None = None):
        super().__init__()
        for name, value in (("hidden_channels", hidden_channels), ("out_channels", out_channels),
                            ("num_layers", num_layers)):
            check_int(value, name)
        if not isinstance(in_channels, nn.Module):
            check_int(in_channels, "in_channels")
        if edge_dim is not None and not isinstance(edge_dim, nn.Module):
            check_int(edge_dim, "edge_dim")
        check_int(pe_dim, "pe_dim", 0)
        check_probability(attn_dropout, "attn_dropout")
        if pooling not in GPS_POOLINGS:
            raise ValueError(f"pooling must be one of {GPS_POOLINGS}, got {pooling!r}")
        if local not in LOCAL_LAYERS:
            raise ValueError(f"local must be one of {LOCAL_LAYERS}, got {local!r}")
        if edge_dim is not None and local not in _EDGE_AWARE:
            raise ValueError(f"local={local!r} reads no edge features: leave edge_dim unset or use one of {_EDGE_AWARE}")
        self.pattern = parse_pattern(pattern) if isinstance(pattern, str) else pattern
        if self.pattern is not None and not isinstance(self.pattern, Pattern):
            raise TypeError(f"pattern must be a Pattern, its text or None, got {type(pattern).__name__}")
        self.in_channels, self.hidden_channels, self.out_channels = in_channels, hidden_channels, out_channels
        self.num_layers, self.heads, self.edge_dim, self.pe_dim, self.pooling = num_layers, heads, edge_dim, pe_dim, pooling
        self.local = local
        self.lin_in = in_channels if isinstance(in_channels, nn.Module) else nn.Linear(in_channels, hidden_channels)
        self.edge_encoder = edge_dim if isinstance(edge_dim, nn.Module) else None
        conv_edge_dim = edge_dim if isinstance(edge_dim, int) else None  # an int (checked above), a module or None
        self.reads_edges = edge_dim is not None and local in _EDGE_AWARE
        self.lin_pe = nn.Linear(pe_dim, hidden_channels) if pe_dim else None
        self.layers = nn.ModuleList(
            GPSConv(hidden_channels, _local(local, hidden_channels, conv_edge_dim, edge_dim is not None), heads,
                    dropout=dropout, attn_type=self.pattern,
                    attn_kwargs=None if self.pattern is None else {"dropout": attn_dropout},
                    operator=copy.deepcopy(operator))
            for _ in range(num_layers))
        self.head = nn.Sequential(nn.Linear(hidden_channels, hidden_channels), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden_channels, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (self.lin_in, self.edge_encoder, self.lin_pe, *self.layers, *self.head):
            if module is not None and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None, batch: Tensor | None = None,
                *, pe: Tensor | None = None, attention: AttentionGraph | None = None) -> Tensor:
        """``(B, out_channels)``: one prediction per graph of ``batch`` (default one graph).
        ``attention`` is the prepared graph of the global branch (default: ``pattern`` laid on
        ``batch``, built here once for every layer)."""
        if (pe is None) != (self.lin_pe is None):
            raise ValueError(f"pe of shape [N, {self.pe_dim}] is required" if self.lin_pe is not None
                             else "pe was given but the model has pe_dim=0")
        if (edge_attr is None) == self.reads_edges:  # never dropped silently
            raise ValueError(f"edge_attr is required by the {self.local!r} layer (edge_dim={self.edge_dim})"
                             if self.reads_edges else "edge_attr was given but the model reads no edge features "
                             f"(edge_dim={self.edge_dim}, local={self.local!r}): build it with edge_dim=")
        if attention is None and self.pattern is not None:
            attention = AttentionGraph.build(self.pattern, x.size(0), batch=batch).to(x.device)
        h = self.lin_in(x)  # (N, C)
        if self.lin_pe is not None:
            h = h + self.lin_pe(pe)
        kwargs = {}
        if self.reads_edges:
            kwargs["edge_attr"] = self.edge_encoder(edge_attr) if self.edge_encoder is not None else edge_attr
        for layer in self.layers:
            h = layer(h, edge_index, batch, attention=attention, **kwargs)
        pool = global_add_pool if self.pooling == "add" else global_mean_pool
        size = None if batch is None or attention is None else attention.sizes.numel()
        return self.head(pool(h, batch, size=size))  # (B, out_channels)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, {self.out_channels}, "
                f"num_layers={self.num_layers}, heads={self.heads}, pattern={self.pattern!r}, local={self.local!r}, "
                f"edge_dim={self.edge_dim}, pe_dim={self.pe_dim}, pooling={self.pooling!r})")


def _local(name: str, channels: int, edge_dim: int | None, edges: bool) -> nn.Module:
    """The local layer ``name`` of width ``channels``; ``edge_dim``: the raw edge feature width it
    maps itself (``None``: edge features arrive at ``channels``, or there are none, ``edges``)."""
    if name == "gcn":
        return GCNConv(channels, channels)
    if name == "gatedgcn":
        return ResGatedGraphConv(channels, channels, edge_dim=(edge_dim or channels) if edges else None)
    mlp = nn.Sequential(nn.Linear(channels, channels), nn.BatchNorm1d(channels), nn.ReLU(),
                        nn.Linear(channels, channels))
    return GINEConv(mlp, edge_dim=edge_dim) if edges else GINConv(mlp)
