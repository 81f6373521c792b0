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
    dV^h = \\alpha^{h\\top} dO^h, \\quad dA^h = \\operatorname{SDDMM}(A, dO^h, V^h), \\quad
    dS^h_{ij} = \\alpha^h_{ij} (dA^h_{ij} - dO^h_i \\cdot O^h_i), \\quad
    dQ^h = s\\, dS^h K^h, \\quad dK^h = s\\, dS^{h\\top} Q^h

(``sum_j alpha_ij dA_ij = dO_i . O_i``, as in FlashAttention, also under dropout). Duplicate
edges are separate entries (each counts), a query without edges gets zeros, and the weights
come back in the caller's edge order. The same code runs on CUDA (cuSPARSE). Slow twin:
:func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import Tensor

from .dense import dense_unsupported
from .graph import AttentionGraph
from .scatter import falls_back_to_scatter
from .scores import ScoreSpec

__all__ = ["sparse_attention", "sparse_unsupported", "SparsePlan"]


def sparse_unsupported(graph: AttentionGraph, spec: ScoreSpec) -> str | None:
    """Why the sparse kernel cannot run this (``None`` if it can): what the dense kernel cannot
    either, additive scores and edge features, which need per-edge per-channel values."""
    reason = dense_unsupported(graph, spec)
    return None if reason is None else f"{reason} (per-edge per-channel values: scatter computes them)"


class SparsePlan(NamedTuple):
    """The block-diagonal CSR of all heads, forward and transposed (cached per graph and heads).

    Heads are laid one after the other (row ``h N + i`` is query ``i`` in head ``h``): each
    product then reads one head's ``N x C`` block at a time, which measured 1.3-1.5x faster on
    CPU than interleaving the heads node by node, more than the head-first copies cost. Edges
    are sorted by (query, key): ``perm [E]`` maps a sorted edge to the caller's edge, ``rank [E]``
    is its inverse and ``row [E]`` a sorted edge's query. The products run on the ``U`` distinct
    (query, key) pairs (a duplicate edge has the same score; its weight adds to the pair's):
    ``slot [E]`` is each edge's pair, or ``None`` when there are no duplicates; ``rowptr, col``
    the ``H N x H N`` CSR of the pairs of all heads; ``t_rowptr, t_col`` the CSR of its transpose
    and ``t_order [H U]`` the position of each transposed entry in the forward order. CSR indices
    are int32 where they fit: MKL's SpMM converts int64 ones on every call, and SDDMM runs faster.
    """

    perm: Tensor
    rank: Tensor
    row: Tensor
    slot: Tensor | None
    rowptr: Tensor
    col: Tensor
    t_rowptr: Tensor
    t_col: Tensor
    t_order: Tensor


