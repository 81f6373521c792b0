"""SelfAttentionConv: multi-head self-attention as a message-passing layer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric import EdgeIndex
from torch_geometric.nn import MessagePassing

from ..debug import debugging
from ..ops import AttentionGraph, route
from ..ops.kernel import segment_softmax
from ..patterns import Pattern, SelfLoops
from .edges import edge_features, is_sparse, node_counts, prepare, pyg_tools_active
from .encodings.base import Prepared
from .encodings.base import prepare as prepare_encoding
from .inputs import PROJECTIONS, check_edge_attr, check_options, check_x, in_channels_pair, linear
from .operator import check_operator
from .pyg.common import attend
from .reset import Resettable, reset_parameters

__all__ = ["SelfAttentionConv", "PROJECTIONS"]


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
    ``torch.nn.MultiheadAttention`` (see :meth:`from_torch`). The layer adds or drops no edge
    unless asked: self-loops belong to the pattern or ``edge_index``, or to two options, a node's
    own path: ``add_self_loops`` (every node attends to itself exactly once: existing self-loops
    are replaced, as ``GATConv`` does, with zero edge features) and ``root_weight`` (a skip
    ``x'_i += W_r x_i``, as ``TransformerConv`` and ``SAGEConv`` have). Without either, a
    bipartite layer (``to_hetero``) loses every node's own features.

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
    values from ``x_src`` along an adjacency from source to destination nodes (an ``edge_index``,
    ``EdgeIndex``, torch sparse or ``SparseTensor`` ``adj_t``: what ``to_hetero`` and PyG's
    loaders pass); ``(x_src, None)`` takes the destinations as the first ``N_dst`` sources (the
    layout of PyG's samplers; ``N_dst`` from ``size``, a sparse ``adj_t``'s shape, or all);
    ``in_channels`` may be a tuple ``(F_src, F_dst)`` or ``-1`` (lazy, set on the first call). An
    adjacency is prepared once (:mod:`graphattn.nn.edges`) and found again on later calls with the
    same tensor, so a raw ``edge_index`` every step costs what a prepared graph costs. When PyG's
    explainers or message-passing hooks are active (``explain``, ``register_message_forward_hook``,
    ...), the layer runs through :meth:`propagate`: :meth:`edge_update` forms ``alpha`` (as
    ``GATConv`` does) and :meth:`message` receives it as its ``alpha`` argument, so
    ``GNNExplainer`` masks real messages and ``AttentionExplainer`` collects the layer's own
    weights. Otherwise the fast kernels of ``graphattn.ops`` run; both paths use the same weights
    and give the same answer. For PyG's own layers on these kernels, see ``graphattn.nn.GATConv``,
    ``TransformerConv``, ``GATv2Conv`` and ``GPSConv``.

    Differences from ``TransformerConv``, and why: ``out_channels`` is the total width
    ``H * C``, not the width per head (the model width of a transformer; no ``concat``); an
    output projection ``W_o`` merges the heads (``project_out=False`` for none); the self path is
    off by default (self-loops belong to the pattern, residuals to the block) and has no ``beta``
    gate; ``edges`` may also be a pattern or a prepared ``AttentionGraph``; scores may be additive
    and carry positional biases.

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
        root_weight: add the skip ``W_r x_i`` (``lin_skip``) to the output. (default: ``False``)
        add_self_loops: let every node attend to itself exactly once (a pattern gets
            ``| SelfLoops()``; a prepared ``AttentionGraph`` is used as built). (default: ``False``)
        operator: an attention operator module (:mod:`graphattn.nn.operator`), or ``None`` for
            the graph kernels. (default: ``None``)

    Shapes:
        - input: ``x`` ``(N, F)`` or bipartite ``((N_src, F_src), (N_dst, F_dst))`` (``x_dst``
          may be ``None``); ``edges`` an ``AttentionGraph``, a pattern, an ``edge_index``
          ``(2, E)``, an ``EdgeIndex``, a sparse ``adj_t`` ``(N_dst, N_src)`` or a ``SparseTensor``
          (bipartite: an adjacency); ``edge_attr`` ``(E, edge_dim)`` (or ``(E,)`` with
          ``edge_dim=1``; a ``SparseTensor``'s values when not given); ``size`` ``(N_src, N_dst)``;
          ``batch`` ``(N)``; ``pos`` ``(N)`` or ``(N, D)``; ``x`` may be a sparse (COO / CSR)
          matrix, e.g. bag-of-words features, unless ``projection="none"``
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
        root_weight: bool = False,
        add_self_loops: bool = False,
        operator: nn.Module | None = None,
    ):
        super().__init__(aggr="add", node_dim=0)
        src_channels, dst_channels = check_options(
            in_channels, out_channels, heads, score=score, dropout=dropout, bias=bias, edge_dim=edge_dim,
            backend=backend, position=position, projection=projection,
            flags={"project_out": project_out, "root_weight": root_weight, "add_self_loops": add_self_loops})
        if not bias and projection == "none" and not project_out and not root_weight:  # never dropped silently
            raise ValueError("bias=False has no effect: projection='none', project_out=False and root_weight=False "
                             "leave no projection")
        check_operator(operator, score=score, edge_dim=edge_dim, dropout=dropout)
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.score, self.dropout, self.bias, self.edge_dim, self.backend = score, dropout, bias, edge_dim, backend
        self.position, self.projection, self.project_out, self.operator = position, projection, project_out, operator
        self.root_weight, self.add_self_loops = root_weight, add_self_loops
        separate = projection == "separate"
        # "shared": lin_query is the one W; "none": no projection at all.
        self.lin_query = linear(dst_channels, out_channels, bias) if projection != "none" else None
        self.lin_key = linear(src_channels, out_channels, bias) if separate else None
        self.lin_value = linear(src_channels, out_channels, bias) if separate else None
        self.lin_edge = nn.Linear(edge_dim, out_channels, bias=False) if edge_dim is not None else None
        self.att = nn.Parameter(torch.empty(heads, out_channels // heads)) if score == "additive" else None
        self.lin_out = nn.Linear(out_channels, out_channels, bias=bias) if project_out else None
        self.lin_skip = linear(dst_channels, out_channels, bias) if root_weight else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin_query, self.lin_key, self.lin_value, self.lin_edge, self.lin_out, self.lin_skip):
            if lin is not None:
                reset_parameters(lin, "a projection")
        if self.att is not None:
            nn.init.uniform_(self.att, -1 / math.sqrt(self.att.size(1)), 1 / math.sqrt(self.att.size(1)))
        for module in (self.position, self.operator):
            if isinstance(module, Resettable):  # None, or a module without parameters, has none
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
        x: Tensor | tuple[Tensor, Tensor | None],
        edges: AttentionGraph | Pattern | Tensor,
        edge_attr: Tensor | None = None,
        *,
        size: tuple[int, int] | None = None,
        batch: Tensor | None = None,
        lengths: Tensor | None = None,
        pos: Tensor | None = None,
        return_attention_weights: bool = False,
        encoding: Prepared | None = None,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend along ``edges``: a prepared :class:`~graphattn.AttentionGraph` (which holds
        the batch layout, positions and edge features; used as built), a pattern laid on each
        sequence of ``batch`` / ``lengths``, or an adjacency (``edge_index``, ``EdgeIndex``, torch
        sparse or ``SparseTensor`` ``adj_t``), prepared once per adjacency. Returns
        ``(N_dst, out_channels)``, and ``(edge_index, alpha)`` when ``return_attention_weights``;
        ``alpha`` ``(E, H)`` is before dropout, ``edge_index`` the edges attended (with the added
        self-loops).

        Values (finite ``x``, ids in range) are checked unless ``edges`` is a prepared graph or an
        ``EdgeIndex`` (then only shapes and dtypes are: no host round trip, so
        ``torch.compile(fullgraph=True)`` has no graph break), or always under
        :func:`graphattn.debug`. ``encoding`` is ``position.prepare(graph)`` computed once by a
        model for all its layers (default: here)."""
        bipartite = isinstance(x, tuple)
        if bipartite and len(x) != 2:
            raise ValueError(f"a bipartite x must be a pair (x_src, x_dst), got {len(x)} tensors")
        x_j, x_i = (x[0], x[1]) if isinstance(x, tuple) else (x, x)
        # trusted edges: metadata only; a meta tensor (shape inference) has no values
        values = (debugging() or not isinstance(edges, (AttentionGraph, EdgeIndex))) and not (
            isinstance(x_j, Tensor) and x_j.is_meta)
        src_width, dst_width = in_channels_pair(self.in_channels)
        projected = self.projection != "none"
        check_x(x_j, "x_src" if bipartite else "x", src_width, values=values, projected=projected)
        if bipartite and x_i is not None:
            check_x(x_i, "x_dst", dst_width, values=values, projected=projected)
        adjacency = not isinstance(edges, (AttentionGraph, Pattern))
        if bipartite:
            if not adjacency or not (isinstance(edges, Tensor) or is_sparse(edges)):
                raise TypeError(f"a bipartite x needs an edge_index [2, E] from x_src to x_dst (or an EdgeIndex or a "
                                f"sparse adj_t [N_dst, N_src]), got {type(edges).__name__}")
            if self.position is not None or self.operator is not None or any(a is not None for a in (batch, lengths, pos)):
                raise ValueError("a bipartite x takes no position, operator, batch, lengths or pos: they need one node set")
        if encoding is not None and self.position is None:  # never dropped silently
            raise ValueError("encoding was given but the layer has no position encoding; build it with position=")
        num_src, num_dst = node_counts(x_j, x_i, edges if adjacency else None, size)
        if x_i is None:  # PyG's samplers put the destinations first
            x_i = x_j[:num_dst]
        q, k, v = self._project(x_j, x_i)  # (N_dst, H, C), (N_src, H, C), (N_src, H, C)
        graph, edge_attr = self._graph(edges, adjacency, num_src, num_dst, edge_attr, batch, lengths, pos, x_j.device)
        edge_kv = None
        if edge_attr is not None or self.lin_edge is not None:
            edge_attr = check_edge_attr(edge_attr, self.edge_dim, graph.num_edges, values=values)
            assert edge_attr is not None and self.lin_edge is not None  # check_edge_attr: both or neither
            edge_kv = self.lin_edge(edge_attr).view(-1, self.heads, self.out_channels // self.heads)  # (E, H, C)
        bias = None
        if self.position is not None:
            q, k, bias = (prepare_encoding(self.position, graph) if encoding is None else encoding)(q, k)
        if self.operator is not None:
            if bias is not None:
                raise ValueError(f"operator={type(self.operator).__name__} forms no scores to add a position bias "
                                 f"to; use a feature encoding or RotaryEncoding")
            out, weights = self.operator(q, k, v, graph, dropout=self.dropout if self.training else 0.0,
                                         return_weights=return_attention_weights)
        else:
            alpha: Tensor | None
            graph = route(q, k, graph)  # a data-dependent pattern: the edges this forward's q and k choose
            if pyg_tools_active(self):
                out, alpha = self._message_passing(q, k, v, graph.edge_index, edge_kv, bias, (num_src, num_dst))
            else:
                out, alpha = attend(q, k, v, graph, num_dst, score=self.score, att=self.att, bias=bias,
                                    edge_kv=edge_kv, dropout=self.dropout, training=self.training,
                                    backend=self.backend, return_weights=return_attention_weights)
            # a pattern's edge_index is built only when its weights are asked for
            weights = (graph.edge_index, alpha) if return_attention_weights else None
        out = out.reshape(num_dst, self.out_channels)  # (N_dst, H * C)
        if self.lin_out is not None:
            out = self.lin_out(out)
        if self.lin_skip is not None:
            out = out + self.lin_skip(x_i)
        return (out, weights) if return_attention_weights else out

    def _graph(self, edges: object, adjacency: bool, num_src: int, num_dst: int, edge_attr: Tensor | None,
               batch: Tensor | None, lengths: Tensor | None, pos: Tensor | None,
               device: torch.device) -> tuple[AttentionGraph, Tensor | None]:
        """The graph to attend along and its edge features: a prepared one as given, a pattern laid
        on the batch, an adjacency prepared once (:func:`graphattn.nn.edges.prepare`)."""
        if not adjacency:
            if isinstance(edges, Pattern) and self.add_self_loops:
                edges = edges | SelfLoops()
            graph = AttentionGraph.build(edges, num_src, batch=batch, lengths=lengths, pos=pos, includes_virtual=True,
                                         edge_attr=edge_attr).to(device)  # lengths alone build on the CPU
            return graph, graph.edge_attr
        prepared = prepare(edges, num_src, num_dst, "replace" if self.add_self_loops else "keep", name="edges")
        if edge_attr is not None or self.lin_edge is not None:
            edge_attr = edge_features(prepared, edge_attr, 0.0)
        if batch is None and lengths is None and pos is None and self.position is None:
            return prepared.graph, edge_attr
        # positions need the batch layout: a graph of this call, on the prepared edges
        graph = AttentionGraph.build(prepared.edge_index, num_src, batch=batch, lengths=lengths, pos=pos, trusted=True)
        return graph.to(device), edge_attr

    def __prepare_scriptable__(self) -> nn.Module:
        """What ``torch.jit.script`` compiles: PyG's overloaded signatures around this layer's own
        forward, which stays Python (see :mod:`graphattn.nn.pyg.script`)."""
        from .pyg.script import ScriptedLayer

        return ScriptedLayer(self)

    # ------------------------------------------------------------------ the message-passing twin
    def _message_passing(self, q: Tensor, k: Tensor, v: Tensor, edge_index: Tensor, edge_kv: Tensor | None,
                         bias: object, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
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
            assert self.att is not None  # score="additive" learns att
            scores = (torch.tanh(q_i + k_j) * self.att).sum(dim=-1)
        if bias is not None:
            assert callable(bias)  # a BiasFn (object here for PyG's inspector)
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
        assert self.lin_query is not None  # every projection but "none" has it
        q = self.lin_query(x_i).view(-1, heads, channels)  # (N_dst, H, C)
        if self.projection == "shared":
            k = q if x_j is x_i else self.lin_query(x_j).view(-1, heads, channels)
            return q, k, k
        assert self.lin_key is not None and self.lin_value is not None  # "separate"
        return q, self.lin_key(x_j).view(-1, heads, channels), self.lin_value(x_j).view(-1, heads, channels)

    def __repr__(self) -> str:
        defaults = {"score": "dot", "dropout": 0.0, "bias": True, "edge_dim": None, "backend": "auto",
                    "position": None, "projection": "separate", "project_out": True, "root_weight": False,
                    "add_self_loops": False, "operator": None}
        settings = "".join(f", {name}={getattr(self, name)!r}" for name, default in defaults.items()
                           if getattr(self, name) != default)
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, heads={self.heads}{settings})"

