"""The fused kernel: attention over an edge list in one pass, FlashAttention-style (Triton).

For every query ``i`` with in-neighbours ``N(i)`` (duplicate edges each count), per head:

.. math::
    s_{ij} = \\text{scale}\\; q_i \\cdot (k_j + e_{ij}) + b_{ij}, \\qquad
    \\ell_i = \\log \\sum_{j \\in N(i)} e^{s_{ij}}, \\qquad
    o_i = \\sum_{j \\in N(i)} e^{s_{ij} - \\ell_i}\\, z_{ij}\\, (v_j + e_{ij})

with optional per-edge score biases ``b`` (ALiBi, T5, shortest-path values) and edge features
``e`` (TransformerConv's ``edge_dim``), and dropout ``z_ij in {0, 1 / (1 - p)}`` drawn by Philox
from a seed (recomputed in the backward). One program per query walks its keys with an online
softmax (running max and sum) and keeps only ``out`` and ``lse = l_i``; a query without keys
gets ``out = 0``, ``lse = -inf``. Both are differentiable: the attention weights are
``alpha_ij = exp(s_ij - lse_i)`` (the caller forms them, in its edge order). The backward, with
``dS_ij = p_ij (z_ij dO_i . (v_j + e_ij) - dO_i . O_i + dlse_i)``, is a destination pass (``dQ``)
and a source pass over the transposed graph (``dK, dV``, and per edge ``d bias = dS``,
``d e``), with no atomics: two runs give bit-identical gradients. Accumulation is float32 (float64
for float64 inputs), inputs float16 / bfloat16 / float32 / float64.

It runs on CUDA, and on CPU tensors under Triton's interpreter when ``TRITON_INTERPRET=1`` is in
the environment before this module is first imported (that is how its tests run without a GPU).
It is one ``torch.library`` custom op (``graphattn::fused_forward``) with a registered backward
and fake implementation, so ``torch.compile(fullgraph=True)`` sees one opaque op. Plan it once per
graph with :func:`~graphattn.ops.fused_plan.plan_fused`. Slow twin:
:func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from .fused_plan import SHORT, FusedPlan, Tiling, plan_fused
from .graph import AttentionGraph
from .kernel import EDGE_KV, Kernel, KernelResult, dot_only
from .scores import ScoreSpec

__all__ = ["Fused", "fused_attention", "fused_unsupported", "dropout_keep", "FusedPlan", "plan_fused",
           "TRITON_AVAILABLE", "INTERPRETED"]

_kernels: ModuleType | None
try:
    import triton

    from . import fused_triton as _kernels
except ImportError:  # the optional extra graphattn[gpu]
    triton, _kernels = None, None

#: Whether triton imports here.
TRITON_AVAILABLE = _kernels is not None
#: Whether the kernels were defined under Triton's interpreter (``TRITON_INTERPRET=1`` at import).
INTERPRETED = _kernels is not None and not isinstance(_kernels._forward_kernel, triton.runtime.JITFunction)
#: Input dtypes the kernels read (accumulating in float32, or float64 for float64 inputs).
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
#: The most channels per head a program holds in one tile.
MAX_CHANNELS = 256
#: Elements of one ``[edges, heads, channels]`` tile: bounds the heads per program and the edge tile.
TILE = 4096


def fused_unsupported(device: torch.device | str, dtype: torch.dtype | None = None, *, heads: int | None = None,
                      channels: int | None = None, value_channels: int | None = None, num_edges: int | None = None,
                      edge_kv: bool = False, dropout: bool = False) -> list[str]:
    """Why the fused kernel cannot run this (empty when it can); give what is known."""
    device = torch.device(device)
    reasons = []
    if not TRITON_AVAILABLE:
        reasons.append("triton is not installed (pip install 'graphattn[gpu]')")
    elif device.type == "cpu" and not INTERPRETED:
        reasons.append("CPU tensors run only under Triton's interpreter: set TRITON_INTERPRET=1 in the environment "
                       "before graphattn is imported")
    if device.type not in ("cuda", "cpu"):
        reasons.append(f"{device.type} tensors: the Triton kernels run on CUDA (or on the CPU under the interpreter)")
    if dtype is not None and dtype not in DTYPES:
        reasons.append(f"dtype {dtype}: the kernels read float16, bfloat16, float32 or float64")
    for name, count in (("channels", channels), ("value channels", value_channels)):
        if count is not None and count > MAX_CHANNELS:
            reasons.append(f"{count} {name} per head: one tile holds at most {MAX_CHANNELS}")
    if edge_kv and None not in (channels, value_channels) and channels != value_channels:
        reasons.append(f"edge features are added to keys and values, which need equal channels ({channels} != {value_channels})")
    if dropout and num_edges is not None and heads is not None and num_edges * heads >= 2**31:
        reasons.append(f"dropout draws one Philox number per edge and head, at most 2**31 ({num_edges} x {heads})")
    return reasons


def _triton_kernels() -> ModuleType:
    """The Triton kernels (:mod:`graphattn.ops.fused_triton`); only called past
    :func:`fused_unsupported`, which refuses every call when triton is not installed."""
    if _kernels is None:
        raise RuntimeError("triton is not installed (pip install 'graphattn[gpu]')")
    return _kernels


def _pow2(x: int) -> int:
    return 1 << max(int(x) - 1, 0).bit_length()


def _tiles(heads: int, channels: int, value_channels: int) -> dict:
    bc, bcv = _pow2(channels), _pow2(value_channels)
    return {"BLOCK_H": min(_pow2(heads), max(1, TILE // 16 // max(bc, bcv))), "BLOCK_C": bc, "BLOCK_CV": bcv}


def _edge_tile(longest: int, tiles: dict) -> dict:
    """``BLOCK_E`` (edges per tile: the longest item's length rounded up, narrow for short items,
    within ``TILE``) and the warps for it (8 for full tiles: ptxas then needs no spills)."""
    inner = tiles["BLOCK_H"] * max(tiles["BLOCK_C"], tiles["BLOCK_CV"])
    cap = SHORT if longest <= SHORT else max(SHORT, TILE // inner)
    block = max(4, min(_pow2(longest), cap))
    return {"BLOCK_E": block, "num_warps": 8 if block * inner >= TILE else 4}


def _launches(plan: FusedPlan, tiling: Tiling, ell: bool) -> list[tuple[int, int, int, int]]:
    """``(first item, items, longest item, DEGREE)`` of each launch of a pass (one, ELL, when ``ell``)."""
    if ell and plan.degree is not None:
        return [(0, plan.num_nodes, plan.degree, plan.degree)]
    return [(first, count, longest, 0) for first, count, longest in tiling.buckets]


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _tl(dtype: torch.dtype):
    return _triton_kernels().tl.float64 if dtype == torch.float64 else _triton_kernels().tl.float32


def _items(tiling: Tiling) -> tuple[Tensor, ...]:
    return tiling.node, tiling.start, tiling.end, tiling.slot


def _forward(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, edge_kv: Tensor | None, plan: FusedPlan,
             scale: float, dropout: float, seed: Tensor | None) -> tuple[Tensor, Tensor]:
    n, heads, channels = q.shape
    value_channels, acc = v.size(2), _acc(q.dtype)
    out, lse = q.new_empty(n, heads, value_channels), q.new_empty(n, heads, dtype=acc)
    tiling, tiles = plan.dst, _tiles(heads, channels, value_channels)
    part_out = q.new_empty(tiling.num_slots, heads, value_channels, dtype=acc)
    part_lse = q.new_empty(tiling.num_slots, heads, dtype=acc)
    flags = dict(HAS_BIAS=bias is not None, HAS_EKV=edge_kv is not None, DROPOUT=seed is not None,
                 NEED_EID=bias is not None or edge_kv is not None or seed is not None, ACC=_tl(q.dtype), **tiles)
    groups = triton.cdiv(heads, tiles["BLOCK_H"])
    for first, count, longest, degree in _launches(plan, tiling, ell=True):
        _triton_kernels()._forward_kernel[(count, groups)](
            q, k, v, _or(bias, q), _or(edge_kv, q), plan.col, plan.perm, *_items(tiling), out, lse, part_out, part_lse,
            _or(seed, plan.col), first, scale, dropout, heads, channels, value_channels, DEGREE=degree,
            **_edge_tile(longest, tiles), **flags)
    if tiling.num_slots:
        _triton_kernels()._merge_kernel[(tiling.split_node.numel(), groups)](
            part_out, part_lse, tiling.split_node, tiling.split_ptr, out, lse, heads, value_channels,
            BLOCK_H=tiles["BLOCK_H"], BLOCK_CV=tiles["BLOCK_CV"], ACC=_tl(q.dtype))
    return out, lse


def _backward(d_out: Tensor, d_lse: Tensor | None, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None,
              edge_kv: Tensor | None, out: Tensor, lse: Tensor, plan: FusedPlan, scale: float, dropout: float,
              seed: Tensor | None, need_bias: bool, need_ekv: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    n, heads, channels = q.shape
    value_channels, acc = v.size(2), _acc(q.dtype)
    d_out = d_out.contiguous()
    delta = torch.linalg.vecdot(d_out.to(acc), out.to(acc))  # (N, H): dO_i . O_i = sum_j p_ij dA_ij
    if d_lse is not None:
        delta = delta - d_lse.to(acc)
    tiles = _tiles(heads, channels, value_channels)
    groups = triton.cdiv(heads, tiles["BLOCK_H"])
    common = dict(HAS_BIAS=bias is not None, HAS_EKV=edge_kv is not None, DROPOUT=seed is not None, ACC=_tl(q.dtype),
                  **tiles)
    bias_, ekv_, seed_ = _or(bias, q), _or(edge_kv, q), _or(seed, plan.col)

    dq = torch.empty_like(q)
    part_dq = q.new_empty(plan.dst.num_slots, heads, channels, dtype=acc)
    need_eid = bias is not None or edge_kv is not None or seed is not None
    for first, count, longest, degree in _launches(plan, plan.dst, ell=True):
        _triton_kernels()._dq_kernel[(count, groups)](
            q, k, v, bias_, ekv_, plan.col, plan.perm, *_items(plan.dst), d_out, lse, delta, dq, part_dq, seed_, first,
            scale, dropout, heads, channels, value_channels, DEGREE=degree, NEED_EID=need_eid,
            **_edge_tile(longest, tiles), **common)
    _sum_slots(part_dq, plan.dst, dq)

    dk, dv = torch.empty_like(k), torch.empty_like(v)
    d_bias = _grad_buffer(bias, need_bias, q)
    d_ekv = _grad_buffer(edge_kv, need_ekv, q)
    part_dk = q.new_empty(plan.src.num_slots, heads, channels, dtype=acc)
    part_dv = q.new_empty(plan.src.num_slots, heads, value_channels, dtype=acc)
    for first, count, longest, _ in _launches(plan, plan.src, ell=False):
        _triton_kernels()._dkv_kernel[(count, groups)](
            q, k, v, bias_, ekv_, plan.t_col, plan.t_perm, *_items(plan.src), d_out, lse, delta, dk, dv,
            d_bias if need_bias else q, d_ekv if need_ekv else q, part_dk, part_dv, seed_, first, scale, dropout, heads,
            channels, value_channels, WRITE_DBIAS=need_bias, WRITE_DEKV=need_ekv, **_edge_tile(longest, tiles), **common)
    _sum_slots(part_dk, plan.src, dk)
    _sum_slots(part_dv, plan.src, dv)
    return dq, dk, dv, d_bias, d_ekv


def _sum_slots(part: Tensor, tiling: Tiling, out: Tensor) -> None:
    if not tiling.num_slots:
        return
    features = part[0].numel()
    block = min(_pow2(features), 1024)
    _triton_kernels()._sum_slots_kernel[(tiling.split_node.numel(), triton.cdiv(features, block))](
        part, tiling.split_node, tiling.split_ptr, out, features, BLOCK_F=block, ACC=_tl(part.dtype))


def _grad_buffer(t: Tensor | None, need: bool, placeholder: Tensor) -> Tensor:
    """An empty tensor like ``t`` for its gradient, or an empty placeholder when it needs none
    (autograd asks for the gradient of an input only when the input was given)."""
    if not need:
        return placeholder.new_empty(0)
    assert t is not None, "the gradient of an input that was not given"
    return torch.empty_like(t)


def _or(t: Tensor | None, placeholder: Tensor) -> Tensor:
    """``t``, or a placeholder pointer for an input a constexpr flag switches off."""
    return placeholder if t is None else t


# ---------------------------------------------------------------------- the custom op and its autograd
@torch.library.custom_op("graphattn::fused_forward", mutates_args=())
def _forward_op(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, edge_kv: Tensor | None, plan_tensors: list[Tensor],
                plan_ints: list[int], scale: float, dropout: float, seed: Tensor | None) -> tuple[Tensor, Tensor]:
    if q.size(0) == 0:
        return q.new_empty(0, q.size(1), v.size(2)), q.new_empty(0, q.size(1), dtype=_acc(q.dtype))
    return _forward(q, k, v, bias, edge_kv, FusedPlan.unflatten(plan_tensors, plan_ints), scale, dropout, seed)


@_forward_op.register_fake
def _(q, k, v, bias, edge_kv, plan_tensors, plan_ints, scale, dropout, seed):
    return q.new_empty(q.size(0), q.size(1), v.size(2)), q.new_empty(q.size(0), q.size(1), dtype=_acc(q.dtype))


@torch.library.custom_op("graphattn::fused_backward", mutates_args=())
def _backward_op(d_out: Tensor, d_lse: Tensor | None, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None,
                 edge_kv: Tensor | None, out: Tensor, lse: Tensor, plan_tensors: list[Tensor], plan_ints: list[int],
                 scale: float, dropout: float, seed: Tensor | None, need_bias: bool,
                 need_ekv: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    if q.size(0) == 0:
        return (q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), _grad_buffer(bias, need_bias, q),
                _grad_buffer(edge_kv, need_ekv, q))
    plan = FusedPlan.unflatten(plan_tensors, plan_ints)
    return _backward(d_out, d_lse, q, k, v, bias, edge_kv, out, lse, plan, scale, dropout, seed, need_bias, need_ekv)


@_backward_op.register_fake
def _(d_out, d_lse, q, k, v, bias, edge_kv, out, lse, plan_tensors, plan_ints, scale, dropout, seed, need_bias, need_ekv):
    return (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v),
            torch.empty_like(bias) if need_bias else q.new_empty(0),
            torch.empty_like(edge_kv) if need_ekv else q.new_empty(0))


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, bias, edge_kv, plan_tensors, plan_ints, scale, dropout, seed = inputs
    ctx.save_for_backward(q, k, v, bias, edge_kv, *output, seed, *plan_tensors)
    ctx.plan_ints, ctx.scale, ctx.dropout = plan_ints, scale, dropout


def _grads(ctx, d_out: Tensor, d_lse: Tensor | None):
    if torch.is_grad_enabled():  # create_graph=True: a second derivative is asked for
        raise NotImplementedError("the fused kernel has no double backward (its backward is a Triton kernel); for "
                                  "Hessian-vector products use backend='scatter' or 'reference', whose backward is "
                                  "torch's own")
    q, k, v, bias, edge_kv, out, lse, seed, *plan_tensors = ctx.saved_tensors
    need_bias = bias is not None and ctx.needs_input_grad[3]
    need_ekv = edge_kv is not None and ctx.needs_input_grad[4]
    dq, dk, dv, d_bias, d_ekv = _backward_op(d_out, d_lse, q, k, v, bias, edge_kv, out, lse, plan_tensors, ctx.plan_ints,
                                             ctx.scale, ctx.dropout, seed, need_bias, need_ekv)
    return (dq, dk, dv, d_bias if need_bias else None, d_ekv if need_ekv else None,
            [None] * len(plan_tensors), None, None, None, None)


_forward_op.register_autograd(_grads, setup_context=_setup_context)


# ---------------------------------------------------------------------- the public function
def fused_attention(q: Tensor, k: Tensor, v: Tensor, plan: FusedPlan, *, scale: float, bias: Tensor | None = None,
                    edge_kv: Tensor | None = None, dropout: float = 0.0, training: bool = False,
                    seed: int | None = None) -> tuple[Tensor, Tensor]:
    """``(out [N, H, C_v], lse [N, H])`` of the module docstring, both differentiable.

    Args:
        q, k: ``[N, H, C]`` queries and keys; v: ``[N, H, C_v]`` values (same dtype and device).
        plan: :func:`~graphattn.ops.fused_plan.plan_fused` of the graph, on ``q``'s device.
        scale: the dot-product scale (``1 / sqrt(C)`` for standard attention).
        bias: ``[E, H]`` per-edge score bias, in the caller's edge order.
        edge_kv: ``[E, H, C]`` edge features added to keys and values (needs ``C_v == C``).
        dropout, training: dropout on the attention weights while training.
        seed: the Philox seed of the dropout (same seed, same output and gradients); default drawn
            from torch's generator on ``q``'s device.

    ``lse`` is float32 (float64 for float64 inputs); ``out`` has ``q``'s dtype.
    """
    _check(q, k, v, plan, bias, edge_kv)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
    drop = dropout > 0 and training
    n, heads, channels = q.shape
    reasons = fused_unsupported(q.device, q.dtype, heads=heads, channels=channels, value_channels=v.size(2),
                                num_edges=plan.num_edges, edge_kv=edge_kv is not None, dropout=drop)
    if reasons:
        raise ValueError("fused_attention cannot run this: " + "; ".join(reasons))
    seed_t = _seed(seed, q.device) if drop else None
    tensors, ints = plan.flatten()
    contiguous = [None if t is None else t.contiguous() for t in (q, k, v, bias, edge_kv)]
    return _forward_op(*contiguous, tensors, ints, float(scale), float(dropout) if drop else 0.0, seed_t)


def dropout_keep(plan: FusedPlan, heads: int, dropout: float, seed: int) -> Tensor:
    """``[E, H]`` bool: which edges (caller's order) and heads the kernel keeps under dropout
    ``dropout`` with ``seed`` (kept weights are scaled by ``1 / (1 - dropout)``)."""
    reasons = fused_unsupported(plan.device)
    if reasons:
        raise ValueError("dropout_keep cannot run this: " + "; ".join(reasons))
    keep = torch.empty(plan.num_edges, heads, dtype=torch.int8, device=plan.device)
    block_h = _pow2(heads)
    if plan.num_edges:
        _triton_kernels()._keep_mask_kernel[(triton.cdiv(plan.num_edges, 64),)](
            _seed(seed, plan.device), keep, plan.num_edges, heads, float(dropout), BLOCK_E=64, BLOCK_H=block_h)
    return keep.bool()


def _seed(seed: int | None, device: torch.device) -> Tensor:
    if seed is None:
        return torch.randint(0, 2**62, (1,), device=device)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63), got {seed!r}")
    return torch.tensor([seed], dtype=torch.long, device=device)


def _check(q: Tensor, k: Tensor, v: Tensor, plan: FusedPlan, bias: Tensor | None, edge_kv: Tensor | None) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or not t.is_floating_point() or t.dim() != 3:
            got = f"{t.dtype} {list(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
            raise TypeError(f"{name} must be a float tensor of shape [N, H, C], got {got}")
    if k.shape != q.shape or v.shape[:2] != q.shape[:2]:
        raise ValueError(f"q, k must be [N, H, C] and v [N, H, C_v], got {list(q.shape)}, {list(k.shape)}, {list(v.shape)}")
    if k.dtype != q.dtype or v.dtype != q.dtype or k.device != q.device or v.device != q.device:
        raise TypeError(f"k and v must have q's dtype and device ({q.dtype}, {q.device})")
    if not isinstance(plan, FusedPlan):
        raise TypeError(f"plan must be a FusedPlan (plan_fused(edge_index, num_nodes)), got {type(plan).__name__}")
    if plan.num_nodes != q.size(0) or plan.device != q.device:
        raise ValueError(f"plan is for {plan.num_nodes} nodes on {plan.device}; q has {q.size(0)} on {q.device}")
    n, heads, channels = q.shape
    for name, given, shape in (("bias", bias, (plan.num_edges, heads)),
                               ("edge_kv", edge_kv, (plan.num_edges, heads, channels))):
        if given is None:
            continue
        if not isinstance(given, Tensor) or not given.is_floating_point() or given.device != q.device:
            raise TypeError(f"{name} must be a float tensor on {q.device} of shape {list(shape)}")
        if given.shape != shape:
            raise ValueError(f"{name} must have shape {list(shape)} (edges in the caller's order), got {list(given.shape)}")
    if edge_kv is not None and (edge_kv.dtype != q.dtype or v.size(2) != channels):
        raise ValueError(f"edge_kv needs q's dtype ({q.dtype}) and v with C_v = C = {channels}")


class Fused(Kernel[FusedPlan]):
    """The fused Triton kernel as one of the dispatcher's kernels: ``auto`` picks it on CUDA for
    explicit graphs sparse enough that dense declines them; forced (``backend="fused"``) it also runs
    on CPU tensors under the interpreter."""

    name = backend = "fused"
    half_on = frozenset({"cuda", "cpu"})  # it accumulates half inputs in float32 itself

    def unsupported(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        heads, channels, value_channels = spec.shape
        reasons = [r for r in dot_only(spec) if r != EDGE_KV]  # it adds edge features to keys and values itself
        if spec.transformed:
            reasons.append("a torch.func transform (its custom op has no functorch rule in this torch)")
        edges = graph.num_edges if graph.pattern is None else None  # a pattern's edges are not counted to refuse
        return reasons + fused_unsupported(spec.device, spec.dtype, heads=heads, channels=channels,
                                           value_channels=value_channels, num_edges=edges,
                                           edge_kv=spec.edge_kv is not None, dropout=spec.dropout > 0 and spec.training)

    def declines(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        if spec.device != "cuda":
            return ["off CUDA it runs under Triton's interpreter, for tests"]
        if graph.pattern is not None:
            return ["a pattern: the tile kernels and FlexAttention compute it without its edge list"]
        return []

    def plan(self, graph: AttentionGraph) -> FusedPlan:
        return plan_fused(graph.edge_index, graph.num_nodes, csr=graph.csr())

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: FusedPlan, *,
                need_weights: bool) -> KernelResult:
        bias = None
        if spec.bias is not None:
            src, dst = graph.edge_index
            bias = spec.bias(dst, src).to(q.dtype)  # (E, H) in the caller's edge order
        out, lse = fused_attention(q, k, v, plan, scale=spec.scale, bias=bias, edge_kv=spec.edge_kv,
                                   dropout=spec.dropout, training=spec.training)
        return KernelResult(out, lse.to(q.dtype))
