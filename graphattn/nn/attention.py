"""SelfAttentionConv: multi-head self-attention as a message-passing layer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear as LazyLinear

from .. import ops
from ..checks import all_finite, check_int, check_probability
from ..debug import debugging
from ..ops import AttentionGraph
from ..ops.kernel import segment_softmax
from ..patterns import Pattern, check_edge_index
from .encodings.base import Prepared, check_encoding, prepare
from .operator import check_operator

__all__ = ["SelfAttentionConv", "PROJECTIONS"]

#: The hook tables of ``MessagePassing``; any hook there routes the layer through ``propagate``.
_HOOKS = ("_propagate_forward_pre_hooks", "_propagate_forward_hooks", "_message_forward_pre_hooks",
          "_message_forward_hooks", "_aggregate_forward_pre_hooks", "_aggregate_forward_hooks",
          "_message_and_aggregate_forward_pre_hooks", "_message_and_aggregate_forward_hooks",
          "_edge_update_forward_pre_hooks", "_edge_update_forward_hooks")

#: What ``projection=`` accepts: three matrices, one shared matrix, or none (the input itself).
PROJECTIONS = ("separate", "shared", "none")


class SelfAttentionConv(MessagePassing):
    r"""Multi-head self-attention over the in-neighbours of each node.

    For each head ``h`` with ``C = out_channels / heads`` channels and in-neighbours
    :math:`\mathcal{N}(i) = \{j : (j, i) \in E\}`:

    .. math::
        q_i = W_q x_i,\quad k_j = W_k x_j,\quad v_j = W_v x_j

        s^h_{ij} = \frac{q^h_i \cdot (k^h_j + e^h_{ij})}{\sqrt{C}} \quad\text{(dot)}
        \qquad\text{or}\qquad
        s^h_{ij} = a_h^\top \tanh(q^h_i + k^h_j + e^h_{ij}) \quad\text{(additive)}

        \alpha^h_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i)}(s^h_{ij} + b^h_{ij}),
        \qquad
        x'_i = W_o \Big[\big\Vert_{h=1}^{H} \sum_{j \in \mathcal{N}(i)}
               \alpha^h_{ij} (v^h_j + e^h_{ij})\Big]

    where ``e_ij = W_e edge_attr_ij`` (only with ``edge_dim``; like PyG's ``TransformerConv``
    the projected edge feature is added to the key and to the value) and ``b_ij`` is a score
    bias from ``position`` (relative / ALiBi / shortest-path encodings). A node with no
    in-neighbours gets zeros before ``W_o``. With ``Full()`` this equals
    ``torch.nn.MultiheadAttention`` (see :meth:`from_torch`). The layer never adds or drops
    edges: self-loops belong to the pattern or ``edge_index``.

    ``projection="shared"`` uses one matrix, ``q = k = v = W x``: the dot-product graph
    attention of SuperGAT (Kim & Oh, 2021) and, for ``q = k``, Reformer's shared-QK attention;
    a third of the parameters, which is what small labelled graphs need (Cora, GAT form: 82.6%
    over 10 seeds, against 76.7% over 3 with three projections and ``W_o``; see
    ``GraphAttentionNetwork``). Shared scores are symmetric, ``s_ij = s_ji``, and favour the
    node itself (``q_i . q_i`` is the largest score whenever all ``|q_j|`` are equal), so such
    a layer smooths over similar neighbours rather than pointing past itself: use
    ``"separate"`` for directional tasks (copy the left token). ``projection="none"`` attends
    with the input itself, ``q = k = v = x`` (the propagation step of AGNN; needs
    ``in_channels == out_channels``), for models that project before the layer.
    ``project_out=False`` drops ``W_o`` and returns the concatenated heads, as ``GATConv`` and
    ``TransformerConv`` do. An ``operator`` (``Linformer``, ``LinearAttention``) computes the
    attention along ``Full()`` in place of the kernels; ``LSH``, ``KMeans``, ``TopK`` are ``edges``.

    A PyG citizen: a bipartite ``x = (x_src, x_dst)`` takes queries from ``x_dst`` and keys and
    values from ``x_src`` along an ``edge_index`` from source to destination nodes (what
    ``to_hetero`` passes); ``in_channels`` may be a tuple ``(F_src, F_dst)`` or ``-1`` (lazy,
    set on the first call). When PyG's explainers or message-passing hooks are active
    (``explain``, ``register_message_forward_hook``, ...), and for bipartite inputs, the layer
    runs through :meth:`propagate`: :meth:`edge_update` forms ``alpha`` (as ``GATConv`` does) and
    :meth:`message` receives it as its ``alpha`` argument, so ``GNNExplainer`` masks real
    messages and ``AttentionExplainer`` collects the layer's own weights. Otherwise the fast
    kernels of ``graphattn.ops`` run; both paths use the same weights and give the same answer.

    Differences from ``TransformerConv``, and why: ``out_channels`` is the total width
    ``H * C``, not the width per head (the model width of a transformer; no ``concat``); an
    output projection ``W_o`` merges the heads (``project_out=False`` for none); there is no
    ``root_weight`` skip or ``beta`` gate, since self-loops belong to the pattern and residuals
    to the block; ``edges`` may also be a pattern or a prepared ``AttentionGraph``; scores may be
    additive and carry positional biases.

    Args:
        in_channels: node feature width ``F``, a tuple ``(F_src, F_dst)`` for bipartite inputs,
            or ``-1`` to infer it on the first call.
        out_channels: model width ``H * C`` (also the output width).
        heads: number of heads ``H`` (must divide ``out_channels``). (default: ``1``)
        score: ``"dot"`` or ``"additive"``. (default: ``"dot"``)
        dropout: dropout on attention weights while training. (default: ``0.0``)
        bias: learn biases in the q, k, v and output projections. (default: ``True``)
        edge_dim: edge feature width, or ``None`` for no edge features. (default: ``None``)
        backend: ``"auto"`` or a kernel in ``graphattn.ops.KERNELS``. (default: ``"auto"``)
        position: optional score-side positional encoding, a
            :class:`~graphattn.nn.encodings.base.ScoreEncoding` (relative bias, ALiBi, rotary,
            shortest path, or their ``Compose``), or any module with ``forward(q, k, pos) ->
            (q, k, bias | None)``. (default: ``None``)
        projection: ``"separate"`` (``W_q``, ``W_k``, ``W_v``), ``"shared"`` (one ``W``) or
            ``"none"`` (the input itself). (default: ``"separate"``)
        project_out: apply the output projection ``W_o``. (default: ``True``)
        operator: an attention operator module (:mod:`graphattn.nn.operator`), or ``None`` for
            the graph kernels. (default: ``None``)

    Shapes:
        - input: ``x`` ``(N, F)`` or bipartite ``((N_src, F_src), (N_dst, F_dst))``; ``edges``
          an ``AttentionGraph``, a pattern, an ``edge_index`` ``(2, E)``, an ``EdgeIndex``, a
          sparse ``adj_t`` ``(N, N)`` or a ``SparseTensor`` (bipartite: an ``edge_index`` or
          ``EdgeIndex``); ``edge_attr`` ``(E, edge_dim)``; ``batch`` ``(N)``; ``pos`` ``(N)`` or
          ``(N, D)``; ``x`` may be a sparse (COO / CSR) matrix, e.g. bag-of-words features,
          unless ``projection="none"``
        - output: ``(N, out_channels)`` (``N_dst`` rows if bipartite); with weights also
          ``((2, E), (E, H))``
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int = 1,
        *,
        score: str = "dot",
        dropout: float = 0.0,
        bias: bool = True,
        edge_dim: int | None = None,
        backend: str = "auto",
        position: nn.Module | None = None,
        projection: str = "separate",
        project_out: bool = True,
        operator: nn.Module | None = None,
    ):
        super().__init__(aggr="add", node_dim=0)
        src_channels, dst_channels = _in_channels(in_channels)
        for name, value in (("out_channels", out_channels), ("heads", heads)):
            check_int(value, name)
        if out_channels % heads:
            raise ValueError(f"heads ({heads}) must divide out_channels ({out_channels})")
        if score not in ops.dispatch.SCORES:
            raise ValueError(f"score must be one of {ops.dispatch.SCORES}, got {score!r}")
        check_probability(dropout, "dropout")  # a str or None named, not a comparison error
        if backend not in ops.BACKENDS:
            raise ValueError(f"backend must be one of {ops.BACKENDS}, got {backend!r}")
        if projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
        if projection == "none" and {src_channels, dst_channels} != {out_channels}:
            raise ValueError(f"projection='none' attends with the input itself, so in_channels ({in_channels}) "
                             f"must equal out_channels ({out_channels})")
        if projection == "shared" and src_channels != dst_channels:
            raise ValueError(f"projection='shared' uses one matrix for queries, keys and values, so in_channels "
                             f"must be one width, got {in_channels}")
        if not isinstance(project_out, bool):
            raise TypeError(f"project_out must be a bool, got {type(project_out).__name__}")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
        if not bias and projection == "none" and not project_out:  # never dropped silently
            raise ValueError("bias=False has no effect: projection='none' and project_out=False leave no projection")
        if edge_dim is not None:
            check_int(edge_dim, "edge_dim")
        check_encoding(position)
        check_operator(operator, score=score, edge_dim=edge_dim, dropout=dropout)
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.score, self.dropout, self.bias, self.edge_dim, self.backend = score, dropout, bias, edge_dim, backend
        self.position, self.projection, self.project_out, self.operator = position, projection, project_out, operator
        separate = projection == "separate"
        # "shared": lin_query is the one W; "none": no projection at all.
        self.lin_query = _linear(dst_channels, out_channels, bias) if projection != "none" else None
        self.lin_key = _linear(src_channels, out_channels, bias) if separate else None
        self.lin_value = _linear(src_channels, out_channels, bias) if separate else None
        self.lin_edge = nn.Linear(edge_dim, out_channels, bias=False) if edge_dim is not None else None
        self.att = nn.Parameter(torch.empty(heads, out_channels // heads)) if score == "additive" else None
        self.lin_out = nn.Linear(out_channels, out_channels, bias=bias) if project_out else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin_query, self.lin_key, self.lin_value, self.lin_edge, self.lin_out):
            if lin is not None:
                lin.reset_parameters()
        if self.att is not None:
            nn.init.uniform_(self.att, -1 / math.sqrt(self.att.size(1)), 1 / math.sqrt(self.att.size(1)))
        for module in (self.position, self.operator):
            if module is not None and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention, *, backend: str = "auto",
                   position: nn.Module | None = None) -> SelfAttentionConv:
        """A layer with the weights of a ``torch.nn.MultiheadAttention`` (copied, not shared).

        With ``Full()`` (or a pattern matching ``attn_mask`` / ``key_padding_mask``) the layer
        then computes what ``mha`` computes for self-attention ``mha(x, x, x)``.
        """
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be a torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha._qkv_same_embed_dim:
            raise ValueError("mha must use the same kdim and vdim as embed_dim (self-attention)")
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("mha with add_bias_kv or add_zero_attn adds keys outside the graph; not supported")
        has_bias = mha.in_proj_bias is not None
        layer = cls(mha.embed_dim, mha.embed_dim, mha.num_heads, dropout=mha.dropout, bias=has_bias,
                    backend=backend, position=position)
        layer = layer.to(device=mha.in_proj_weight.device, dtype=mha.in_proj_weight.dtype)
        with torch.no_grad():
            for lin, w in zip((layer.lin_query, layer.lin_key, layer.lin_value), mha.in_proj_weight.chunk(3)):
                lin.weight.copy_(w)
            layer.lin_out.weight.copy_(mha.out_proj.weight)
            if has_bias:
                for lin, b in zip((layer.lin_query, layer.lin_key, layer.lin_value), mha.in_proj_bias.chunk(3)):
                    lin.bias.copy_(b)
                layer.lin_out.bias.copy_(mha.out_proj.bias)
        return layer

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor],
        edges: AttentionGraph | Pattern | Tensor,
        edge_attr: Tensor | None = None,
        *,
        batch: Tensor | None = None,
        lengths: Tensor | None = None,
        pos: Tensor | None = None,
        return_attention_weights: bool = False,
        encoding: Prepared | None = None,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend along ``edges``: a prepared :class:`~graphattn.AttentionGraph` (which holds
        the batch layout, positions and edge features), or anything ``AttentionGraph.build``
        accepts (a pattern laid on each sequence of ``batch`` / ``lengths``, an ``edge_index``,
        an ``EdgeIndex``, a sparse ``adj_t``), prepared on the fly. Returns ``(N, out_channels)``,
        and ``(edge_index, alpha)`` when ``return_attention_weights``; ``alpha`` ``(E, H)`` is
        before dropout.

        ``x``'s values are checked (finite) when the graph is built here; on a prepared graph
        only its shape and dtype are, unless :func:`graphattn.debug` is on. ``encoding`` is
        ``position.prepare(graph)`` computed once by a model for all its layers (default: here)."""
        bipartite = isinstance(x, tuple)
        x_j, x_i = (x[0], x[1]) if bipartite and len(x) == 2 else (x, x)
        if bipartite and len(x) != 2:
            raise ValueError(f"a bipartite x must be a pair (x_src, x_dst), got {len(x)} tensors")
        # a prepared graph: metadata only; a meta tensor (shape inference) has no values
        values = (debugging() or not isinstance(edges, AttentionGraph)) and not (isinstance(x, Tensor) and x.is_meta)
        self._check_x(x_j, "x_src" if bipartite else "x", values)
        if bipartite:
            self._check_x(x_i, "x_dst", values)
        q, k, v = self._project(x_j, x_i)  # (N_dst, H, C), (N_src, H, C), (N_src, H, C)
        if bipartite:
            if self.position is not None or self.operator is not None or any(a is not None for a in (batch, lengths, pos)):
                raise ValueError("a bipartite x takes no position, operator, batch, lengths or pos: they need one node set")
            edge_index = _bipartite_edges(edges, x_j.size(0), x_i.size(0))
            edge_kv = self._edge_kv(edge_attr, edge_index.size(1))
            out, alpha = self._message_passing(q, k, v, edge_index, edge_kv, None, (x_j.size(0), x_i.size(0)))
            weights = (edge_index, alpha)
        else:
            graph = AttentionGraph.build(edges, x.size(0), batch=batch, lengths=lengths, pos=pos, includes_virtual=True,
                                            edge_attr=edge_attr).to(x.device)  # lengths alone build on the CPU
            bias = None
            if encoding is not None and self.position is None:  # never dropped silently
                raise ValueError("encoding was given but the layer has no position encoding; build it with position=")
            if self.position is not None:
                q, k, bias = (prepare(self.position, graph) if encoding is None else encoding)(q, k)
            edge_kv = self._edge_kv(graph.edge_attr, graph.num_edges if graph.edge_attr is not None else 0)
            if self.operator is not None:
                if bias is not None:
                    raise ValueError(f"operator={type(self.operator).__name__} forms no scores to add a position bias "
                                     f"to; use a feature encoding or RotaryEncoding")
                out, weights = self.operator(q, k, v, graph, dropout=self.dropout if self.training else 0.0,
                                             return_weights=return_attention_weights)
            elif self._pyg_tools_active():
                routed = ops.route(q, k, graph)  # a data-dependent pattern: this forward's edges
                out, alpha = self._message_passing(q, k, v, routed.edge_index, edge_kv, bias, None)
                weights = (routed.edge_index, alpha)
            else:
                res = ops.attention(
                    q, k, v, graph, score=self.score, att=self.att, bias=bias, edge_kv=edge_kv,
                    dropout=self.dropout, training=self.training, backend=self.backend,
                    return_weights=return_attention_weights,
                )
                out, weights = res.out, res.weights
        out = out.reshape(out.size(0), self.out_channels)  # (N, H * C)
        if self.lin_out is not None:
            out = self.lin_out(out)
        return (out, weights) if return_attention_weights else out

    # ------------------------------------------------------------------ the message-passing twin
    def _pyg_tools_active(self) -> bool:
        """Whether PyG's explain mode or any message-passing hook is on: then PyG must see
        :meth:`propagate` and :meth:`message`."""
        return bool(self.explain) or any(getattr(self, name) for name in _HOOKS)

    def _message_passing(self, q: Tensor, k: Tensor, v: Tensor, edge_index: Tensor, edge_kv: Tensor | None,
                         bias: object, size: tuple[int, int] | None) -> tuple[Tensor, Tensor]:
        """``(out [N_dst, H, C], alpha [E, H])`` through ``edge_updater`` and ``propagate``: the
        gather / scatter twin of the kernels (``ops.scatter``), where PyG's tools can see it."""
        alpha = self.edge_updater(edge_index, q=(None, q), k=(k, None), edge_kv=edge_kv, bias=bias, size=size)
        out = self.propagate(edge_index, v=(v, None), alpha=alpha, edge_kv=edge_kv, size=size)
        return out, alpha

    def edge_update(self, q_i: Tensor, k_j: Tensor, edge_kv: Tensor | None, bias: object,
                    edge_index_i: Tensor, edge_index_j: Tensor, ptr: Tensor | None, size_i: int | None) -> Tensor:
        r""":math:`\alpha_{ij} = \operatorname{softmax}_j(s_{ij} + b_{ij})`, ``(E, H)``, before dropout."""
        if edge_kv is not None:
            k_j = k_j + edge_kv
        if self.score == "dot":
            scores = (q_i * k_j).sum(dim=-1) * (q_i.size(-1) ** -0.5)  # (E, H)
        else:
            scores = (torch.tanh(q_i + k_j) * self.att).sum(dim=-1)
        if bias is not None:
            scores = scores + bias(edge_index_i, edge_index_j)
        if size_i is None:  # PyG sets it from the destination rows; a hand-made call may not
            size_i = int(edge_index_i.max()) + 1 if edge_index_i.numel() else 0
        return segment_softmax(scores, edge_index_i, size_i)

    def message(self, v_j: Tensor, alpha: Tensor, edge_kv: Tensor | None) -> Tensor:
        r"""The message :math:`\alpha_{ij} (v_j + e_{ij})`, ``(E, H, C)``, with dropout on ``alpha``."""
        if edge_kv is not None:
            v_j = v_j + edge_kv
        return F.dropout(alpha, self.dropout, self.training).unsqueeze(-1) * v_j

    # ------------------------------------------------------------------ inputs
    def _project(self, x_j: Tensor, x_i: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        heads, channels = self.heads, self.out_channels // self.heads
        if self.projection == "none":
            q, k = x_i.reshape(-1, heads, channels), x_j.reshape(-1, heads, channels)  # (N, H, C)
            return q, k, k
        q = self.lin_query(x_i).view(-1, heads, channels)  # (N_dst, H, C)
        if self.projection == "shared":
            k = q if x_j is x_i else self.lin_query(x_j).view(-1, heads, channels)
            return q, k, k
        return q, self.lin_key(x_j).view(-1, heads, channels), self.lin_value(x_j).view(-1, heads, channels)

    def _check_x(self, x: Tensor, name: str, values: bool) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape [N, F] (or a pair (x_src, x_dst)), "
                            f"got {type(x).__name__}")
        if x.dim() != 2:
            raise ValueError(f"{name} must have shape [N, F], got {list(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
        sparse = x.layout != torch.strided
        if sparse and self.projection == "none":
            raise ValueError(f"a sparse {name} needs a projection; projection='none' attends with x itself")
        expected = _in_channels(self.in_channels)[1 if name == "x_dst" else 0]
        if expected != -1 and x.size(1) != expected:
            raise ValueError(f"{name} must have shape [N, {expected}], got {list(x.shape)}")
        if not values:
            return
        # a sparse matrix's implicit zeros are finite: check the stored values only
        values = x if not sparse else x.coalesce().values() if x.layout == torch.sparse_coo else x.values()
        if not all_finite(values):
            raise ValueError(f"{name} contains NaN or infinite values")

    def _edge_kv(self, edge_attr: Tensor | None, num_edges: int) -> Tensor | None:
        if edge_attr is None:
            if self.lin_edge is not None:
                raise ValueError(f"edge_attr of shape [E, {self.edge_dim}] is required (edge_dim={self.edge_dim})")
            return None
        if self.lin_edge is None:
            raise ValueError("edge_attr was given but the layer has no edge_dim")
        if not isinstance(edge_attr, Tensor) or edge_attr.dim() != 2 or edge_attr.shape != (num_edges, self.edge_dim):
            got = list(edge_attr.shape) if isinstance(edge_attr, Tensor) else type(edge_attr).__name__
            raise ValueError(f"edge_attr must have shape [E, edge_dim] = [{num_edges}, {self.edge_dim}], got {got}")
        return self.lin_edge(edge_attr).view(-1, self.heads, self.out_channels // self.heads)  # (E, H, C)

    def __repr__(self) -> str:
        defaults = {"score": "dot", "dropout": 0.0, "bias": True, "edge_dim": None, "backend": "auto",
                    "position": None, "projection": "separate", "project_out": True, "operator": None}
        settings = "".join(f", {name}={getattr(self, name)!r}" for name, default in defaults.items()
                           if getattr(self, name) != default)
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads}{settings})"


