"""LocalGlobalNetwork: local message passing beside linear global attention (SGFormer, Polynormer)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from ..checks import check_bool, check_int, check_probability
from ..nn.attention import SelfAttentionConv
from ..nn.linear import LinearAttention
from ..ops import AttentionGraph
from ..patterns import Full
from ..patterns.graph import check_edge_index
from .plus import gcn_adjacency

__all__ = ["LocalGlobalNetwork"]


class LocalGlobalNetwork(nn.Module):
    r"""Node classification with a local message-passing branch and a linear global-attention branch.

    .. math::
        h^{(0)} = \operatorname{Dropout}\big(\operatorname{ReLU}(W_{in} x)\big), \qquad
        y = W_{out} h^{(L)}

        h^{(l)} = \operatorname{LN}_l\Big(h^{(l-1)}
            + \operatorname{Dropout}\big(\operatorname{ReLU}(\operatorname{MPNN}_l(h^{(l-1)}, E))\big)
            + \operatorname{Dropout}\big(\operatorname{Attn}_l(h^{(l-1)})\big)\Big)

    ``MPNN_l`` is a copy of ``local`` along the graph's edges (default ``GCNConv``, run on the
    normalised adjacency of :func:`~graphattn.models.plus.gcn_adjacency`, built once per forward:
    one sparse product per layer instead of PyG's gather and scatter); ``Attn_l`` a
    :class:`~graphattn.nn.SelfAttentionConv` whose copy of ``operator`` (default
    ``LinearAttention("sigmoid")``, Polynormer's kernel; :func:`~graphattn.nn.performer` for
    FAVOR+) attends from every node to every node of its graph in O(N), never forming an edge:
    the shape of SGFormer and Polynormer, which lead large node-classification benchmarks with
    such a global branch beside local message passing. ``global_layers`` keeps the global branch
    in the first layers only (the others drop the ``Attn_l`` term): SGFormer's finding is that one
    global layer suffices, and each layer without it saves four ``N x C`` projections. In a
    mini-batch (a sampled or partitioned subgraph) the global branch attends over the nodes of
    the mini-batch, as SGFormer trains.

    Args:
        in_channels: node feature width ``F``.
        hidden_channels: model width ``H * C``.
        out_channels: classes.
        num_layers: layers ``L``. (default: ``2``)
        heads: attention heads ``H``. (default: ``1``)
        local: the local layer, called as ``local(h, edge_index)`` with ``hidden_channels`` in and
            out, copied into every layer. (default: ``GCNConv(hidden_channels, hidden_channels)``)
        operator: the global branch's attention operator, copied into every layer. (default:
            ``LinearAttention("sigmoid")``)
        dropout: dropout on the input projection and on both branches. (default: ``0.5``)
        global_branch: ``False`` drops the global branch: the same model, local only (the
            baseline the global branch is measured against). (default: ``True``)
        global_layers: how many layers, the first ones, have the global branch; ``None``: all.
            (default: ``None``)

    Shapes:
        - input: ``x`` ``(N, F)``; ``edge_index`` ``(2, E)`` (or any adjacency ``local`` takes);
          ``batch`` ``(N)`` for several graphs
        - output: ``(N, out_channels)``
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2, heads: int = 1,
                 *, local: nn.Module | None = None, operator: nn.Module | None = None, dropout: float = 0.5,
                 global_branch: bool = True, global_layers: int | None = None):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                            ("out_channels", out_channels), ("num_layers", num_layers), ("heads", heads)):
            check_int(value, name)
        self.dropout = check_probability(dropout, "dropout")
        self.global_branch = check_bool(global_branch, "global_branch")
        if global_layers is not None:
            check_int(global_layers, "global_layers")
            if global_layers > num_layers:
                raise ValueError(f"global_layers must be at most num_layers ({num_layers}), got {global_layers}")
            if not global_branch:
                raise ValueError("global_layers needs the global branch; it was dropped (global_branch=False)")
        self.global_layers = num_layers if global_layers is None else global_layers
        if local is not None and not isinstance(local, nn.Module):
            raise TypeError(f"local must be an nn.Module (e.g. GCNConv) or None, got {type(local).__name__}")
        self.gcn = local is None  # the default: GCN as one sparse product on an adjacency made once per forward
        local = GCNConv(hidden_channels, hidden_channels, normalize=False) if local is None else local
        operator = LinearAttention("sigmoid") if operator is None else operator
        self.in_channels, self.hidden_channels, self.out_channels = in_channels, hidden_channels, out_channels
        self.num_layers, self.heads = num_layers, heads
        self.lin_in = nn.Linear(in_channels, hidden_channels)
        self.locals = nn.ModuleList(copy.deepcopy(local) for _ in range(num_layers))
        self.attns = nn.ModuleList(
            SelfAttentionConv(hidden_channels, hidden_channels, heads, operator=copy.deepcopy(operator))
            for _ in range(self.global_layers)) if global_branch else None
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_channels) for _ in range(num_layers))
        self.head = nn.Linear(hidden_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin_in.reset_parameters()
        for module in (*self.locals, *(self.attns or ()), *self.norms):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.head.reset_parameters()

    def forward(self, x: Tensor, edge_index: object, *, batch: Tensor | None = None) -> Tensor:
        """``(N, out_channels)``; the global branch attends within each graph of ``batch``
        (default: all nodes of ``x``, one graph)."""
        if not isinstance(x, Tensor) or x.dim() != 2 or x.size(1) != self.in_channels:
            got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must have shape [N, in_channels={self.in_channels}], got {got}")
        h = F.dropout(F.relu(self.lin_in(x)), self.dropout, self.training)  # (N, hidden)
        if self.gcn:
            edge_index = _normalised(edge_index, x.size(0), h.dtype)  # \hat A, once for every layer
        graph = None
        if self.attns is not None:
            graph = AttentionGraph.build(Full(), x.size(0), batch=batch).to(x.device)  # once for every layer
        for layer in range(self.num_layers):
            out = h + F.dropout(F.relu(self.locals[layer](h, edge_index)), self.dropout, self.training)
            if self.attns is not None and layer < len(self.attns):
                out = out + F.dropout(self.attns[layer](h, graph), self.dropout, self.training)
            h = self.norms[layer](out)
        return self.head(h)

    def __repr__(self) -> str:
        operator = self.attns[0].operator if self.attns is not None else None
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, {self.out_channels}, "
                f"num_layers={self.num_layers}, heads={self.heads}, local={self.locals[0]!r}, operator={operator!r}"
                + (f", global_layers={self.global_layers}" if self.attns is not None and
                   self.global_layers != self.num_layers else "") + ")")


def _normalised(adjacency: object, num_nodes: int, dtype: torch.dtype) -> object:
    """GCN's :math:`\\hat A` of an ``edge_index`` (:func:`gcn_adjacency`) or of a sparse adjacency
    (a torch sparse tensor or ``SparseTensor``, through PyG's ``gcn_norm``)."""
    if isinstance(adjacency, Tensor) and adjacency.layout == torch.strided:  # building it syncs anyway
        return gcn_adjacency(check_edge_index(adjacency, num_nodes), num_nodes, dtype=dtype)
    normalised = gcn_norm(adjacency, None, num_nodes, add_self_loops=True, dtype=dtype)
    return normalised[0] if isinstance(normalised, tuple) else normalised
