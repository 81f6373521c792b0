"""GATConv: PyG's graph attention layer, computed on graphattn's sparse kernel."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import glorot, zeros
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import softmax

from ...checks import check_float, check_int
from ...patterns import Pattern
from ..edges import pyg_tools_active
from .common import attend, check_backend, dropout_mask, gat_output
from .extras import check_pattern, layer_edges, virtual_rows

__all__ = ["GATConv"]


class GATConv(MessagePassing):
    r"""The graph attention layer of Velickovic et al. (2018), as ``torch_geometric.nn.GATConv``.

    .. math::
        \alpha^h_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}\Big(
            \operatorname{LeakyReLU}\big(\mathbf{a}^{h\top}_{s} \Theta_s \mathbf{x}_j
            + \mathbf{a}^{h\top}_{t} \Theta_t \mathbf{x}_i
            + \mathbf{a}^{h\top}_{e} \Theta_e \mathbf{e}_{ij}\big)\Big),
        \qquad
        \mathbf{x}'_i = \big\Vert_{h} \sum_{j} \alpha^h_{ij} \Theta^h_s \mathbf{x}_j
        \;(\text{or the mean over heads}) + \Theta_r \mathbf{x}_i + \mathbf{b}

    Same constructor, forward, parameter names (a PyG ``GATConv``'s ``state_dict`` loads), ``repr``,
    defaults and return formats as PyG's layer; with the same weights it gives PyG's outputs,
    attention weights and gradients (float tolerance), and with the same seed it draws the same
    initial weights and the same attention dropout. The scores are sums of per-node scalars
    (``a_s . Theta_s x_j``, ``a_t . Theta_t x_i``) and a per-edge scalar (``Theta_e`` and
    ``a_e`` folded into one ``[H, D]`` matrix), so the sparse kernel (``score="gat"``) never forms a
    per-edge row: O(E H) memory where PyG keeps O(E H C). Self-loops are replaced once per
    adjacency, not per call (see :mod:`graphattn.nn.edges`). Under PyG's explainers or message
    hooks the layer runs through ``propagate`` with the same weights.

    Args:
        in_channels: input width, ``-1`` (lazy) or a pair ``(F_src, F_dst)`` for bipartite inputs.
        out_channels: width per head ``C``.
        heads: heads ``H``. (default: ``1``)
        concat: concatenate the heads (``H C`` outputs), else average them (``C``). (default: ``True``)
        negative_slope: LeakyReLU's slope. (default: ``0.2``)
        dropout: dropout on the normalised attention weights while training. (default: ``0.0``)
        add_self_loops: replace self-loops by one per node. (default: ``True``)
        edge_dim: edge feature width, or ``None``. (default: ``None``)
        fill_value: edge features of the added self-loops: a number, a tensor, or a reduction
            (``"add"``, ``"mean"``, ``"min"``, ``"max"``, ``"mul"``) of the node's incoming edges'.
            (default: ``"mean"``)
        bias: learn an output bias. (default: ``True``)
        residual: add a learned skip ``Theta_r x_i``. (default: ``False``)
        backend: graphattn's kernel, ``"auto"`` or a name in ``graphattn.ops.BACKENDS``
            (keyword only, beyond PyG). (default: ``"auto"``)
        pattern: extra attention edges laid on each graph of the forward's ``batch``, e.g.
            ``VirtualNodes(1) | Expander(4)`` (keyword only, beyond PyG; see
            :mod:`graphattn.nn.pyg.extras`). (default: ``None``)
        **kwargs: ``MessagePassing``'s arguments.

    Shapes:
        - input: ``x`` ``(N, F)`` or ``((N_src, F_src), (N_dst, F_dst))`` (``x_dst`` may be
          ``None``); ``edge_index`` ``(2, E)``, an ``EdgeIndex``, a torch sparse or ``SparseTensor``
          ``adj_t``; ``edge_attr`` ``(E, D)`` or ``(E,)``; ``size`` ``(N_src, N_dst)``
        - output: ``(N_dst, H C)`` (``(N_dst, C)`` without ``concat``); with
          ``return_attention_weights=True`` also ``(edge_index, alpha (E, H))`` (a torch sparse
          ``adj_t``: ``(adj_t with alpha, alpha)``; a ``SparseTensor``: one with ``alpha``)
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        edge_dim: int | None = None,
        fill_value: float | Tensor | str = "mean",
        bias: bool = True,
        residual: bool = False,
        *,
        backend: str = "auto",
        pattern: Pattern | str | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)
        check_int(out_channels, "out_channels")
        check_int(heads, "heads")
        check_float(negative_slope, "negative_slope")
        check_float(dropout, "dropout", minimum=0.0, below=1.0)
        self.in_channels, self.out_channels, self.heads, self.concat = in_channels, out_channels, heads, concat
        self.negative_slope, self.dropout, self.add_self_loops = negative_slope, dropout, add_self_loops
        self.edge_dim, self.fill_value, self.residual = edge_dim, fill_value, residual
        self.backend, self.pattern = check_backend(backend), check_pattern(pattern)
        # one shared projection for one node set, or one per side (PyG's names and glorot init)
        self.lin: Linear | None = None
        self.lin_src: Linear | None = None
        self.lin_dst: Linear | None = None
        if isinstance(in_channels, int):
            self.lin = Linear(in_channels, heads * out_channels, bias=False, weight_initializer="glorot")
        else:
            self.lin_src = Linear(in_channels[0], heads * out_channels, False, weight_initializer="glorot")
            self.lin_dst = Linear(in_channels[1], heads * out_channels, False, weight_initializer="glorot")
        self.att_src = Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = Parameter(torch.empty(1, heads, out_channels))
        if edge_dim is not None:
            self.lin_edge = Linear(edge_dim, heads * out_channels, bias=False, weight_initializer="glorot")
            self.att_edge = Parameter(torch.empty(1, heads, out_channels))
        else:
            self.lin_edge = None
            self.register_parameter("att_edge", None)
        width = out_channels * (heads if concat else 1)
        if residual:
            dst = in_channels if isinstance(in_channels, int) else in_channels[1]
            self.res = Linear(dst, width, bias=False, weight_initializer="glorot")
        else:
            self.register_parameter("res", None)
        if bias:
            self.bias = Parameter(torch.empty(width))
        else:
            self.register_parameter("bias", None)
        self.virtual = virtual_rows(self.pattern, in_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for lin in (self.lin, self.lin_src, self.lin_dst, self.lin_edge, self.res):
            if lin is not None:
                lin.reset_parameters()
        glorot(self.att_src)
        glorot(self.att_dst)
        glorot(self.att_edge)
        zeros(self.bias)

    def forward(self, x: Tensor | tuple[Tensor, Tensor | None], edge_index: Any, edge_attr: Tensor | None = None,
                size: tuple[int, int] | None = None, return_attention_weights: bool | None = None, *,
                batch: Tensor | None = None) -> Any:
        """``(N_dst, H C)``, and the attention weights (after dropout, as PyG returns them) when
        ``return_attention_weights`` is true. ``batch`` lays the ``pattern`` on each graph."""
        heads, channels = self.heads, self.out_channels
        if self.add_self_loops and self.edge_dim is not None and isinstance(edge_index, SparseTensor):
            raise NotImplementedError("edge features and add_self_loops together are not supported for a SparseTensor "
                                      "adjacency (as in PyG); pass an edge_index with edge_attr")
        x, edges, edge_attr, laid = layer_edges(self, x, edge_index, edge_attr, size, batch,
                                                "replace" if self.add_self_loops else "keep", self.fill_value,
                                                self.lin_edge is not None)
        x_src, x_dst = x if isinstance(x, (tuple, list)) else (x, x)
        if not isinstance(x_src, Tensor) or x_src.dim() != 2:
            raise ValueError(f"x must be a [N, F] tensor or a pair (x_src, x_dst), got {_shape(x_src)}")
        res = self.res(x_dst) if self.res is not None and x_dst is not None else None
        if self.lin is not None:
            lin_src = lin_dst = self.lin
        else:  # in_channels was a pair: one projection per side
            assert self.lin_src is not None and self.lin_dst is not None
            lin_src, lin_dst = self.lin_src, self.lin_dst
        h_src = lin_src(x_src).view(-1, heads, channels)  # (N_src, H, C)
        h_dst = None if x_dst is None else h_src if x_dst is x_src and lin_dst is lin_src else \
            lin_dst(x_dst).view(-1, heads, channels)  # (N_dst, H, C)
        a_src = (h_src * self.att_src).sum(dim=-1)  # (N_src, H): the per-node score scalars
        a_dst = None if h_dst is None else (h_dst * self.att_dst).sum(dim=-1)  # (N_dst, H)
        num_dst = edges.num_dst
        if pyg_tools_active(self):
            size = size if laid is None else None
            alpha = self.edge_updater(edges.adj, alpha=(a_src, a_dst), edge_attr=edge_attr, size=size)
            out = self.propagate(edges.adj, x=(h_src, h_dst), alpha=alpha, size=size)
        else:
            a_edge = None if edge_attr is None else self._edge_scalars(edge_attr)  # (E, H)
            keep = dropout_mask(edges, heads, self.dropout, self.training, h_src)
            q = a_src.new_zeros(num_dst, heads) if a_dst is None else a_dst
            out, alpha = attend(q.unsqueeze(-1), a_src.unsqueeze(-1), h_src, edges.graph, num_dst, score="gat",
                                negative_slope=self.negative_slope, edge_k=None if a_edge is None else a_edge[..., None],
                                keep=keep, backend=self.backend, return_weights=bool(return_attention_weights))
            if alpha is not None and keep is not None:
                alpha = alpha * keep  # PyG returns the weights after dropout
        return gat_output(self, out, alpha, res, laid, edges, return_attention_weights)

    def _edge_scalars(self, edge_attr: Tensor) -> Tensor:
        """``a_e . Theta_e e_ij`` of every edge, ``(E, H)``, through one folded ``[H, D]`` matrix."""
        edge_attr = edge_attr.view(-1, 1) if edge_attr.dim() == 1 else edge_attr
        weight = self.lin_edge.weight.view(self.heads, self.out_channels, -1)  # (H, C, D)
        folded = (weight * self.att_edge.view(self.heads, self.out_channels, 1)).sum(dim=1)  # (H, D)
        return edge_attr @ folded.T

    # ------------------------------------------------------------------ the message-passing twin
    def edge_update(self, alpha_j: Tensor, alpha_i: Tensor | None, edge_attr: Tensor | None, index: Tensor,
                    ptr: Tensor | None, dim_size: int | None) -> Tensor:
        """The weights as gather / scatter: what PyG's explainers and hooks see."""
        alpha = alpha_j if alpha_i is None else alpha_j + alpha_i
        if index.numel() == 0:
            return alpha
        if edge_attr is not None and self.lin_edge is not None:
            alpha = alpha + self._edge_scalars(edge_attr)
        alpha = softmax(F.leaky_relu(alpha, self.negative_slope), index, ptr, dim_size)
        return F.dropout(alpha, p=self.dropout, training=self.training)

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * x_j

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads})"


def _shape(x: object) -> str:
    return f"shape {list(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
