"""One entry point for every attention kernel, and the rule that picks one.

All kernels share one signature ``kernel(q, k, v, graph, spec, *, return_weights)`` and
return ``(out [N, H, C], alpha [E, H] | None)`` with ``alpha`` aligned with
``graph.edge_index``. They must agree with ``reference`` to float tolerance (the contract
"same weights, same answer" of ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

import torch
from torch import Tensor

from ..checks import all_finite, check_choice, check_probability
from ..patterns import Pattern
from .blocked import BLOCK, blocked_attention, blocked_unsupported
from .dense import dense_attention, dense_unsupported
from .flex import flex_attention_kernel, flex_unsupported
from .graph import AttentionGraph
from .reference import reference_attention
from .scatter import scatter_attention
from .scores import BiasFn, OffsetBias, ScoreSpec
from .sparse import sparse_attention, sparse_unsupported
from .tiles import plan_tiles

logger = logging.getLogger(__name__)

__all__ = ["attention", "choose_backend", "KERNELS", "BACKENDS", "AttentionOutput"]

Kernel = Callable[..., tuple[Tensor, "Tensor | None"]]

#: name -> kernel. ``reference`` is the dense oracle; faster kernels register here.
KERNELS: dict[str, Kernel] = {
    "reference": reference_attention,
    "scatter": scatter_attention,
    "dense": dense_attention,
    "blocked": blocked_attention,
    "flex": flex_attention_kernel,
    "sparse": sparse_attention,
}
#: name -> ``unsupported(graph, spec) -> reason | None`` for kernels that cannot run everything.
UNSUPPORTED = {"dense": dense_unsupported, "blocked": blocked_unsupported, "flex": flex_unsupported, "sparse": sparse_unsupported}
#: The dense kernel's mask is ``B L^2`` booleans; above this many it is not picked.
DENSE_MAX_MASK = 1 << 28
#: Blocked over dense when it computes at most this fraction of dense's key columns.
BLOCKED_WORK_RATIO = 0.5
#: Dense over sparse for graphs at least this dense (edges / (B L^2)).
DENSE_MIN_DENSITY = 0.05
#: Kernels whose dense products touch keys a query does not attend to (0 * NaN = NaN): with a
#: non-finite key or value they hand over to an edge-wise kernel, so containment is the same
#: everywhere (contract "bad input" of ``docs/architecture.md``).
MIXING = frozenset({"dense", "blocked", "flex"})
#: What ``backend=`` accepts.
BACKENDS = ("auto", *KERNELS)
SCORES = ("dot", "additive")


class AttentionOutput(NamedTuple):
    """``out``: ``[N, H, C]``; ``weights``: ``(edge_index [2, E], alpha [E, H])`` or None;
    ``backend``: the kernel that ran."""

    out: Tensor
    weights: tuple[Tensor, Tensor] | None
    backend: str


def choose_backend(
    graph: AttentionGraph | Pattern | Tensor,
    spec: ScoreSpec | None = None,
    device: torch.device | str | None = None,
    *,
    num_nodes: int | None = None,
    sizes: Tensor | None = None,
) -> str:
    """The kernel ``attention(backend="auto")`` runs (see ``docs/architecture.md``, "Speed").

    Callable directly to see what a layer would pick: ``choose_backend(Window(128),
    num_nodes=16384)`` or ``choose_backend(edge_index, num_nodes=n)``; ``spec`` defaults to
    plain dot-product scores, ``device`` to the CPU. The choice is cached on the graph.

    On CUDA, ``flex`` (FlexAttention) takes every case below that picks ``blocked``, unless it
    cannot run it (dropout while training); on CPU it is never picked.

    * additive scores and edge features: ``scatter`` (the only kernel computing them);
    * a pattern with pieces (band, global, random; a lone stride) whose key columns per query
      are at most half a sequence: ``blocked``;
    * a pattern known only by its ``mask``: ``blocked`` (its tile path) when its non-empty
      tiles are at most half of the dense work or the dense mask does not fit, else ``dense``;
      never ``scatter``, which would have to scan the predicate for its edges;
    * otherwise a graph dense enough (``max_edges`` vs ``B L^2``) whose padded mask fits:
      ``dense`` (``Full()`` always when it fits);
    * everything else (real graphs, explicit edges): ``sparse`` (SDDMM / SpMM on the CSR).
    """
    if not isinstance(graph, AttentionGraph):
        graph = AttentionGraph.build(graph, num_nodes, lengths=sizes)
    spec = ScoreSpec(scale=1.0) if spec is None else spec
    device = torch.device(device or "cpu")
    dropout = spec.dropout > 0 and spec.training  # flex has no dropout: one graph picks per mode
    key = ("backend", spec.score, spec.edge_kv is not None, dropout, device.type)
    return graph.cached(key, lambda: _prefer_flex(_choose(graph, spec), graph, spec, device))


def _prefer_flex(name: str, graph: AttentionGraph, spec: ScoreSpec, device: torch.device) -> str:
    """On CUDA the sequence patterns ``blocked`` would take go to ``flex`` (fused, biases as
    ``score_mod``, with backward); never on CPU, where torch's FlexAttention has no backward."""
    if name == "blocked" and device.type == "cuda" and flex_unsupported(graph, spec) is None:
        return "flex"
    return name


