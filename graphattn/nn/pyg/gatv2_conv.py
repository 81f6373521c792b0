"""GATv2Conv: PyG's dynamic graph attention layer, computed on graphattn's sparse kernel."""

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

__all__ = ["GATv2Conv"]


class GATv2Conv(MessagePassing):
    r"""The dynamic graph attention layer of Brody et al. (2022), as ``torch_geometric.nn.GATv2Conv``.

    .. math::
        \alpha^h_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}\Big(
            \mathbf{a}^{h\top} \operatorname{LeakyReLU}\big(\Theta^h_s \mathbf{x}_j
            + \Theta^h_t \mathbf{x}_i + \Theta^h_e \mathbf{e}_{ij}\big)\Big),
        \qquad
        \mathbf{x}'_i = \big\Vert_{h} \sum_{j} \alpha^h_{ij} \Theta^h_s \mathbf{x}_j
        \;(\text{or the mean over heads}) + \Theta_r \mathbf{x}_i + \mathbf{b}

    Same constructor, forward, parameter names (``lin_l``, ``lin_r``, ``att``, ...), ``repr``,
    defaults and return formats as PyG's layer; with the same weights it gives PyG's outputs,
    attention weights and gradients, and with the same seed the same initial weights and dropout.
    The score needs the vector ``Theta_s x_j + Theta_t x_i + Theta_e e_ij`` of every edge: the
    sparse kernel (``score="gatv2"``) forms it chunk by chunk and keeps none of it for the
    backward (which forms it again), so the layer holds O(E H) numbers where PyG holds several
    O(E H C) tensors. Under PyG's explainers or message hooks it runs through ``propagate``.

    Args:
        in_channels: input width, ``-1`` (lazy) or a pair ``(F_src, F_dst)``.
        out_channels: width per head ``C``.
        heads: heads ``H``. (default: ``1``)
        concat: concatenate the heads, else average them. (default: ``True``)
        negative_slope: LeakyReLU's slope. (default: ``0.2``)
        dropout: dropout on the normalised attention weights while training. (default: ``0.0``)
        add_self_loops: replace self-loops by one per node. (default: ``True``)
        edge_dim: edge feature width, or ``None``. (default: ``None``)
        fill_value: edge features of the added self-loops (a number, a tensor or a reduction
            name, as in :class:`~graphattn.nn.GATConv`). (default: ``"mean"``)
        bias: learn biases in the projections and the output. (default: ``True``)
        share_weights: one matrix for sources and destinations (``lin_r`` is ``lin_l``).
            (default: ``False``)
        residual: add a learned skip ``Theta_r x_i``. (default: ``False``)
        backend: graphattn's kernel (keyword only, beyond PyG). (default: ``"auto"``)
        pattern: extra attention edges laid on each graph of the forward's ``batch`` (keyword
            only, beyond PyG; see :class:`~graphattn.nn.GATConv`). (default: ``None``)
        **kwargs: ``MessagePassing``'s arguments.

    Shapes:
        - input: ``x`` ``(N, F)`` or ``((N_src, F_src), (N_dst, F_dst))``; ``edge_index`` in any
          form PyG accepts; ``edge_attr`` ``(E, D)`` or ``(E,)``
        - output: ``(N_dst, H C)`` (``(N_dst, C)`` without ``concat``), and the attention weights
          in PyG's format with ``return_attention_weights=True``
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
        share_weights: bool = False,
        residual: bool = False,
        *,
        backend: str = "auto",
        pattern: Pattern | str | None = None,
        **kwargs: Any,
    ):
        super().__init__(node_dim=0, **kwargs)
        check_int(out_channels, "out_channels")
        check_int(heads, "heads")
        check_float(negative_slope, "negative_slope")
        check_float(dropout, "dropout", minimum=0.0, below=1.0)
        self.in_channels, self.out_channels, self.heads, self.concat = in_channels, out_channels, heads, concat
        self.negative_slope, self.dropout, self.add_self_loops = negative_slope, dropout, add_self_loops
        self.edge_dim, self.fill_value, self.residual = edge_dim, fill_value, residual
        self.share_weights = share_weights
        self.backend, self.pattern = check_backend(backend), check_pattern(pattern)
        src, dst = (in_channels, in_channels) if isinstance(in_channels, int) else in_channels
        self.lin_l = Linear(src, heads * out_channels, bias=bias, weight_initializer="glorot")
        self.lin_r = self.lin_l if share_weights else Linear(dst, heads * out_channels, bias=bias,
                                                            weight_initializer="glorot")
        self.att = Parameter(torch.empty(1, heads, out_channels))
        if edge_dim is not None:
            self.lin_edge = Linear(edge_dim, heads * out_channels, bias=False, weight_initializer="glorot")
        else:
            self.lin_edge = None
        width = out_channels * (heads if concat else 1)
        if residual:
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
        self.lin_l.reset_parameters()
        self.lin_r.reset_parameters()
        for lin in (self.lin_edge, self.res):
            if lin is not None:
                lin.reset_parameters()
        glorot(self.att)
        zeros(self.bias)

    def forward(self, x: Tensor | tuple[Tensor, Tensor], edge_index: Any, edge_attr: Tensor | None = None,
                return_attention_weights: bool | None = None, *, batch: Tensor | None = None) -> Any:
        """``(N_dst, H C)``, and the attention weights (after dropout, as PyG returns them) when
        ``return_attention_weights`` is true. ``batch`` lays the ``pattern`` on each graph."""
        heads, channels = self.heads, self.out_channels
        if self.add_self_loops and self.edge_dim is not None and isinstance(edge_index, SparseTensor):
            raise NotImplementedError("edge features and add_self_loops together are not supported for a SparseTensor "
                                      "adjacency (as in PyG); pass an edge_index with edge_attr")
        if isinstance(x, tuple) and x[1] is None:
            raise ValueError("GATv2Conv needs x_dst (its queries are Theta_t x_i); got (x_src, None)")
        x, edges, edge_attr, laid = layer_edges(self, x, edge_index, edge_attr, None, batch,
                                                "replace" if self.add_self_loops else "keep", self.fill_value, True)
        if isinstance(x, (tuple, list)):
            x_src, x_dst = x
        else:
            x_src = x_dst = x
        if not isinstance(x_src, Tensor) or x_src.dim() != 2:
            raise ValueError(f"x must be a [N, F] tensor or a pair (x_src, x_dst), got {type(x_src).__name__}")
        res = self.res(x_dst) if self.res is not None else None
        h_src = self.lin_l(x_src).view(-1, heads, channels)  # (N_src, H, C): keys and values
        h_dst = h_src if self.share_weights and x_dst is x_src else self.lin_r(x_dst).view(-1, heads, channels)
        num_dst = edges.num_dst
        if edge_attr is not None and self.lin_edge is None:
            raise ValueError("edge_attr was given but the layer has no edge_dim")
        if pyg_tools_active(self):
            alpha = self.edge_updater(edges.adj, x=(h_src, h_dst), edge_attr=edge_attr)
            out = self.propagate(edges.adj, x=(h_src, h_dst), alpha=alpha)
        else:
            e = None if edge_attr is None else self._edge_vectors(edge_attr)
            keep = dropout_mask(edges, heads, self.dropout, self.training, h_src)
            out, alpha = attend(h_dst, h_src, h_src, edges.graph, num_dst, score="gatv2", att=self.att.view(heads, channels),
                                negative_slope=self.negative_slope, edge_k=e, keep=keep, backend=self.backend,
                                return_weights=bool(return_attention_weights))
            if alpha is not None and keep is not None:
                alpha = alpha * keep  # PyG returns the weights after dropout
        return gat_output(self, out, alpha, res, laid, edges, return_attention_weights)

    def _edge_vectors(self, edge_attr: Tensor) -> Tensor:
        edge_attr = edge_attr.view(-1, 1) if edge_attr.dim() == 1 else edge_attr
        return self.lin_edge(edge_attr).view(-1, self.heads, self.out_channels)  # (E, H, C)

    # ------------------------------------------------------------------ the message-passing twin
    def edge_update(self, x_j: Tensor, x_i: Tensor, edge_attr: Tensor | None, index: Tensor, ptr: Tensor | None,
                    dim_size: int | None) -> Tensor:
        """The weights as gather / scatter: what PyG's explainers and hooks see."""
        pre = x_i + x_j
        if edge_attr is not None:
            pre = pre + self._edge_vectors(edge_attr)
        alpha = (F.leaky_relu(pre, self.negative_slope) * self.att).sum(dim=-1)
        alpha = softmax(alpha, index, ptr, dim_size)
        return F.dropout(alpha, p=self.dropout, training=self.training)

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return x_j * alpha.unsqueeze(-1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads})"
