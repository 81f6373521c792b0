"""GAT's and GATv2's scores on the sparse kernel: no per-edge copy of a row for GAT, none kept for GATv2.

On the graph's CSR (sorted by query, then key; see :mod:`graphattn.ops.sparse`), per head:

.. math::
    \\text{GAT:}\\quad s_{ij} = \\operatorname{LeakyReLU}(a_i + b_j + c_{ij}), \\qquad
    \\text{GATv2:}\\quad s_{ij} = \\mathbf{a}^\\top \\operatorname{LeakyReLU}(\\mathbf{q}_i + \\mathbf{k}_j + \\mathbf{e}_{ij})

    \\alpha_{ij} = \\operatorname{softmax}_{j \\in N(i)}(s_{ij} + b^{pos}_{ij}), \\qquad
    O = (\\alpha \\odot \\text{keep})\\, V \\;(\\operatorname{SpMM})

GAT's scores are sums of per-node scalars (``a_i = a_dst . W x_i``, ``b_j = a_src . W x_j``) and a
per-edge scalar (``c_ij = a_edge . W_e e_ij``): gathered per edge as ``[H, E]`` numbers, never as
``[E, H, C]`` rows. Their backward is written by hand: with ``g = dS * LeakyReLU'``,

.. math::
    da_i = \\textstyle\\sum_{j} g_{ij}, \\qquad db_j = \\sum_{i} g_{ij}, \\qquad dc_{ij} = g_{ij}

(scatter sums over the CSR's rows and columns). GATv2's score needs the vector ``q_i + k_j + e_ij``
of every edge: it is formed chunk by chunk (at most :data:`CHUNK` numbers at a time) and dropped,
and the backward forms it again, so the layer keeps O(E H) numbers, not O(E H C). The softmax and
the product with the values are one more custom op (:func:`_softmax_spmm`), whose backward is the
sparse kernel's (``dS = alpha (dA - dO_i . O_i + d lse_i)``, ``dV = (alpha keep)^T dO``). Every
step is a ``torch.library`` custom op, so ``torch.compile(fullgraph=True)`` keeps each as one node.
Slow twins: :mod:`graphattn.ops.scatter` and :func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .csr import SparsePlan, heads_first, sddmm, spmm
from .graph import AttentionGraph
from .kernel import KernelResult
from .scores import ScoreSpec

__all__ = ["sparse_gat", "CHUNK"]

#: The most numbers of GATv2's per-edge vectors alive at once (per chunk of edges).
CHUNK = 1 << 22


# ---------------------------------------------------------------------------------------- GAT scores
@torch.library.custom_op("graphattn::gat_scores", mutates_args=())
def _gat_scores(a: Tensor, b: Tensor, c: Tensor | None, row: Tensor, col: Tensor, slope: float) -> Tensor:
    """``[H, E]``: ``LeakyReLU(a[:, row] + b[:, col] + c)`` for ``a, b [H, N]``, ``c [H, E]``."""
    pre = a.index_select(1, row) + b.index_select(1, col)
    if c is not None:
        pre += c
    return F.leaky_relu_(pre, slope)


@_gat_scores.register_fake
def _(a, b, c, row, col, slope):
    return a.new_empty(a.size(0), row.size(0))


def _gat_setup(ctx, inputs, output) -> None:
    a, b, c, row, col, slope = inputs
    ctx.save_for_backward(a, b, c, row, col)  # O(N H) scalars: the per-edge sums are formed again
    ctx.slope = slope


def _gat_backward(ctx, d_s):
    a, b, c, row, col = ctx.saved_tensors
    pre = a.index_select(1, row) + b.index_select(1, col)
    if c is not None:
        pre += c
    d_pre = torch.ops.aten.leaky_relu_backward(d_s, pre, ctx.slope, False)  # (H, E)
    d_a = torch.zeros_like(a).index_add_(1, row, d_pre)  # scatter sums over the rows
    d_b = torch.zeros_like(b).index_add_(1, col, d_pre)  # and over the columns
    return d_a, d_b, (d_pre if c is not None else None), None, None, None


_gat_scores.register_autograd(_gat_backward, setup_context=_gat_setup)


# -------------------------------------------------------------------------------------- GATv2 scores
def _parts(num_edges: int, width: int) -> list[slice]:
    """Consecutive slices of the edges, each of at most :data:`CHUNK` / ``width`` edges."""
    step = max(1, CHUNK // max(width, 1))
    return [slice(start, start + step) for start in range(0, num_edges, step)]


def _pre(q: Tensor, k: Tensor, e: Tensor | None, row: Tensor, col: Tensor, perm: Tensor, part: slice) -> Tensor:
    """``q_i + k_j + e_ij`` of the sorted edges in ``part``: ``[c, H, C]``."""
    pre = q.index_select(0, row[part]) + k.index_select(0, col[part])
    if e is not None:
        pre += e.index_select(0, perm[part])
    return pre


@torch.library.custom_op("graphattn::gatv2_scores", mutates_args=())
def _gatv2_scores(q: Tensor, k: Tensor, e: Tensor | None, att: Tensor, row: Tensor, col: Tensor, perm: Tensor,
                  slope: float) -> Tensor:
    """``[H, E]``: ``att_h . LeakyReLU(q_i + k_j + e_ij)`` on the sorted edges (``row``, ``col``) for
    ``q [N, H, C]``, ``k [N, H, C]`` and ``e [E, H, C]`` in the caller's order (``perm`` maps)."""
    out = q.new_empty(att.size(0), row.size(0))
    for part in _parts(row.size(0), att.numel()):
        out[:, part] = (F.leaky_relu_(_pre(q, k, e, row, col, perm, part), slope) * att).sum(dim=-1).T
    return out