def _in_channels(in_channels: object) -> tuple[int, int]:
    """``(F_src, F_dst)`` from an int, a pair or ``-1`` (lazy)."""
    pair = tuple(in_channels) if isinstance(in_channels, (tuple, list)) else (in_channels, in_channels)
    if len(pair) != 2 or any(isinstance(c, bool) or not isinstance(c, int) or (c < 1 and c != -1) for c in pair):
        raise ValueError(f"in_channels must be a positive int, -1 (lazy) or a pair of them (F_src, F_dst), "
                         f"got {in_channels!r}")
    return pair


def _linear(in_channels: int, out_channels: int, bias: bool) -> nn.Module:
    # PyG's Linear infers in_channels=-1 on the first call (what to_hetero's lazy models need)
    return nn.Linear(in_channels, out_channels, bias=bias) if in_channels > 0 else LazyLinear(-1, out_channels, bias)


def _bipartite_edges(edges: object, num_src: int, num_dst: int) -> Tensor:
    """``edge_index [2, E]`` from source nodes (row 0) to destination nodes (row 1)."""
    if isinstance(edges, (AttentionGraph, Pattern)) or not isinstance(edges, Tensor) or edges.layout != torch.strided:
        raise TypeError(f"a bipartite x needs an edge_index [2, E] (or EdgeIndex) from x_src to x_dst, "
                        f"got {type(edges).__name__}")
    edges = check_edge_index(edges.as_tensor() if hasattr(edges, "as_tensor") else edges, name="edges")
    for row, n, what in ((0, num_src, "sources in x_src"), (1, num_dst, "destinations in x_dst")):
        if edges.size(1) and int(edges[row].max()) >= n:
            raise ValueError(f"edges[{row}] has node id {int(edges[row].max())} but there are {n} {what}")
    return edges
