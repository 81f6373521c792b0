"""The sparse kernel: attention over an arbitrary edge list with sparse-matrix products.

On the query-sorted CSR of the graph (row ``i`` = query, columns = its keys), per head ``h``:

.. math::
    S^h = \\operatorname{SDDMM}(A, Q^h, K^h) \\cdot s + B^h, \\qquad
    \\alpha^h_{ij} = \\frac{e^{S^h_{ij}}}{\\sum_{l \\in N(i)} e^{S^h_{il}}}, \\qquad
    O^h = \\alpha^h V^h \\;(\\operatorname{SpMM})

``SDDMM`` computes ``q_i . k_j`` only where the graph has an edge (``torch.sparse.sampled_addmm``),
so no per-edge copy of a query, key or value is ever made: the kernel keeps O(E H) numbers per
layer (scores, weights), where gathering keeps O(E H C). The heads are laid block-diagonally
(``H N x H N``, ``H E`` entries) so each product is one call. The backward is written by hand
(torch's generic sparse autograd is orders of magnitude slower):

.. math::
    dV^h = \\alpha^{h\\top} dO^h, \\quad dA^h = \\operatorname{SDDMM}(A, dO^h, V^h) + d\\alpha^h, \\quad
    dS^h_{ij} = \\alpha^h_{ij} (dA^h_{ij} - dO^h_i \\cdot O^h_i - \\textstyle\\sum_l \\alpha^h_{il} d\\alpha^h_{il}
    + d\\,\\mathrm{lse}^h_i), \\quad
    dQ^h = s\\, dS^h K^h, \\quad dK^h = s\\, dS^{h\\top} Q^h

(``sum_j alpha_ij dA_ij = dO_i . O_i``, as in FlashAttention, also under dropout). Duplicate
edges are separate entries (each counts), a query without edges gets zeros, and the weights
come back in the caller's edge order. The whole computation is one ``torch.library`` custom op
(``graphattn::sparse_attention``) with a registered shape function and backward, so
``torch.compile(fullgraph=True)`` keeps it as one node. Half-precision inputs reach it as
float32 copies (the dispatcher's rule for kernels without half-precision accumulation). The
same code runs on CUDA (cuSPARSE). GAT's and GATv2's scores run on the same plan
(:mod:`graphattn.ops.sparse_gat`). Slow twin:
:func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .csr import SparsePlan, heads_first, plan_sparse, sddmm, spmm
from .graph import AttentionGraph
from .kernel import DOT_ONLY, EDGE_KV, Kernel, KernelResult
from .scores import ScoreSpec
from .sparse_gat import sparse_gat

__all__ = ["SparseCSR", "SparsePlan"]


@torch.library.custom_op("graphattn::sparse_attention", mutates_args=())
def _sparse_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, rowptr: Tensor, col: Tensor,
                      t_rowptr: Tensor, t_col: Tensor, t_order: Tensor, row: Tensor, slot: Tensor | None, heads: int,
                      scale: float, dropout: float, given_keep: Tensor | None = None
                      ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(out [H N, C_v], lse [H, N], alpha [H, E], keep [H, E] or [0])`` for heads-first
    ``q, k [H N, C]``, ``v [H N, C_v]``, on the block-diagonal CSR ``rowptr, col`` of the
    (query, key) pairs (its transpose ``t_*`` is for the backward); ``row [E]`` the query of each
    sorted edge, ``slot [E]`` its pair. A caller's dropout mask ``given_keep [H, E]`` replaces
    ``dropout`` (and the returned ``keep`` is then empty: the caller holds it)."""
    n = q.size(0) // heads
    scores = sddmm(rowptr, col, slot, q, k, heads).mul_(scale)  # (H, E); in place: no per-edge copy is kept
    if bias is not None:
        scores += bias
    # index_select on the (H, N) row numbers: several times faster than gather or [] indexing on CPU
    row_max = scores.new_full((heads, n), float("-inf")).scatter_reduce_(1, row.expand_as(scores), scores, "amax")
    row_max = torch.where(row_max > float("-inf"), row_max, 0.0)  # a row of -inf scores: weights 0, lse -inf
    alpha = scores.sub_(row_max.index_select(1, row)).exp_()
    denom = alpha.new_zeros(heads, n).index_add_(1, row, alpha)
    lse = denom.log() + row_max
    alpha /= denom.clamp(min=torch.finfo(denom.dtype).tiny).index_select(1, row)
    keep = alpha.new_zeros(0)
    if given_keep is None and dropout > 0:
        keep = (torch.rand_like(alpha) >= dropout).to(alpha.dtype) / (1 - dropout)
    mask = given_keep if given_keep is not None else keep if dropout > 0 else None
    out = spmm(rowptr, col, slot, alpha if mask is None else alpha * mask, v)  # (H N, C_v)
    return out, lse, alpha, keep


@_sparse_attention.register_fake
def _(q, k, v, bias, rowptr, col, t_rowptr, t_col, t_order, row, slot, heads, scale, dropout, given_keep=None):
    n, e = q.size(0) // heads, row.size(0)
    return (v.new_empty(v.shape), q.new_empty(heads, n), q.new_empty(heads, e),
            q.new_empty(heads, e) if dropout > 0 and given_keep is None else q.new_empty(0))


