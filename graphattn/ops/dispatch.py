"""One entry point for every attention kernel, and the rule that picks one.

All kernels share one signature ``kernel(q, k, v, graph, spec, *, return_weights)`` and
return ``(out [N, H, C], alpha [E, H] | None)`` with ``alpha`` aligned with
``graph.edge_index``. They must agree with ``reference`` to float tolerance (contract 5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import logging

import torch
from torch import Tensor

from ..patterns import Pattern, Stride, check_edge_index, check_sizes
from .blocked import BLOCK, blocked_attention, blocked_unsupported
from .dense import dense_attention, dense_unsupported
from .graph import AttentionGraph
from .plan import plan_blocks
from .reference import reference_attention
from .scatter import scatter_attention
from .scores import BiasFn, ScoreSpec

logger = logging.getLogger(__name__)

__all__ = ["attention", "choose_backend", "KERNELS", "BACKENDS", "AttentionOutput"]

Kernel = Callable[..., tuple[Tensor, "Tensor | None"]]

#: name -> kernel. ``reference`` is the dense oracle; faster kernels register here.
KERNELS: dict[str, Kernel] = {
    "reference": reference_attention,
    "scatter": scatter_attention,
    "dense": dense_attention,
    "blocked": blocked_attention,
}
#: name -> ``unsupported(graph, spec) -> reason | None`` for kernels that cannot run everything.
UNSUPPORTED = {"dense": dense_unsupported, "blocked": blocked_unsupported}
#: The dense kernel's mask is ``B L^2`` booleans; above this many it is not picked.
DENSE_MAX_MASK = 1 << 28
#: Blocked over dense when it computes at most this fraction of dense's key columns.
BLOCKED_WORK_RATIO = 0.5
#: Dense over scatter for graphs at least this dense (edges / (B L^2)).
DENSE_MIN_DENSITY = 0.05
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
    """The kernel ``attention(backend="auto")`` runs (see DESIGN.md, "Speed").

    Callable directly to see what a layer would pick: ``choose_backend(Window(128),
    num_nodes=16384)`` or ``choose_backend(edge_index, num_nodes=n)``; ``spec`` defaults to
    plain dot-product scores, ``device`` to the CPU.

    * additive scores and edge features: ``scatter`` (the only kernel computing them);
    * a pattern the blocked kernel can split (band, global, random pieces; a lone stride)
      whose key columns per query are at most half a sequence: ``blocked``;
    * otherwise a graph dense enough (``max_edges`` vs ``B L^2``) whose padded mask fits:
      ``dense`` (``Full()`` always when it fits);
    * everything else: ``scatter``.
    """
    graph = _as_graph(graph, num_nodes, sizes)
    spec = ScoreSpec(scale=1.0) if spec is None else spec
    if dense_unsupported(graph, spec) is not None:  # the same features as blocked
        return "scatter"
    if graph.pattern is None:
        n = graph.num_nodes
        fits = n * n <= DENSE_MAX_MASK
        return "dense" if fits and graph.edge_index.size(1) >= DENSE_MIN_DENSITY * n * n else "scatter"
    sizes = graph.sizes
    batch, length = sizes.numel(), int(sizes.max()) if sizes.numel() else 0
    if length == 0:
        return "scatter"
    if isinstance(graph.pattern, Stride) and graph.pattern.stride > 1:
        return "blocked"  # permuted into sub-sequences: 1 / stride of dense's work
    plan = plan_blocks(graph.pattern)
    dense_fits = batch * length * length <= DENSE_MAX_MASK
    if plan is not None and not plan.is_full:
        if plan.keys_per_query(length, BLOCK) <= BLOCKED_WORK_RATIO * length or not dense_fits:
            return "blocked"
    if not dense_fits:
        return "scatter"
    edges = graph.pattern.max_edges(length)
    return "dense" if edges >= DENSE_MIN_DENSITY * length * length else "scatter"


def _as_graph(edges: AttentionGraph | Pattern | Tensor, num_nodes: int | None, sizes: Tensor | None) -> AttentionGraph:
    if isinstance(edges, AttentionGraph):
        return edges
    if isinstance(edges, Pattern):
        if sizes is None and num_nodes is None:
            raise ValueError("choose_backend(pattern) needs num_nodes or sizes")
        sizes = torch.tensor([num_nodes]) if sizes is None else check_sizes(sizes, num_nodes)
        return AttentionGraph.from_pattern(edges, sizes.cpu())
    if isinstance(edges, Tensor):
        if num_nodes is None:
            raise ValueError("choose_backend(edge_index) needs num_nodes")
        return AttentionGraph.from_edge_index(check_edge_index(edges, num_nodes), num_nodes)
    raise TypeError(f"edges must be an AttentionGraph, a Pattern or an edge_index tensor, got {type(edges).__name__}")


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


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    edges: Pattern | Tensor,
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
        edges: a :class:`~graphattn.patterns.Pattern` laid on each sequence of ``sizes``, or
            an ``edge_index`` ``[2, E]`` (row 0 key ``j``, row 1 query ``i``).
        sizes: sequence lengths summing to ``N`` (patterns only; default one sequence).
        score: ``"dot"`` (scaled dot product) or ``"additive"`` (``att . tanh(q_i + k_j)``).
        att: ``[H, C]`` additive score vectors (``score="additive"`` only).
        scale: dot-product scale, default ``1 / sqrt(C)``.
        bias: optional ``bias(q_idx, k_idx) -> [..., H]`` added to the scores.
        edge_kv: optional ``[E, H, C]`` edge features added to keys and values (``edge_index`` only).
        dropout, training: dropout on the attention weights while training.
        backend: ``"auto"`` or a name in ``KERNELS``.
        return_weights: also return ``(edge_index, alpha)``; ``alpha`` is before dropout.
    """
    _check_qkv(q, k, v)
    n, heads, channels = q.shape
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    if score == "additive" and (att is None or att.shape != (heads, channels)):
        raise ValueError(f"att must be a [H, C] = [{heads}, {channels}] tensor for additive scores")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if isinstance(edges, Pattern):
        sizes = torch.tensor([n]) if sizes is None else check_sizes(sizes, n)
        if edge_kv is not None:
            raise ValueError("edge_kv (edge features) needs an explicit edge_index, not a pattern")
        for size in set(sizes.tolist()):  # kernels that never build edge_index must not see bad patterns
            edges.validate(size)
        graph = AttentionGraph.from_pattern(edges, sizes.cpu())
    elif isinstance(edges, Tensor):
        graph = AttentionGraph.from_edge_index(check_edge_index(edges, n).to(q.device), n)
        if edge_kv is not None and (edge_kv.dim() != 3 or edge_kv.shape != (edges.size(1), heads, channels)):
            raise ValueError(f"edge_kv must be [E, H, C] = [{edges.size(1)}, {heads}, {channels}], got {list(edge_kv.shape)}")
    else:
        raise TypeError(f"edges must be a Pattern or an edge_index tensor, got {type(edges).__name__}")
    spec = ScoreSpec(score, channels**-0.5 if scale is None else scale, att, bias, edge_kv, dropout, training)
    name = choose_backend(graph, spec, q.device) if backend == "auto" else backend
    reason = UNSUPPORTED[name](graph, spec) if name in UNSUPPORTED else None
    if reason is not None:
        logger.warning("backend %r cannot compute %s; using 'scatter'", name, reason)
        name = "scatter"
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("attention over %d nodes, %r: backend %r (asked %r)", n,
                     graph.pattern if graph.pattern is not None else "edge_index", name, backend)
    out, alpha = KERNELS[name](q, k, v, graph, spec, return_weights=return_weights)
    weights = (graph.edge_index.to(q.device), alpha) if return_weights else None
    return AttentionOutput(out, weights, name)
