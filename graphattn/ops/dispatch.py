"""One entry point for every attention kernel, and the rule that picks one.

All kernels share one signature ``kernel(q, k, v, graph, spec, *, return_weights)`` and
return ``(out [N, H, C], alpha [E, H] | None)`` with ``alpha`` aligned with
``graph.edge_index``. They must agree with ``reference`` to float tolerance (contract 5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ..patterns import Pattern, check_edge_index, check_sizes
from .graph import AttentionGraph
from .reference import reference_attention
from .scatter import scatter_attention
from .scores import BiasFn, ScoreSpec

__all__ = ["attention", "choose_backend", "KERNELS", "BACKENDS", "AttentionOutput"]

Kernel = Callable[..., tuple[Tensor, "Tensor | None"]]

#: name -> kernel. ``reference`` is the dense oracle; faster kernels register here.
KERNELS: dict[str, Kernel] = {"reference": reference_attention, "scatter": scatter_attention}
#: What ``backend=`` accepts.
BACKENDS = ("auto", *KERNELS)
SCORES = ("dot", "additive")


class AttentionOutput(NamedTuple):
    """``out``: ``[N, H, C]``; ``weights``: ``(edge_index [2, E], alpha [E, H])`` or None;
    ``backend``: the kernel that ran."""

    out: Tensor
    weights: tuple[Tensor, Tensor] | None
    backend: str


def choose_backend(graph: AttentionGraph, spec: ScoreSpec, device: torch.device) -> str:
    """The fastest kernel that supports this graph and score (see DESIGN.md, "Speed")."""
    return "scatter"


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
        graph = AttentionGraph.from_pattern(edges, sizes.cpu())
    elif isinstance(edges, Tensor):
        graph = AttentionGraph.from_edge_index(check_edge_index(edges, n).to(q.device), n)
        if edge_kv is not None and (edge_kv.dim() != 3 or edge_kv.shape != (edges.size(1), heads, channels)):
            raise ValueError(f"edge_kv must be [E, H, C] = [{edges.size(1)}, {heads}, {channels}], got {list(edge_kv.shape)}")
    else:
        raise TypeError(f"edges must be a Pattern or an edge_index tensor, got {type(edges).__name__}")
    spec = ScoreSpec(score, channels**-0.5 if scale is None else scale, att, bias, edge_kv, dropout, training)
    name = choose_backend(graph, spec, q.device) if backend == "auto" else backend
    out, alpha = KERNELS[name](q, k, v, graph, spec, return_weights=return_weights)
    weights = (graph.edge_index.to(q.device), alpha) if return_weights else None
    return AttentionOutput(out, weights, name)
