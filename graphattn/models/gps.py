"""GraphGPS: GINE on the bonds, attention along any pattern, random-walk encodings, pooled head."""

from __future__ import annotations

import copy

from torch import Tensor, nn
from torch_geometric.nn import GINConv, GINEConv, global_add_pool, global_mean_pool

from ..checks import check_int
from ..nn.pyg.gps_conv import GPSConv
from ..ops import AttentionGraph
from ..patterns import Pattern, parse_pattern

__all__ = ["GraphGPS", "GPS_POOLINGS"]

#: What ``pooling=`` accepts: the sum (GIN's readout) or the mean of each graph's nodes.
GPS_POOLINGS = ("add", "mean")


class GraphGPS(nn.Module):
    r"""A stack of :class:`~graphattn.nn.GPSConv` layers for graph-level prediction (GraphGPS).

    .. math::
        h^{(0)} = W_{in} x + W_{pe}\, \mathrm{pe}, \qquad
        h^{(l)} = \operatorname{GPS}_l(h^{(l-1)}, E_{graph}, E_{attn}), \qquad
        y = \operatorname{MLP}\big(\operatorname{Pool}(h^{(L)})\big)

    The local layer of each block is ``GINEConv`` over the graph's edges with their features
    (``GINConv`` without ``edge_dim``), whose MLP is ``Linear -> BatchNorm -> ReLU -> Linear``;
    the global attention runs along ``pattern`` laid on every graph of the batch. The
    :class:`~graphattn.AttentionGraph` of the attention is built once per forward (or given
    as ``attention``) and handed to every layer. ``pe`` are structural / positional features
    such as PyG's ``AddRandomWalkPE`` (GraphGPS's RWSE).

    Args:
        in_channels: node feature width ``F``.
        hidden_channels: model width ``C``.
        out_channels: classes or targets.
        num_layers: GPS layers ``L``. (default: ``3``)
        heads: attention heads ``H``. (default: ``4``)
        pattern: the global attention's pattern (or its text). (default: ``Full()``)
        edge_dim: edge feature width for GINE, or ``None`` for GIN. (default: ``None``)
        pe_dim: width of ``pe``, or ``0`` for none. (default: ``0``)
        dropout: dropout in every block and before the head's last layer. (default: ``0.0``)
        pooling: ``"add"`` or ``"mean"`` over each graph's nodes. (default: ``"add"``)
        operator: an attention operator for the global branch (``performer()``: GraphGPS's
            Performer variant), copied into every layer. (default: ``None``)

    Shapes:
        - input: ``x`` ``(N, F)``; ``edge_index`` ``(2, E)``; ``edge_attr`` ``(E, edge_dim)``;
          ``batch`` ``(N)``; ``pe`` ``(N, pe_dim)``
        - output: ``(B, out_channels)``
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 3,
                 heads: int = 4, pattern: Pattern | str = "Full()", *, edge_dim: int | None = None, pe_dim: int = 0,
                 dropout: float = 0.0, pooling: str = "add", operator: nn.Module | None = None):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                            ("out_channels", out_channels), ("num_layers", num_layers)):
            check_int(value, name)
        check_int(pe_dim, "pe_dim", 0)
        if edge_dim is not None:
            check_int(edge_dim, "edge_dim")
        if pooling not in GPS_POOLINGS:
            raise ValueError(f"pooling must be one of {GPS_POOLINGS}, got {pooling!r}")
        self.pattern = parse_pattern(pattern) if isinstance(pattern, str) else pattern
        if not isinstance(self.pattern, Pattern):
            raise TypeError(f"pattern must be a Pattern or its text, got {type(pattern).__name__}")
        self.in_channels, self.hidden_channels, self.out_channels = in_channels, hidden_channels, out_channels
        self.num_layers, self.heads, self.edge_dim, self.pe_dim, self.pooling = num_layers, heads, edge_dim, pe_dim, pooling
        self.lin_in = nn.Linear(in_channels, hidden_channels)
        self.lin_pe = nn.Linear(pe_dim, hidden_channels) if pe_dim else None
        self.layers = nn.ModuleList(
            GPSConv(hidden_channels, _local(hidden_channels, edge_dim), heads, pattern=self.pattern, dropout=dropout,
                    operator=copy.deepcopy(operator))
            for _ in range(num_layers))
        self.head = nn.Sequential(nn.Linear(hidden_channels, hidden_channels), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden_channels, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin_in.reset_parameters()
        if self.lin_pe is not None:
            self.lin_pe.reset_parameters()
        for layer in self.layers:
            layer.reset_parameters()
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None, batch: Tensor | None = None,
                *, pe: Tensor | None = None, attention: AttentionGraph | None = None) -> Tensor:
        """``(B, out_channels)``: one prediction per graph of ``batch`` (default one graph).
        ``attention`` is the prepared graph of the global branch (default: ``pattern`` laid on
        ``batch``, built here once for every layer)."""
        if (pe is None) != (self.lin_pe is None):
            raise ValueError(f"pe of shape [N, {self.pe_dim}] is required" if self.lin_pe is not None
                             else "pe was given but the model has pe_dim=0")
        if (edge_attr is None) != (self.edge_dim is None):  # never dropped silently
            raise ValueError(f"edge_attr of shape [E, {self.edge_dim}] is required (edge_dim={self.edge_dim})"
                             if self.edge_dim is not None else "edge_attr was given but the model has edge_dim=None "
                             "(GIN ignores edge features): build it with edge_dim=")
        if attention is None:
            attention = AttentionGraph.build(self.pattern, x.size(0), batch=batch).to(x.device)
        h = self.lin_in(x)  # (N, C)
        if self.lin_pe is not None:
            h = h + self.lin_pe(pe)
        kwargs = {} if self.edge_dim is None else {"edge_attr": edge_attr}
        for layer in self.layers:
            h = layer(h, edge_index, batch, attention=attention, **kwargs)
        pool = global_add_pool if self.pooling == "add" else global_mean_pool
        size = None if batch is None else attention.sizes.numel()
        return self.head(pool(h, batch, size=size))  # (B, out_channels)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, {self.out_channels}, "
                f"num_layers={self.num_layers}, heads={self.heads}, pattern={self.pattern!r}, "
                f"edge_dim={self.edge_dim}, pe_dim={self.pe_dim}, pooling={self.pooling!r})")


def _local(channels: int, edge_dim: int | None) -> nn.Module:
    mlp = nn.Sequential(nn.Linear(channels, channels), nn.BatchNorm1d(channels), nn.ReLU(),
                        nn.Linear(channels, channels))
    return GINConv(mlp) if edge_dim is None else GINEConv(mlp, edge_dim=edge_dim)
