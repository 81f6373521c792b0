"""TransformerConv: PyG's graph transformer layer, computed on graphattn's kernels."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.utils import softmax

from ...checks import check_float, check_int
from ...patterns import Pattern
from ..edges import pyg_tools_active
from .common import attend, check_backend, dropout_mask, pyg_weights
from .extras import check_pattern, layer_edges, virtual_rows
from .script import ScriptedLayer

__all__ = ["TransformerConv"]


class TransformerConv(MessagePassing):
    r"""The graph transformer layer of Shi et al. (2021, UniMP), as ``torch_geometric.nn.TransformerConv``.

    .. math::
        \alpha^h_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i)}\Big(
            \frac{(W^h_q \mathbf{x}_i)^\top (W^h_k \mathbf{x}_j + W^h_e \mathbf{e}_{ij})}{\sqrt{C}}\Big),
        \qquad
        \mathbf{m}_i = \big\Vert_h \sum_{j} \alpha^h_{ij} (W^h_v \mathbf{x}_j + W^h_e \mathbf{e}_{ij})
        \;(\text{or the mean over heads})

        \mathbf{x}'_i = \mathbf{m}_i + W_r \mathbf{x}_i \quad\text{or, with } \beta:\quad
        \mathbf{x}'_i = \beta_i W_r \mathbf{x}_i + (1 - \beta_i) \mathbf{m}_i, \;
        \beta_i = \sigma(\mathbf{w}^\top [\mathbf{m}_i, W_r \mathbf{x}_i, \mathbf{m}_i - W_r \mathbf{x}_i])

    Same constructor, forward, parameter names, ``repr``, defaults and return formats as PyG's
    layer (attention weights before dropout; ``_alpha`` is ``None`` after a call, as in PyG); with
    the same weights it gives PyG's outputs, attention weights and gradients, and with the same seed
    the same initial weights and attention dropout. Without edge features it runs on graphattn's
    sparse kernel (SDDMM, softmax, SpMM: O(E H) memory where PyG's gathers keep O(E H C)); with
    them on the scatter kernel. ``torch.jit.script`` compiles PyG's overloaded signatures around
    the layer's own forward, which stays Python (:mod:`graphattn.nn.pyg.script`: it runs in scripted
    models, it cannot be saved; TorchScript is deprecated in torch 2.13, use ``torch.compile``).
    Under PyG's explainers or message hooks the layer runs through ``propagate`` with the same
    weights.

    Args:
        in_channels: input width, ``-1`` (lazy) or a pair ``(F_src, F_dst)``.
        out_channels: width per head ``C``.
        heads: heads ``H``. (default: ``1``)
        concat: concatenate the heads, else average them. (default: ``True``)
        beta: gate the skip connection by a learned ``beta_i`` (needs ``root_weight``).
            (default: ``False``)
        dropout: dropout on the attention weights while training. (default: ``0.0``)
        edge_dim: edge feature width, or ``None``. (default: ``None``)
        bias: learn biases in the projections. (default: ``True``)
        root_weight: add the skip ``W_r x_i``. (default: ``True``)
        backend: graphattn's kernel (keyword only, beyond PyG). (default: ``"auto"``)
        pattern: extra attention edges laid on each graph of the forward's ``batch`` (keyword
            only, beyond PyG; see :class:`~graphattn.nn.GATConv`). (default: ``None``)
        **kwargs: ``MessagePassing``'s arguments.

    Shapes:
        - input: ``x`` ``(N, F)`` or ``((N_src, F_src), (N_dst, F_dst))``; ``edge_index`` in any
          form PyG accepts; ``edge_attr`` ``(E, D)`` (a ``SparseTensor``'s values are used when
          not given)
        - output: ``(N_dst, H C)`` (``(N_dst, C)`` without ``concat``), and ``(edge_index, alpha)``
          (a ``SparseTensor``: one carrying ``alpha``) when ``return_attention_weights`` is a bool
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        beta: bool = False,
        dropout: float = 0.0,
        edge_dim: int | None = None,
        bias: bool = True,
        root_weight: bool = True,
        *,
        backend: str = "auto",
        pattern: Pattern | str | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)
        check_int(out_channels, "out_channels")
        check_int(heads, "heads")
        check_float(dropout, "dropout", minimum=0.0, below=1.0)
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.beta, self.root_weight, self.concat = beta and root_weight, root_weight, concat
        self.dropout, self.edge_dim, self._alpha = dropout, edge_dim, None
        self.backend, self.pattern = check_backend(backend), check_pattern(pattern)
        src, dst = (in_channels, in_channels) if isinstance(in_channels, int) else in_channels
        self.lin_key = Linear(src, heads * out_channels, bias=bias)
        self.lin_query = Linear(dst, heads * out_channels, bias=bias)
        self.lin_value = Linear(src, heads * out_channels, bias=bias)
        if edge_dim is not None:
            self.lin_edge = Linear(edge_dim, heads * out_channels, bias=False)
        else:
            self.register_parameter("lin_edge", None)
        width = heads * out_channels if concat else out_channels
        self.lin_skip = Linear(dst, width, bias=bias)
        if self.beta:
            self.lin_beta = Linear(3 * width, 1, bias=False)
        else:
            self.register_parameter("lin_beta", None)
        self.virtual = virtual_rows(self.pattern, in_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin_key.reset_parameters()
        self.lin_query.reset_parameters()
        self.lin_value.reset_parameters()
        if self.edge_dim:
            self.lin_edge.reset_parameters()
        self.lin_skip.reset_parameters()
        if self.beta:
            self.lin_beta.reset_parameters()

    def forward(self, x: Tensor | tuple[Tensor, Tensor], edge_index: Any, edge_attr: Tensor | None = None,
                return_attention_weights: bool | None = None, *, batch: Tensor | None = None) -> Any:
        """``(N_dst, H C)``, and the attention weights (before dropout) when
        ``return_attention_weights`` is a bool (``True`` or ``False``, as in PyG). ``batch`` lays
        the ``pattern`` on each graph."""
        heads, channels = self.heads, self.out_channels
        x, edges, edge_attr, laid = layer_edges(self, x, edge_index, edge_attr, None, batch, "keep", None,
                                                self.lin_edge is not None)
        x_src, x_dst = x if isinstance(x, (tuple, list)) else (x, x)
        if not isinstance(x_src, Tensor) or x_src.dim() != 2 or not isinstance(x_dst, Tensor):
            raise ValueError("x must be a [N, F] tensor or a pair of them (x_src, x_dst)")
        q = self.lin_query(x_dst).view(-1, heads, channels)  # (N_dst, H, C)
        k = self.lin_key(x_src).view(-1, heads, channels)  # (N_src, H, C)
        v = self.lin_value(x_src).view(-1, heads, channels)
        if self.lin_edge is not None and edge_attr is None:
            raise ValueError(f"edge_attr of shape [E, {self.edge_dim}] is required (edge_dim={self.edge_dim})")
        want = isinstance(return_attention_weights, bool)
        if pyg_tools_active(self):
            out = self.propagate(edges.adj, query=q, key=k, value=v, edge_attr=edge_attr)
            alpha, self._alpha = self._alpha, None
        else:
            e = None if edge_attr is None else self._edge_vectors(edge_attr)  # (E, H, C)
            keep = dropout_mask(edges, heads, self.dropout, self.training, q)
            out, alpha = attend(q, k, v, edges.graph, edges.num_dst, scale=1 / math.sqrt(channels), edge_kv=e, keep=keep,
                                backend=self.backend, return_weights=want)
        out = out.reshape(-1, heads * channels) if self.concat else out.mean(dim=1)
        if self.root_weight:
            skip = self.lin_skip(x_dst)
            if self.lin_beta is not None:
                beta = self.lin_beta(torch.cat([out, skip, out - skip], dim=-1)).sigmoid()
                out = beta * skip + (1 - beta) * out
            else:
                out = out + skip
        if laid is not None:
            out = laid.real(out)  # the virtual rows' outputs are dropped
        if want:
            assert alpha is not None  # attend returns the weights asked for
            return out, pyg_weights(edges, alpha, sparse_values=False)
        return out

    def _edge_vectors(self, edge_attr: Tensor) -> Tensor:
        edge_attr = edge_attr.view(-1, 1) if edge_attr.dim() == 1 else edge_attr
        return self.lin_edge(edge_attr).view(-1, self.heads, self.out_channels)

    # ------------------------------------------------------------------ the message-passing twin
    def message(self, query_i: Tensor, key_j: Tensor, value_j: Tensor, edge_attr: Tensor | None, index: Tensor,
                ptr: Tensor | None, size_i: int | None) -> Tensor:
        """The messages as gather / scatter (what PyG's explainers and hooks see); the weights
        before dropout are left on ``_alpha`` for the forward (and PyG's ``AttentionExplainer``)."""
        if edge_attr is not None and self.lin_edge is not None:
            edge_attr = self._edge_vectors(edge_attr)
            key_j, value_j = key_j + edge_attr, value_j + edge_attr
        alpha = softmax((query_i * key_j).sum(dim=-1) / math.sqrt(self.out_channels), index, ptr, size_i)
        self._alpha = alpha
        return value_j * F.dropout(alpha, p=self.dropout, training=self.training).unsqueeze(-1)

    def __prepare_scriptable__(self) -> torch.nn.Module:
        """What ``torch.jit.script`` compiles: PyG's overloaded signatures around this layer's own
        forward (see :mod:`graphattn.nn.pyg.script`)."""
        return ScriptedLayer(self)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads})"
