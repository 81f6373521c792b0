"""Shared pieces of the dense and blocked kernels: one masked softmax attention, two ways.

``sdpa`` hands the mask to ``scaled_dot_product_attention`` (fused on CPU and GPU, no
scores in memory), a score bias folded in as a float mask (``bias`` where allowed, ``-inf``
elsewhere), so relative / ALiBi / shortest-path encodings stay fused; it is used unless
dropout or attention weights are asked for. ``explicit`` writes the same attention as matmul,
masked log-sum-exp and matmul, and also returns the log-sum-exp ``lse`` of each query, from
which :func:`~graphattn.ops.kernel.edge_weights` recovers ``alpha`` on any edge without keeping
the scores.
A query with no allowed key gets zeros on both paths (contract "empty rows" of ``docs/architecture.md``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .bias import tile_bias
from .graph import AttentionGraph
from .kernel import memoized
from .scores import ScoreSpec

__all__ = ["sdpa", "explicit", "masked_lse", "needs_explicit", "tile_attention", "reached_on_rows", "FirstOrderOnly"]


def needs_explicit(spec: ScoreSpec, return_weights: bool) -> bool:
    """Whether the fused SDPA path cannot compute this: dropout or weights asked for."""
    return return_weights or (spec.dropout > 0 and spec.training)


class FirstOrderOnly(torch.autograd.Function):
    """The identity, whose backward refuses to be differentiated again (``create_graph=True``)
    with a message that names the kernels that can, instead of torch's "derivative for
    aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented"."""

    generate_vmap_rule = True  # an identity: vmap may batch it like any other op

    @staticmethod
    def forward(x: Tensor, kernel: str) -> Tensor:
        return x

    @staticmethod
    def setup_context(ctx, inputs: tuple[Tensor, str], output: Tensor) -> None:  # the torch.func-ready form
        ctx.kernel = inputs[1]

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        # create_graph=True asks for a second derivative (torch.func runs every backward that way: let it)
        if torch.is_grad_enabled() and not torch._C._are_functorch_transforms_active():
            raise NotImplementedError(
                f"the {ctx.kernel} has no double backward (torch's fused attention backward is not differentiable); "
                "for Hessian-vector products run backend='scatter' or 'reference', whose autograd is torch's own")
        return grad, None


def sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float) -> Tensor:
    """``q (..., L, C)``, ``k, v (..., S, C)`` and a ``mask`` broadcasting to ``(..., L, S)``:
    boolean, or a float score bias holding ``-inf`` where masked (see :mod:`graphattn.ops.bias`)."""
    if mask is not None and mask.is_floating_point():
        mask = mask.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return FirstOrderOnly.apply(out, "fused scaled_dot_product_attention path") if out.requires_grad else out


def masked_lse(q: Tensor, k: Tensor, mask: Tensor | None, spec: ScoreSpec,
               bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(scores (..., L, S), lse (..., L, 1))``: the masked scores (``-inf`` off the graph) and
    each query's log-sum-exp (``-inf`` for a query without keys)."""
    scores = torch.matmul(q * spec.scale, k.transpose(-1, -2))  # (..., L, S); scaled first: no half overflow
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    # A row without keys (or with every score -inf) has lse = -inf: shifting it by 0 and summing to
    # 1 keeps exp(-inf) = 0, and every gradient finite (no 0 * inf).
    row_max = scores.detach().amax(dim=-1, keepdim=True)
    row_max = torch.where(row_max > float("-inf"), row_max, 0.0)  # (..., L, 1)
    total = torch.exp(scores - row_max).sum(dim=-1, keepdim=True)
    alive = total > 0
    return scores, torch.where(alive, torch.log(torch.where(alive, total, 1.0)) + row_max, float("-inf"))


def explicit(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, spec: ScoreSpec, bias: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """As :func:`sdpa` plus ``bias`` (broadcasting to the scores) and dropout; returns
    ``(out (..., L, C), lse (..., L))`` with ``lse = -inf`` for a query without keys."""
    scores, lse = masked_lse(q, k, mask, spec, bias)
    probs = torch.exp(scores - torch.where(torch.isfinite(lse), lse, 0.0))
    return torch.matmul(spec.apply_dropout(probs), v), lse.squeeze(-1)


def tile_attention(
    qb: Tensor, kb: Tensor, vb: Tensor, mask: Tensor, spec: ScoreSpec, explicit_path: bool,
    query_ids: Tensor, key_ids: Tensor, graph: AttentionGraph, memo: dict, tile: str,
) -> tuple[Tensor, Tensor | None]:
    """Attention of query tiles ``qb [H, nb, b, C]`` over their key rows ``kb, vb [H, nb, S, C]``
    with ``mask [nb, b, S]`` and a score bias evaluated on the node ids ``query_ids [nb, b]`` x
    ``key_ids [nb, S]`` (the layout ``tile`` of a plan whose memo is ``memo``, see
    :func:`~graphattn.ops.bias.tile_bias`): the fused SDPA call, or the explicit path. Returns
    ``(out [H, nb, b, C], lse [H, nb, b] | None)``; the tile kernels (band, tiles) share it."""
    bias = None
    if spec.bias is not None:  # (H, nb, b, S), -inf where masked: SDPA's one float mask
        bias = tile_bias(graph, spec.bias, memo, tile, query_ids[:, :, None], key_ids[:, None, :], mask, qb.dtype)
    if not explicit_path:
        return sdpa(qb, kb, vb, mask[None] if bias is None else bias, spec.scale), None
    return explicit(qb, kb, vb, mask[None], spec, bias)


def reached_on_rows(mask: Tensor, bad_rows: Tensor, memo: dict) -> Tensor:
    """``[nb, b, H]`` bool: which query of each tile counts a flagged key, for ``mask [nb, b, S]``
    and the flags of the tile's key rows ``bad_rows [nb, S, H]``: one 0 / 1 matrix product, so no
    value of a key a query does not count can leak in (the mask's float copy kept in ``memo``)."""
    weights = memoized(memo, "mask_f32", lambda: mask.to(torch.float32).transpose(1, 2).contiguous())  # (nb, S, b)
    return (torch.bmm(bad_rows.to(torch.float32).transpose(1, 2), weights) > 0).transpose(1, 2)  # (nb, b, H)
