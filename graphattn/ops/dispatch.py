"""One entry point for every attention kernel, and the one rule that picks one.

:func:`attention` checks the call's metadata once (shapes, dtypes, devices: never values, so
nothing asks the device for a number), answers the empty graph itself, and picks a kernel:

* ``backend="auto"``: the first kernel of the device's priority list (:data:`PRIORITY`) that can
  run the call (:meth:`~graphattn.ops.kernel.Kernel.unsupported` is empty) and does not defer to
  a later, cheaper one (:meth:`~graphattn.ops.kernel.Kernel.declines`). The choice is kept on the
  graph per kind of call and logged once at DEBUG level with every skipped kernel's reasons;
* a named backend: that kernel (``"blocked"``: the first of stride, band and tiles that can run
  it), or ``NotImplementedError`` listing why it cannot. A kernel is never swapped silently.

Kernels that mix keys in dense products (``0 * NaN = NaN``) get finite keys and values, and the
queries that attend to a non-finite one are marked NaN afterwards from the kernel's own plan, so
a bad key or value reaches exactly the queries that attend to it, on every kernel, in eager and
compiled code alike, without a sync (contract 8 of ``docs/architecture.md``). Attention weights
come from the kernel's log-sum-exp (:func:`~graphattn.ops.kernel.edge_weights`) unless it has
them at hand.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..checks import check_allocation, check_bool, check_choice, check_float, check_probability
from ..patterns import Pattern
from .band import Band
from .dense import Dense
from .flex import Flex
from .fused import Fused
from .graph import AttentionGraph
from .kernel import Kernel, edge_weights
from .reference import REFERENCE
from .routed import Buckets, route
from .scatter import Scatter
from .scores import BiasFn, OffsetBias, ScoreSpec
from .sparse import SparseCSR
from .stride import StridePermute
from .tiles import Tiles

logger = logging.getLogger(__name__)

__all__ = ["attention", "choose_backend", "choose_kernel", "KERNELS", "BACKENDS", "GROUPS", "PRIORITY",
           "AttentionOutput", "SCORES"]

_DENSE, _BAND, _TILES, _SPARSE, _SCATTER, _FUSED = Dense(), Band(), Tiles(), SparseCSR(), Scatter(), Fused()
_STRIDE, _BUCKETS = StridePermute(_DENSE, _BAND), Buckets()
_FLEX = Flex(prefers=(_STRIDE, _BAND, _TILES))

#: Every kernel by its own name (``backend=`` accepts each).
KERNELS: dict[str, Kernel] = {k.name: k for k in (REFERENCE, _SCATTER, _DENSE, _BAND, _STRIDE, _TILES, _FLEX, _SPARSE,
                                                  _FUSED, _BUCKETS)}
#: Public backend names that stand for several kernels: the first that can run a call runs it.
GROUPS: dict[str, tuple[Kernel, ...]] = {"blocked": (_STRIDE, _BAND, _TILES, _BUCKETS)}
#: What ``backend=`` accepts.
BACKENDS = ("auto", *GROUPS, *KERNELS)
#: ``auto``'s order per device type (other devices use the CPU's).
PRIORITY: dict[str, tuple[Kernel, ...]] = {
    "cpu": (_STRIDE, _BAND, _TILES, _BUCKETS, _DENSE, _SPARSE, _SCATTER),
    "cuda": (_FLEX, _STRIDE, _BAND, _TILES, _BUCKETS, _DENSE, _FUSED, _SPARSE, _SCATTER),
}
SCORES = ("dot", "additive", "gat", "gatv2")


class AttentionOutput(NamedTuple):
    """``out``: ``[N, H, C]``; ``weights``: ``(edge_index [2, E], alpha [E, H])`` or None;
    ``backend``: the public backend that ran (``"blocked"`` for the tile kernels); ``kernel``: the
    kernel itself (``"band"``, ``"stride"``, ``"tiles"``, ...)."""

    out: Tensor
    weights: tuple[Tensor, Tensor] | None
    backend: str
    kernel: str


class Finite(torch.autograd.Function):
    """``nan_to_num(x, 0, 0, 0)`` whose backward passes the gradient through: exact where ``x`` is
    finite, and a query that attends to a non-finite entry is NaN anyway (its gradient too)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