@torch.library.custom_op("graphattn::sparse_attention_backward", mutates_args=())
def _sparse_backward(d_out: Tensor, d_lse: Tensor, d_alpha: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                     alpha: Tensor, keep: Tensor, rowptr: Tensor, col: Tensor, t_rowptr: Tensor, t_col: Tensor,
                     t_order: Tensor, row: Tensor, slot: Tensor | None, heads: int, scale: float
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(dq, dk, dv, d_bias)`` as in the module docstring."""
    n = q.size(0) // heads
    weights = alpha if keep.numel() == 0 else alpha * keep
    d_v = spmm(t_rowptr, t_col, slot, weights, d_out, t_order)  # dV = A^T dO
    d_a = sddmm(rowptr, col, slot, d_out, v, heads)  # (H, E): dO_i . v_j
    if keep.numel():
        d_a *= keep
    d_a += d_alpha
    row_dot = torch.linalg.vecdot(d_out, out).view(heads, n).index_add(1, row, alpha * d_alpha)
    d_s = d_a.sub_((row_dot - d_lse).index_select(1, row)).mul_(alpha)  # (H, E), the bias gradient
    scaled = d_s * scale  # s dS, for both products
    return spmm(rowptr, col, slot, scaled, k), spmm(t_rowptr, t_col, slot, scaled, q, t_order), d_v, d_s


@_sparse_backward.register_fake
def _(d_out, d_lse, d_alpha, q, k, v, out, alpha, keep, rowptr, col, t_rowptr, t_col, t_order, row, slot, heads, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), alpha.new_empty(alpha.shape)


def _setup(ctx, inputs, output) -> None:
    q, k, v, bias, rowptr, col, t_rowptr, t_col, t_order, row, slot, heads, scale, dropout, given_keep = inputs
    out, _, alpha, keep = output
    keep = keep if given_keep is None else given_keep
    ctx.save_for_backward(q, k, v, out, alpha, keep, rowptr, col, t_rowptr, t_col, t_order, row, slot)
    ctx.heads, ctx.scale, ctx.has_bias = heads, scale, bias is not None


def _backward(ctx, d_out, d_lse, d_alpha, d_keep):
    if torch.is_grad_enabled():  # create_graph=True: a second derivative is asked for
        raise NotImplementedError("the sparse kernel has no double backward (its backward is written by hand); "
                                  "for Hessian-vector products use backend='scatter' or 'reference', whose backward "
                                  "is torch's own")
    q, k, v, out, alpha, keep, rowptr, col, t_rowptr, t_col, t_order, row, slot = ctx.saved_tensors
    d_out = torch.zeros_like(out) if d_out is None else d_out.contiguous()
    d_lse = alpha.new_zeros(ctx.heads, q.size(0) // ctx.heads) if d_lse is None else d_lse
    d_alpha = torch.zeros_like(alpha) if d_alpha is None else d_alpha
    d_q, d_k, d_v, d_s = _sparse_backward(d_out, d_lse, d_alpha, q, k, v, out, alpha, keep, rowptr, col,
                                          t_rowptr, t_col, t_order, row, slot, ctx.heads, ctx.scale)
    return (d_q, d_k, d_v, d_s if ctx.has_bias else None) + (None,) * 11


_sparse_attention.register_autograd(_backward, setup_context=_setup)


class SparseCSR(Kernel[SparsePlan]):
    """SDDMM, row softmax and SpMM on the graph's CSR (see the module docstring)."""

    name = backend = "sparse"

    def unsupported(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        reasons = [DOT_ONLY] if spec.score == "additive" else []
        if spec.edge_kv is not None:
            reasons.append(EDGE_KV)
        if spec.edge_k is not None and spec.score == "dot":
            reasons.append("edge features in dot-product scores only (edge_k; scatter and reference compute them)")
        if spec.transformed:
            reasons.append("a torch.func transform (its custom op has no functorch rule in this torch; scatter and "
                           "dense compute under grad / vmap)")
        return reasons

    def declines(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        if graph.pattern is not None and not graph.pattern.has_generator:
            return ["the pattern has no edge generator: its edges would come from a full mask scan"]
        return []

    def footprint(self, graph: AttentionGraph, spec: ScoreSpec, need_weights: bool) -> int:
        return graph.edge_bound() * (40 + 4 * spec.shape[0] * max(spec.dtype.itemsize, 4))  # plan; scores, weights

    def plan(self, graph: AttentionGraph) -> SparsePlan:
        return plan_sparse(graph)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: SparsePlan, *,
                need_weights: bool) -> KernelResult:
        if spec.score != "dot":  # GAT's and GATv2's scores: their own module (it builds on this one's products)
            return sparse_gat(q, k, v, graph, spec, plan, need_weights=need_weights)
        n, heads, _ = q.shape
        rowptr, col, t_rowptr, t_col, t_order = plan.heads(heads)
        bias = None
        if spec.bias is not None:
            src, dst = graph.edge_index
            bias = spec.bias(dst.index_select(0, plan.perm), src.index_select(0, plan.perm)).T.to(q.dtype)  # (H, E)
        out, lse, alpha, _ = _sparse_attention(
            heads_first(q), heads_first(k), heads_first(v), bias, rowptr, col, t_rowptr, t_col,
            t_order, plan.row, plan.slot, heads, spec.scale, spec.dropout if spec.training else 0.0,
            None if spec.keep is None else spec.keep.index_select(0, plan.perm).T.to(q.dtype))
        out = out.view(heads, n, -1).transpose(0, 1)  # (N, H, C_v)
        if not need_weights:
            return KernelResult(out, lse.T)
        return KernelResult(out, lse.T, alpha.T.index_select(0, plan.rank))  # weights in the caller's edge order