def _choose(graph: AttentionGraph, spec: ScoreSpec) -> str:
    if dense_unsupported(graph, spec) is not None:  # the same features as blocked and sparse
        return "scatter"
    if graph.pattern is None:
        n = graph.num_nodes
        fits = n * n <= DENSE_MAX_MASK
        return "dense" if fits and graph.num_edges >= DENSE_MIN_DENSITY * n * n else "sparse"
    sizes = graph.sizes
    batch, length = sizes.numel(), int(sizes.max()) if sizes.numel() else 0
    if length == 0:
        return "sparse"
    dense_fits = batch * length * length <= DENSE_MAX_MASK
    pieces = graph.cached("pieces", graph.pattern.pieces)
    if pieces is None and not graph.pattern.has_generator:
        plan = graph.cached(("tiles", BLOCK), lambda: plan_tiles(graph, BLOCK))
        work = plan.key_blocks.size(1) * BLOCK
        return "blocked" if work <= BLOCKED_WORK_RATIO * length or not dense_fits else "dense"
    if pieces is not None and pieces.stride is not None and pieces.stride > 1:
        return "blocked"  # permuted into sub-sequences: 1 / stride of dense's work
    if pieces is not None and not pieces.full:
        if pieces.keys_per_query(length, BLOCK) <= BLOCKED_WORK_RATIO * length or not dense_fits:
            return "blocked"
    if not dense_fits:
        return "sparse"
    edges = graph.pattern.max_edges(length)
    return "dense" if edges >= DENSE_MIN_DENSITY * length * length else "sparse"


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a tensor of shape [N, H, C], got {type(t).__name__}")
        if t.dim() != 3 or not t.is_floating_point():
            raise ValueError(f"{name} must be a float tensor of shape [N, H, C], got {t.dtype} {list(t.shape)}")
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape, got {list(q.shape)} and {list(k.shape)}")
    if v.shape[:2] != q.shape[:2]:
        raise ValueError(f"v must be [N, H, C_v] with N, H as in q {list(q.shape[:2])}, got {list(v.shape)}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype or t.device != q.device:
            raise TypeError(f"{name} must have q's dtype and device ({q.dtype}, {q.device}), got {t.dtype}, {t.device}")


def _checked_bias(bias: BiasFn, heads: int, num_nodes: int) -> BiasFn:
    """``bias`` with its result checked where the kernels call it: a float tensor broadcasting to
    ``[..., H]`` over the index shapes, expanded to exactly that. An :class:`OffsetBias` keeps its
    split (its table is checked where the kernels gather from it) and needs ``pos [N]``."""
    if not callable(bias):
        raise TypeError(f"bias must be a callable bias(q_idx, k_idx) -> [..., H], got {type(bias).__name__}")
    if isinstance(bias, OffsetBias):
        pos = bias.pos
        if not isinstance(pos, Tensor) or pos.shape != (num_nodes,) or pos.dtype != torch.long:
            got = f"{pos.dtype} {list(pos.shape)}" if isinstance(pos, Tensor) else type(pos).__name__
            raise ValueError(f"OffsetBias.pos must be a long tensor of shape [N] = [{num_nodes}], got {got}")
        return replace(bias, fn=_checked_bias(bias.fn, heads, num_nodes))

    def checked(q_idx: Tensor, k_idx: Tensor) -> Tensor:
        out = bias(q_idx, k_idx)
        want = (*torch.broadcast_shapes(q_idx.shape, k_idx.shape), heads)
        if not isinstance(out, Tensor) or not out.is_floating_point():
            raise TypeError(f"bias(q_idx, k_idx) must return a float tensor of shape {list(want)}, got "
                            f"{out.dtype if isinstance(out, Tensor) else type(out).__name__}")
        try:
            if out.dim() != len(want) or torch.broadcast_shapes(out.shape, want) != want:
                raise RuntimeError
        except RuntimeError:
            raise ValueError(f"bias(q_idx, k_idx) must return a tensor of shape [..., H] = {list(want)}, "
                             f"got {list(out.shape)}") from None
        return out.expand(want)

    return checked


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    edges: AttentionGraph | Pattern | Tensor,
    *,
    sizes: Tensor | None = None,
    score: str = "dot",
    att: Tensor | None = None,
    scale: float | None = None,
    bias: BiasFn | None = None,
    edge_kv: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    backend: str = "auto",
    return_weights: bool = False,
) -> AttentionOutput:
    """Multi-head attention of ``q`` over ``k, v`` along the edges of a graph.

    Args:
        q, k, v: ``[N, H, C]`` queries, keys, values (``v`` may have its own ``C``).
        edges: a prepared :class:`~graphattn.ops.AttentionGraph` on ``N`` nodes, or anything
            :meth:`AttentionGraph.build` accepts (a pattern laid on each sequence of ``sizes``,
            its virtual nodes being the last rows of each; an ``edge_index`` ``[2, E]`` with
            row 0 key ``j`` and row 1 query ``i``; an ``EdgeIndex``; a sparse ``adj_t``), built
            on the fly with :meth:`AttentionGraph.for_rows`.
        sizes: sequence lengths summing to ``N`` (default one sequence; not with a graph).
        score: ``"dot"`` (scaled dot product) or ``"additive"`` (``att . tanh(q_i + k_j)``).
        att: ``[H, C]`` additive score vectors (``score="additive"`` only).
        scale: dot-product scale, default ``1 / sqrt(C)``.
        bias: optional ``bias(q_idx, k_idx) -> [..., H]`` added to the scores.
        edge_kv: optional ``[E, H, C]`` edge features added to keys and values (explicit edges only).
        dropout, training: dropout on the attention weights while training.
        backend: ``"auto"`` or a name in ``KERNELS``.
        return_weights: also return ``(edge_index, alpha)``; ``alpha`` is before dropout.
    """
    _check_qkv(q, k, v)
    n, heads, channels = q.shape
    check_choice(score, "score", SCORES)
    if score == "additive" and (att is None or att.shape != (heads, channels)):
        raise ValueError(f"att must be a [H, C] = [{heads}, {channels}] tensor for additive scores")
    check_choice(backend, "backend", BACKENDS)
    check_probability(dropout, "dropout")
    if isinstance(edges, AttentionGraph):
        if sizes is not None:
            raise ValueError("sizes belongs to AttentionGraph.build; the prepared graph already has its sizes")
        graph = edges
    else:
        graph = AttentionGraph.for_rows(edges, n, lengths=sizes).to(q.device)
    if graph.num_nodes != n:
        raise ValueError(f"the graph has {graph.num_nodes} nodes but q, k, v have N={n}")
    if graph.device != q.device:
        raise ValueError(f"the graph is on {graph.device} but q, k, v are on {q.device}; use graph.to(q.device)")
    if edge_kv is not None:
        if graph.pattern is not None:
            raise ValueError("edge_kv (edge features) needs an explicit edge_index, not a pattern")
        if edge_kv.dim() != 3 or edge_kv.shape != (graph.num_edges, heads, channels):
            raise ValueError(f"edge_kv must be [E, H, C] = [{graph.num_edges}, {heads}, {channels}], "
                             f"got {list(edge_kv.shape)}")
    bias = None if bias is None else _checked_bias(bias, heads, n)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    spec = ScoreSpec(score, channels**-0.5 if scale is None else scale, att, bias, edge_kv, dropout, training, grad)
    name = choose_backend(graph, spec, q.device) if backend == "auto" else backend
    reason = UNSUPPORTED[name](graph, spec) if name in UNSUPPORTED else None
    if reason is not None:
        fallback = choose_backend(graph, spec, q.device)  # what auto runs: it never picks a refused kernel
        logger.warning("backend %r cannot compute %s; using %r", name, reason, fallback)
        name = fallback
    if name in MIXING and not torch.compiler.is_compiling() and not (all_finite(k) and all_finite(v)):
        # a NaN / inf key or value may reach only the queries attending to it: compute on the edges
        name = "sparse" if sparse_unsupported(graph, spec) is None else "scatter"
    if name == "sparse" and torch.compiler.is_compiling():  # dynamo cannot build sparse tensors; the same answer
        name = "scatter"
    if not torch.compiler.is_compiling() and logger.isEnabledFor(logging.DEBUG):  # a graph break under compile
        logger.debug("attention over %d nodes, %r: backend %r (asked %r)", n, graph, name, backend)
    out, alpha = KERNELS[name](q, k, v, graph, spec, return_weights=return_weights)
    weights = (graph.edge_index, alpha) if return_weights else None
    return AttentionOutput(out, weights, name)