def _call_kind(backend: str, spec: ScoreSpec) -> tuple:
    """What the choice of a kernel depends on, besides the graph."""
    return (backend, spec.score, spec.edge_kv is not None, spec.bias is not None, spec.dropout > 0 and spec.training,
            spec.grad, spec.device, spec.dtype, spec.transformed, spec.shape, spec.edge_k is not None,
            spec.keep is not None)


def choose_kernel(graph: AttentionGraph, spec: ScoreSpec, backend: str = "auto") -> Kernel:
    """The kernel :func:`attention` runs for this call (kept on the graph per kind of call)."""
    kind = _call_kind(backend, spec)
    kernel = graph.choices.get(kind)
    if not isinstance(kernel, Kernel):  # None: not chosen yet for this kind of call (choices hold Kernels only)
        kernel = graph.choices[kind] = _choose(graph, spec, backend)
    return kernel


def _choose(graph: AttentionGraph, spec: ScoreSpec, backend: str) -> Kernel:
    if backend == "auto":
        skipped: list[str] = []
        for kernel in PRIORITY.get(spec.device, PRIORITY["cpu"]):
            reasons = kernel.unsupported(graph, spec) or kernel.declines(graph, spec)
            if not reasons:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("%r on %s: auto runs %r; skipped %s", graph, spec.device, kernel.name,
                                 "; ".join(skipped) or "nothing")
                return kernel
            skipped.append(f"{kernel.name} ({', '.join(reasons)})")
        raise RuntimeError(f"no kernel can run this call: {'; '.join(skipped)}")  # scatter runs everything
    reasons = []
    for kernel in GROUPS[backend] if backend in GROUPS else (KERNELS[backend],):
        why = kernel.unsupported(graph, spec)
        if not why:
            return kernel
        reasons += [f"{kernel.name}: {r}" for r in why]
    auto = choose_kernel(graph, spec)
    raise NotImplementedError(f"backend={backend!r} cannot run this call on {graph!r} ({'; '.join(reasons)}); "
                              f"backend='auto' runs {auto.name!r} here")


def choose_backend(
    graph: AttentionGraph | Pattern | Tensor,
    spec: ScoreSpec | None = None,
    device: torch.device | str | None = None,
    *,
    num_nodes: int | None = None,
    sizes: Tensor | None = None,
) -> str:
    """The public backend ``attention(backend="auto")`` runs (``"blocked"`` for the tile kernels).

    Callable directly to see what a layer would pick: ``choose_backend(Window(128),
    num_nodes=16384)`` or ``choose_backend(edge_index, num_nodes=n)``; ``spec`` defaults to
    plain dot-product scores, ``device`` to the CPU. Log level DEBUG on ``graphattn.ops.dispatch``
    says why each earlier kernel of the priority list was skipped.
    """
    if not isinstance(graph, AttentionGraph):
        graph = AttentionGraph.build(graph, num_nodes, lengths=sizes)
    spec = ScoreSpec(scale=1.0) if spec is None else spec
    return choose_kernel(graph, replace(spec, device=torch.device(device or "cpu").type)).backend


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


