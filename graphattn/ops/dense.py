"""The dense kernel: one ``scaled_dot_product_attention`` call over padded sequences.

A batch of sequences is padded to ``[B, H, L_max, C]``; keys past a sequence's end are
masked out, so the block-diagonal graph costs ``B L_max^2`` instead of ``N^2``. ``Full()``
needs no mask for one sequence and only a key-padding mask ``[B, 1, 1, L]`` for a batch;
other patterns pass their ``mask`` as a boolean ``[B, 1, L, L]``; an ``edge_index`` graph
passes its adjacency (``log`` multiplicity as a float mask when it has duplicate edges).
Memory: O(B L^2) for the mask, O(N H C) for the rest on the fused path (a score bias joins it
as a float mask, O(B H L^2)); dropout and attention weights take the explicit path (O(B H L^2)
scores). Slow twin:
:func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .bias import dense_bias
from .graph import AttentionGraph
from .masked import edge_weights, explicit, needs_explicit, sdpa
from .scatter import falls_back_to_scatter
from .scores import ScoreSpec

__all__ = ["dense_attention", "dense_core", "dense_unsupported"]


def dense_unsupported(graph: AttentionGraph, spec: ScoreSpec) -> str | None:
    """Why the dense kernel cannot run this (``None`` if it can)."""
    if spec.score != "dot":
        return f"{spec.score} scores"
    if spec.edge_kv is not None:
        return "edge features (edge_kv)"
    return None


def _layout(graph: AttentionGraph) -> tuple[Tensor, int, int]:
    """``slot [N]``: where each node sits in the padded ``[B * L]`` layout; ``B``; ``L``."""
    def compute() -> tuple[Tensor, int, int]:
        sizes = graph.sizes if graph.pattern is not None else torch.tensor([graph.num_nodes])
        length = int(sizes.max()) if sizes.numel() else 0
        seq = torch.repeat_interleave(torch.arange(sizes.numel()), sizes)
        pos = torch.arange(graph.num_nodes) - (torch.cumsum(sizes, 0) - sizes)[seq]
        return (seq * length + pos).to(graph.device), sizes.numel(), length
    return graph.cached("dense_layout", compute)


def _mask(graph: AttentionGraph, dtype: torch.dtype) -> Tensor | None:
    """Boolean ``[B, 1, L|1, L]`` (or float with log multiplicities), True = may attend."""
    if graph.pattern is None:
        counts = graph.dense_counts(dtype)
        if graph.cached("has_duplicates", lambda: bool((counts > 1).any())):
            return torch.where(counts > 0, counts.log(), float("-inf"))[None, None]
        return graph.cached("dense_bool_mask", lambda: (counts > 0)[None, None])
    return graph.cached("dense_mask", lambda: _pattern_mask(graph))


def _pattern_mask(graph: AttentionGraph) -> Tensor | None:
    _, batch, length = _layout(graph)
    device = graph.device
    pieces = graph.cached("pieces", graph.pattern.pieces)
    if pieces is not None and pieces.full:
        if batch == 1:
            return None
        return (torch.arange(length, device=device) < graph.sizes.to(device)[:, None])[:, None, None, :]
    mask = torch.zeros(batch, 1, length, length, dtype=torch.bool, device=device)
    per_size: dict[int, Tensor] = {}
    for b, size in enumerate(graph.sizes.tolist()):
        if size not in per_size:
            per_size[size] = graph.pattern.dense_mask(size, device=device)
        mask[b, 0, :size, :size] = per_size[size]
    return mask


def dense_core(
    q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, *, with_lse: bool = False
) -> tuple[Tensor, Tensor | None]:
    """``(out [N, H, C], lse [N, H] | None)``; the explicit path (and ``lse``) when ``with_lse``,
    a bias or dropout asks for it."""
    n, heads, channels = q.shape
    slot, batch, length = _layout(graph)
    padded = batch * length != n

    def pad(t: Tensor) -> Tensor:  # (N, H, C) -> (B, H, L, C)
        if padded:
            t = t.new_zeros(batch * length, *t.shape[1:]).index_copy(0, slot, t)
        return t.view(batch, length, heads, -1).transpose(1, 2)

    mask = _mask(graph, q.dtype)
    bias = None
    if mask is not None and mask.dtype != torch.bool:  # duplicate edges: log-counts in the scores
        bias, mask = mask, mask > float("-inf")
    qp, kp, vp = pad(q), pad(k), pad(v)
    if spec.bias is not None:
        gid = torch.full((batch * length,), n - 1, dtype=torch.long, device=q.device)
        gid = gid.index_copy(0, slot, torch.arange(n, device=q.device)).view(batch, length)
        score_bias = dense_bias(graph, spec.bias, gid, None if mask is None else mask[:, 0], q.dtype)  # (B, H, L, L)
        bias = score_bias if bias is None else bias + score_bias
    lse = None
    if not needs_explicit(spec, with_lse):
        # a float bias (log-counts, score bias) holds -inf where masked: SDPA's one mask then
        out = sdpa(qp, kp, vp, mask if bias is None else bias, spec.scale)  # (B, H, L, C)
    else:
        out, lse = explicit(qp, kp, vp, mask, spec, bias)  # (B, H, L, C), (B, H, L)
        lse = lse.transpose(1, 2).reshape(batch * length, heads)  # (B * L, H)
        lse = lse[slot] if padded else lse
    out = out.transpose(1, 2).reshape(batch * length, heads, -1)  # (B * L, H, C)
    return (out[slot] if padded else out), lse


@falls_back_to_scatter(dense_unsupported)
def dense_attention(
    q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, *, return_weights: bool = False
) -> tuple[Tensor, Tensor | None]:
    if q.size(0) == 0:
        return v.new_zeros(v.shape), (q.new_zeros(0, q.size(1)) if return_weights else None)
    out, lse = dense_core(q, k, v, graph, spec, with_lse=return_weights)
    return out, (edge_weights(q, k, graph, spec, lse) if return_weights else None)