def plan_sparse(graph: AttentionGraph, heads: int) -> SparsePlan:
    n, device = graph.num_nodes, graph.device
    src, dst = graph.edge_index
    code, perm = torch.sort(dst * n + src, stable=True)  # by query, then key; duplicates keep order
    pairs, slot = torch.unique_consecutive(code, return_inverse=True)
    offsets = torch.arange(heads, device=device) * n  # (H,)
    rows_all = (pairs // n + offsets[:, None]).flatten()  # (H U,)
    cols_all = (pairs % n + offsets[:, None]).flatten()
    size = heads * n
    t_order = torch.sort(cols_all * size + rows_all, stable=True).indices  # the transpose, by key then query
    index = torch.int32 if max(size, cols_all.numel()) < 2**31 else torch.long
    rank = torch.empty_like(perm).index_copy_(0, perm, torch.arange(perm.numel(), device=device))
    return SparsePlan(perm, rank, dst[perm], slot if pairs.numel() < code.numel() else None,
                      _rowptr(rows_all, size).to(index), cols_all.to(index),
                      _rowptr(cols_all, size).to(index), rows_all[t_order].to(index), t_order)


def _rowptr(rows: Tensor, size: int) -> Tensor:
    counts = torch.bincount(rows, minlength=size)
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def _csr(rowptr: Tensor, col: Tensor, values: Tensor, size: int) -> Tensor:
    with warnings.catch_warnings():  # torch announces CSR as beta once per process; the kernel is tested
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(rowptr, col, values, (size, size), check_invariants=False)


def _sddmm(plan: SparsePlan, a: Tensor, b: Tensor, heads: int) -> Tensor:
    """``[H, E]``: ``a_i . b_j`` on every edge, for ``a, b [H N, C]`` laid head after head."""
    pattern = _csr(plan.rowptr, plan.col, a.new_zeros(plan.col.numel()), a.size(0))
    pairs = torch.sparse.sampled_addmm(pattern, a, b.T, beta=0.0).values().view(heads, -1)  # (H, U)
    return pairs if plan.slot is None else pairs.index_select(1, plan.slot)


def _spmm(plan: SparsePlan, values: Tensor, x: Tensor, transpose: bool = False) -> Tensor:
    """``A x`` (or ``A^T x``) for edge values ``[H, E]`` on the block-diagonal CSR and ``x [H N, C]``."""
    if plan.slot is not None:  # duplicate edges: their weights add up on their pair
        values = values.new_zeros(values.size(0), plan.col.numel() // values.size(0)).index_add_(1, plan.slot, values)
    values, size = values.flatten(), x.size(0)
    if transpose:
        return _csr(plan.t_rowptr, plan.t_col, values.index_select(0, plan.t_order), size) @ x
    return _csr(plan.rowptr, plan.col, values, size) @ x


def _heads_first(t: Tensor) -> Tensor:
    """``[N, H, C] -> [H N, C]``, head after head."""
    return t.transpose(0, 1).reshape(-1, t.size(-1))


class _SparseAttention(torch.autograd.Function):
    """``(out [H N, C_v], alpha [H, E])`` with the hand-written backward of the module docstring."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, plan: SparsePlan, n: int,
                scale: float, dropout: float, training: bool) -> tuple[Tensor, Tensor]:
        heads = q.size(0) // max(n, 1)
        scores = _sddmm(plan, q, k, heads).mul_(scale)  # (H, E); in place: no per-edge copy is kept
        if bias is not None:
            scores += bias
        # index_select on the (H, N) row numbers: several times faster than gather or [] indexing on CPU
        row_max = scores.new_full((heads, n), float("-inf")).scatter_reduce_(1, plan.row.expand_as(scores), scores, "amax")
        alpha = scores.sub_(row_max.index_select(1, plan.row)).exp_()
        alpha /= alpha.new_zeros(heads, n).index_add_(1, plan.row, alpha).index_select(1, plan.row)
        keep = None
        if dropout > 0 and training:
            keep = (torch.rand_like(alpha) >= dropout).to(alpha.dtype) / (1 - dropout)
        out = _spmm(plan, alpha if keep is None else alpha * keep, v)  # (H N, C_v)
        ctx.save_for_backward(q, k, v, alpha, out, keep)
        ctx.plan, ctx.n, ctx.scale, ctx.has_bias = plan, n, scale, bias is not None
        return out, alpha

    @staticmethod
    def backward(ctx, d_out: Tensor, d_alpha: Tensor | None):
        q, k, v, alpha, out, keep = ctx.saved_tensors
        plan, n, scale = ctx.plan, ctx.n, ctx.scale
        heads = alpha.size(0)
        grads = [None] * 9
        d_out = d_out.contiguous()
        if ctx.needs_input_grad[2]:
            grads[2] = _spmm(plan, alpha if keep is None else alpha * keep, d_out, transpose=True)  # dV = A^T dO
        if not any(ctx.needs_input_grad[i] for i in (0, 1, 3)):
            return tuple(grads)
        d_a = _sddmm(plan, d_out, v, heads)  # (H, E): dO_i . v_j
        if keep is not None:
            d_a *= keep
        row_dot = torch.linalg.vecdot(d_out, out).view(heads, n)  # sum_j alpha_ij dA_ij = dO_i . O_i
        if d_alpha is not None:  # the returned weights were used too
            d_a += d_alpha
            row_dot = row_dot.index_add(1, plan.row, alpha * d_alpha)
        d_s = d_a.sub_(row_dot.index_select(1, plan.row)).mul_(alpha)  # (H, E)
        if ctx.needs_input_grad[3] and ctx.has_bias:
            grads[3] = d_s
        d_s = d_s * scale if grads[3] is not None else d_s.mul_(scale)  # s dS, for both products
        if ctx.needs_input_grad[0]:
            grads[0] = _spmm(plan, d_s, k)  # dQ = s dS K
        if ctx.needs_input_grad[1]:
            grads[1] = _spmm(plan, d_s, q, transpose=True)  # dK = s dS^T Q
        return tuple(grads)


@falls_back_to_scatter(sparse_unsupported)
def sparse_attention(
    q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, *, return_weights: bool = False
) -> tuple[Tensor, Tensor | None]:
    n, heads, _ = q.shape
    if n == 0:
        return v.new_zeros(v.shape), (q.new_zeros(0, heads) if return_weights else None)
    plan: SparsePlan = graph.cached(("sparse", heads), lambda: plan_sparse(graph, heads))
    bias = None
    if spec.bias is not None:
        src, dst = graph.edge_index
        bias = spec.bias(dst[plan.perm], src[plan.perm]).T  # (H, E) in the kernel's order
    out, alpha = _SparseAttention.apply(_heads_first(q), _heads_first(k), _heads_first(v), bias, plan, n,
                                        spec.scale, spec.dropout, spec.training)
    out = out.view(heads, n, -1).transpose(0, 1)  # (N, H, C_v)
    return out, (alpha.T.index_select(0, plan.rank) if return_weights else None)  # weights in the caller's edge order