@_gatv2_scores.register_fake
def _(q, k, e, att, row, col, perm, slope):
    return q.new_empty(att.size(0), row.size(0))


@torch.library.custom_op("graphattn::gatv2_scores_backward", mutates_args=())
def _gatv2_backward_op(d_s: Tensor, q: Tensor, k: Tensor, e: Tensor | None, att: Tensor, row: Tensor, col: Tensor,
                       perm: Tensor, slope: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(dq, dk, de, d_att)``; ``de`` is empty without ``e``."""
    d_q, d_k, d_att = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(att)
    d_e = torch.zeros_like(e) if e is not None else q.new_zeros(0)
    for part in _parts(row.size(0), att.numel()):
        pre = _pre(q, k, e, row, col, perm, part)  # formed again, not kept from the forward
        ds = d_s[:, part].T.unsqueeze(-1)  # (c, H, 1)
        d_att += (F.leaky_relu(pre, slope) * ds).sum(dim=0)
        g = torch.ops.aten.leaky_relu_backward((ds * att).expand_as(pre), pre, slope, False)  # d pre, (c, H, C)
        d_q.index_add_(0, row[part], g)
        d_k.index_add_(0, col[part], g)
        if e is not None:
            d_e.index_copy_(0, perm[part], g)
    return d_q, d_k, d_e, d_att


@_gatv2_backward_op.register_fake
def _(d_s, q, k, e, att, row, col, perm, slope):
    return q.new_empty(q.shape), k.new_empty(k.shape), (e.new_empty(e.shape) if e is not None else q.new_empty(0)), \
        att.new_empty(att.shape)


def _gatv2_setup(ctx, inputs, output) -> None:
    q, k, e, att, row, col, perm, slope = inputs
    ctx.save_for_backward(q, k, e, att, row, col, perm)
    ctx.slope = slope


def _gatv2_backward(ctx, d_s):
    q, k, e, att, row, col, perm = ctx.saved_tensors
    d_q, d_k, d_e, d_att = _gatv2_backward_op(d_s.contiguous(), q, k, e, att, row, col, perm, ctx.slope)
    return d_q, d_k, (d_e if e is not None else None), d_att, None, None, None, None


_gatv2_scores.register_autograd(_gatv2_backward, setup_context=_gatv2_setup)


# ----------------------------------------------------------------------------- softmax and SpMM
@torch.library.custom_op("graphattn::softmax_spmm", mutates_args=())
def _softmax_spmm(scores: Tensor, v: Tensor, keep: Tensor | None, rowptr: Tensor, col: Tensor, t_rowptr: Tensor,
                  t_col: Tensor, t_order: Tensor, row: Tensor, slot: Tensor | None, heads: int
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """``(out [H N, C_v], lse [H, N], alpha [H, E])`` for ``scores [H, E]`` on the sorted edges, the
    values ``v [H N, C_v]`` head after head and an optional dropout mask ``keep [H, E]``."""
    n = v.size(0) // heads
    row_max = scores.new_full((heads, n), float("-inf")).scatter_reduce_(1, row.expand_as(scores), scores, "amax")
    row_max = torch.where(row_max > float("-inf"), row_max, 0.0)  # a row of -inf scores: weights 0, lse -inf
    alpha = (scores - row_max.index_select(1, row)).exp_()
    denom = alpha.new_zeros(heads, n).index_add_(1, row, alpha)
    alpha /= denom.clamp(min=torch.finfo(denom.dtype).tiny).index_select(1, row)
    out = spmm(rowptr, col, slot, alpha if keep is None else alpha * keep, v)  # (H N, C_v)
    return out, denom.log() + row_max, alpha


@_softmax_spmm.register_fake
def _(scores, v, keep, rowptr, col, t_rowptr, t_col, t_order, row, slot, heads):
    return v.new_empty(v.shape), scores.new_empty(heads, v.size(0) // heads), scores.new_empty(scores.shape)


@torch.library.custom_op("graphattn::softmax_spmm_backward", mutates_args=())
def _softmax_spmm_backward_op(d_out: Tensor, d_lse: Tensor, d_alpha: Tensor, v: Tensor, out: Tensor, alpha: Tensor,
                              keep: Tensor | None, rowptr: Tensor, col: Tensor, t_rowptr: Tensor, t_col: Tensor,
                              t_order: Tensor, row: Tensor, slot: Tensor | None, heads: int) -> tuple[Tensor, Tensor]:
    """``(d_scores [H, E], dv)``, as in the module docstring."""
    n = v.size(0) // heads
    d_v = spmm(t_rowptr, t_col, slot, alpha if keep is None else alpha * keep, d_out, t_order)  # (alpha keep)^T dO
    d_a = sddmm(rowptr, col, slot, d_out, v, heads)  # (H, E): dO_i . v_j
    if keep is not None:
        d_a *= keep
    d_a += d_alpha
    row_dot = torch.linalg.vecdot(d_out, out).view(heads, n).index_add(1, row, alpha * d_alpha)
    return d_a.sub_((row_dot - d_lse).index_select(1, row)).mul_(alpha), d_v


@_softmax_spmm_backward_op.register_fake
def _(d_out, d_lse, d_alpha, v, out, alpha, keep, rowptr, col, t_rowptr, t_col, t_order, row, slot, heads):
    return alpha.new_empty(alpha.shape), v.new_empty(v.shape)


def _softmax_setup(ctx, inputs, output) -> None:
    scores, v, keep, rowptr, col, t_rowptr, t_col, t_order, row, slot, heads = inputs
    out, _, alpha = output
    ctx.save_for_backward(v, out, alpha, keep, rowptr, col, t_rowptr, t_col, t_order, row, slot)
    ctx.heads = heads


def _softmax_backward(ctx, d_out, d_lse, d_alpha):
    if torch.is_grad_enabled():
        raise NotImplementedError("the sparse kernel has no double backward (its backward is written by hand); "
                                  "for Hessian-vector products use backend='scatter' or 'reference'")
    v, out, alpha, keep, rowptr, col, t_rowptr, t_col, t_order, row, slot = ctx.saved_tensors
    d_out = torch.zeros_like(out) if d_out is None else d_out.contiguous()
    d_lse = alpha.new_zeros(ctx.heads, v.size(0) // ctx.heads) if d_lse is None else d_lse
    d_alpha = torch.zeros_like(alpha) if d_alpha is None else d_alpha
    d_scores, d_v = _softmax_spmm_backward_op(d_out, d_lse, d_alpha, v, out, alpha, keep, rowptr, col, t_rowptr,
                                              t_col, t_order, row, slot, ctx.heads)
    return (d_scores, d_v) + (None,) * 9


_softmax_spmm.register_autograd(_softmax_backward, setup_context=_softmax_setup)


# ------------------------------------------------------------------------------------ the kernel path
def sparse_gat(q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: SparsePlan, *,
               need_weights: bool) -> KernelResult:
    """The sparse kernel for ``"gat"`` and ``"gatv2"`` scores (see the module docstring)."""
    n, heads, _ = q.shape
    dtype = torch.promote_types(q.dtype, torch.float32)  # half inputs: float32 products, results cast back
    rowptr, col, t_rowptr, t_col, t_order = plan.heads(heads)
    keys = graph.csr().col  # (E,) the key of each sorted edge
    if spec.score == "gat":
        c = None if spec.edge_k is None else spec.edge_k.sum(dim=-1).index_select(0, plan.perm).T.to(dtype)
        scores = _gat_scores(q.sum(dim=-1).T.to(dtype), k.sum(dim=-1).T.to(dtype), c, plan.row, keys,
                             spec.negative_slope)  # (H, E)
    else:
        e = None if spec.edge_k is None else spec.edge_k.to(dtype)
        assert spec.att is not None  # ops.attention refuses gatv2 scores without att [H, C]
        scores = _gatv2_scores(q.to(dtype), k.to(dtype), e, spec.att.to(dtype), plan.row, keys, plan.perm,
                               spec.negative_slope)
    if spec.bias is not None:
        src, dst = graph.edge_index
        scores = scores + spec.bias(dst.index_select(0, plan.perm), src.index_select(0, plan.perm)).T.to(dtype)
    keep = None
    if spec.keep is not None:
        keep = spec.keep.index_select(0, plan.perm).T.to(dtype)  # (H, E) sorted
    elif spec.dropout > 0 and spec.training:
        keep = F.dropout(scores.new_ones(scores.shape), spec.dropout)
    out, lse, alpha = _softmax_spmm(scores, heads_first(v.to(dtype)), keep, rowptr, col, t_rowptr, t_col, t_order,
                                    plan.row, plan.slot, heads)
    out = out.view(heads, n, -1).transpose(0, 1).to(q.dtype)  # (N, H, C_v)
    weights = alpha.T.index_select(0, plan.rank).to(q.dtype) if need_weights else None  # (E, H), caller's order
    return KernelResult(out, lse.T.to(q.dtype), weights)