def _check_footprint(kernel: Kernel, graph: AttentionGraph, spec: ScoreSpec, backend: str, return_weights: bool,
                     device: torch.device) -> None:
    """Refuse, before anything is allocated, a call whose memory is out of reach (O(N^2) scores of a
    large graph, per-edge rows of a huge one), with the estimate and what to do instead."""
    weights = graph.edge_bound() * (16 + spec.shape[0] * spec.dtype.itemsize) if return_weights else 0
    need = kernel.footprint(graph, spec, return_weights) + weights
    if need == 0:
        return
    if backend != "auto":
        instead = f"backend='auto' runs {choose_kernel(graph, spec).name!r} here"
    elif return_weights:
        instead = "return_weights=False (return_attention_weights) keeps no per-edge numbers"
    elif spec.dropout > 0 and spec.training:
        instead = "attention dropout needs the scores in memory: use dropout=0 or a sparser pattern"
    else:
        instead = "use a sparser pattern"
    what = f"the {kernel.name} kernel on {graph!r}" + (" with attention weights" if return_weights else "")
    check_allocation(need, what, device, instead)


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
    negative_slope: float = 0.2,
    edge_k: Tensor | None = None,
    keep: Tensor | None = None,
) -> AttentionOutput:
    """Multi-head attention of ``q`` over ``k, v`` along the edges of a graph.

    Args:
        q, k, v: ``[N, H, C]`` queries, keys, values (``v`` may have its own ``C``).
        edges: a prepared :class:`~graphattn.ops.AttentionGraph` on ``N`` nodes, or anything
            :meth:`AttentionGraph.build` accepts (a pattern laid on each sequence of ``sizes``,
            its virtual nodes being the last rows of each; an ``edge_index`` ``[2, E]`` with
            row 0 key ``j`` and row 1 query ``i``; an ``EdgeIndex``; a sparse ``adj_t``), built
            on the fly. A data-dependent pattern (``LSH``, ``KMeans``, ``TopK``) is first routed
            on ``q`` and ``k`` (:func:`~graphattn.ops.route`); the weights are then on its edges.
        sizes: sequence lengths summing to ``N`` (default one sequence; not with a graph).
        score: ``"dot"`` (scaled dot product), ``"additive"`` (``att . tanh(q_i + k_j)``), ``"gat"``
            (``LeakyReLU(q_i + k_j)`` summed over channels: GAT's per-node scalars as ``C = 1``) or
            ``"gatv2"`` (``att . LeakyReLU(q_i + k_j)``); see :class:`~graphattn.ops.ScoreSpec`.
        att: ``[H, C]`` score vectors (``"additive"`` and ``"gatv2"`` only).
        scale: dot-product scale, a finite float > 0 (``score="dot"`` only), default ``1 / sqrt(C)``.
        bias: optional ``bias(q_idx, k_idx) -> [..., H]`` added to the scores.
        edge_kv: optional ``[E, H, C]`` edge features added to keys and values (explicit edges only).
        dropout, training: dropout on the attention weights while training.
        backend: ``"auto"``, a kernel name in :data:`KERNELS` or a group in :data:`GROUPS`.
        return_weights: also return ``(edge_index, alpha)``; ``alpha`` is before dropout.
        negative_slope: LeakyReLU's slope for ``"gat"`` and ``"gatv2"`` scores.
        edge_k: optional ``[E, H, C]`` edge features added to the keys in the scores only (GAT's and
            GATv2's edge term; explicit edges only).
        keep: optional ``[E, H]`` dropout mask on the weights, drawn by the caller in edge order
            (``F.dropout(ones)``: entries 0 or ``1 / (1 - p)``), used instead of ``dropout``.
    """
    _check_qkv(q, k, v)
    n, heads, channels, dtype = *q.shape, q.dtype
    check_choice(score, "score", SCORES)
    if score in ("additive", "gatv2"):
        if not isinstance(att, Tensor) or att.shape != (heads, channels):
            raise ValueError(f"att must be a [H, C] = [{heads}, {channels}] tensor for {score} scores")
        if att.dtype != q.dtype or att.device != q.device:
            raise TypeError(f"att must have q's dtype and device ({q.dtype}, {q.device}), got {att.dtype}, {att.device}")
    elif att is not None:  # never dropped silently
        raise ValueError(f"att (the score vectors) applies to score='additive' and score='gatv2' only, not "
                         f"score={score!r}; drop it")
    if scale is not None:
        if score != "dot":
            raise ValueError(f"scale applies to score='dot' only, not score={score!r} (its scores have no scale)")
        scale = check_float(scale, "scale", above=0)
    check_bool(training, "training")
    check_bool(return_weights, "return_weights")
    check_choice(backend, "backend", BACKENDS)
    check_probability(dropout, "dropout")
    check_float(negative_slope, "negative_slope")
    if isinstance(edges, AttentionGraph):
        if sizes is not None:
            raise ValueError("sizes belongs to AttentionGraph.build; the prepared graph already has its sizes")
        graph = edges
    else:
        graph = AttentionGraph.build(edges, n, lengths=sizes, includes_virtual=True).to(q.device)
    if graph.num_nodes != n:
        raise ValueError(f"the graph has {graph.num_nodes} nodes but q, k, v have N={n}")
    if graph.device != q.device:
        raise ValueError(f"the graph is on {graph.device} but q, k, v are on {q.device}; use graph.to(q.device)")
    for name, t, per_edge in (("edge_kv", edge_kv, (heads, channels)), ("edge_k", edge_k, (heads, channels)),
                              ("keep", keep, (heads,))):
        if t is None:
            continue
        if graph.pattern is not None:
            raise ValueError(f"{name} (per-edge values) needs an explicit edge_index, not a pattern")
        want = (graph.num_edges, *per_edge)
        if not isinstance(t, Tensor) or t.shape != want:
            got = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a tensor of shape {list(want)}, got {got}")
        if t.dtype != dtype or t.device != q.device:
            raise TypeError(f"{name} must have q's dtype and device ({dtype}, {q.device}), got {t.dtype}, {t.device}")
    bias = None if bias is None else _checked_bias(bias, heads, n)
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, att, edge_kv, edge_k))
    spec = ScoreSpec(score, channels**-0.5 if scale is None else scale, att, bias, edge_kv, dropout, training, grad,
                     q.device.type, q.dtype, torch._C._are_functorch_transforms_active(), (heads, channels, v.size(2)),
                     negative_slope, edge_k, keep)
    if q.device.type == "meta":  # shape inference: nothing to compute with, nothing to choose
        weights = (graph.edge_index, q.new_empty(graph.num_edges, heads)) if return_weights else None
        return AttentionOutput(v.new_empty(v.shape), weights, "meta", "meta")
    graph = route(q, k, graph)  # a data-dependent pattern: the graph this forward's q and k choose
    kernel = _SCATTER if n == 0 and backend == "auto" else choose_kernel(graph, spec, backend)
    if n == 0:  # the empty graph: nothing to attend to, nothing to plan
        empty = (graph.edge_index, q.new_zeros(0, heads)) if return_weights else None
        return AttentionOutput(v.new_zeros(v.shape), empty, kernel.backend, kernel.name)
    fits = ("fits", _call_kind(backend, spec), return_weights)
    if fits not in graph.choices:  # checked once per graph and kind of call, as the choice is
        _check_footprint(kernel, graph, spec, backend, return_weights, q.device)
        graph.choices[fits] = kernel
    plan = graph.plan(kernel)
    half = q.dtype in (torch.float16, torch.bfloat16) and spec.device not in kernel.half_on
    if half:  # no float32 accumulation in this kernel here: compute on float32 copies, cast the results back
        q, k, v = q.float(), k.float(), v.float()
        spec = replace(spec, att=None if att is None else att.float(), dtype=torch.float32,
                       edge_kv=None if edge_kv is None else edge_kv.float(),
                       edge_k=None if edge_k is None else edge_k.float(), keep=None if keep is None else keep.float())
    if kernel.mixes:  # finite keys and values in, the queries that attend to a bad one marked after
        # a (node, head) is bad when a channel of its key or value is NaN / inf: the largest magnitude is
        # then not finite (max propagates NaN; no sum that could overflow; x * 0 would be folded to 0 by
        # the compiler)
        bad = ~torch.isfinite(torch.maximum(k.detach().abs().amax(dim=-1), v.detach().abs().amax(dim=-1)))  # (N, H)
        res = kernel.forward(q, Finite.apply(k), Finite.apply(v), graph, spec, plan, need_weights=return_weights)
        spoiled = torch.where(kernel.reached(graph, plan, bad), float("nan"), 0.0).to(res.out.dtype)  # (N, H)
        res = res._replace(out=res.out + spoiled[..., None], lse=None if res.lse is None else res.lse + spoiled)
    else:
        res = kernel.forward(q, k, v, graph, spec, plan, need_weights=return_weights)
    weights = None
    if return_weights:
        if res.alpha is not None:
            alpha = res.alpha
        else:
            assert res.lse is not None, f"{kernel!r} returned neither weights nor lse though asked for weights"
            alpha = edge_weights(q, k, graph, spec, res.lse)
        weights = (graph.edge_index, alpha.to(dtype))
    return AttentionOutput(res.out.to(dtype), weights, kernel.backend, kernel.name)
