"""Score biases on the tiles of the fused kernels: heads first, with the mask folded in.

The dense and tile kernels hand ``scaled_dot_product_attention`` one float mask: the score
bias where a query may attend, ``-inf`` elsewhere. :func:`tile_bias` builds it

* from any ``bias(q_idx, k_idx) -> [..., H]``: evaluated on the tile, heads moved first, masked;
* from an :class:`~graphattn.ops.scores.OffsetBias` as one gather ``T[:, index]`` from its
  ``[H, 2R + 1]`` table, padded with a ``-inf`` column. The ``index`` tile (clamped offsets
  ``p_j - p_i``, masked pairs pointing at the ``-inf`` column) depends only on the positions
  and the pattern, so when the bias was built on the graph's own positions it is derived once
  per graph and kept in the memo of the kernel's plan (contract "built once" of
  ``docs/architecture.md``); a forward then costs one gather, already in the layout SDPA reads,
  and learned tables still get their gradients through it.

:func:`dense_bias` does the same for the dense kernel's padded ``[B, H, L, L]`` layout; on the
default positions it needs no index at all (the bias is Toeplitz in every sequence).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .graph import AttentionGraph
from .kernel import memoized
from .scores import BiasFn, OffsetBias

__all__ = ["tile_bias", "dense_bias"]


def tile_bias(
    graph: AttentionGraph, bias: BiasFn, memo: dict, tile: str, query_ids: Tensor, key_ids: Tensor,
    mask: Tensor | None, dtype: torch.dtype,
) -> Tensor:
    """``[H, *shape]``: ``bias(query_ids, key_ids)`` heads first, ``-inf`` where ``mask`` is False.

    ``query_ids``, ``key_ids`` (node ids) and the boolean ``mask`` broadcast to ``shape``; ``tile``
    names their layout in ``memo``, the memo of the plan they belong to (the same name must
    always mean the same ids and mask)."""
    if isinstance(bias, OffsetBias):
        index = _offset_index(graph, bias, memo, tile, query_ids, key_ids, mask)
        if index is not None:
            return _gather(bias, *index, dtype)
    out = bias(query_ids, key_ids).to(dtype).movedim(-1, 0)  # (H, ...)
    return out if mask is None else torch.where(mask, out, float("-inf"))  # faster than masked_fill on CPU


def dense_bias(graph: AttentionGraph, bias: BiasFn, plan: object, dtype: torch.dtype) -> Tensor:
    """The dense kernel's ``[B, H, L, L]`` bias over its padded layout (``plan.node [B, L]``),
    ``-inf`` where ``plan.mask [B, 1, L|1, L]`` is False.

    On the default positions an :class:`OffsetBias` is Toeplitz in every sequence,
    ``b^h_ij = T[h, j - i + L - 1]`` with ``T`` its table widened to the offsets ``-(L-1) .. L-1``,
    so it is laid out from ``T`` directly (a flipped strided view: one copy, no index tile)."""
    node_ids, mask = plan.node, None if plan.mask is None else plan.mask[:, 0]
    if not (isinstance(bias, OffsetBias) and _default_positions(graph, bias)):
        return tile_bias(graph, bias, plan.memo, "dense", node_ids[:, :, None], node_ids[:, None, :], mask,
                         dtype).transpose(0, 1)
    length = node_ids.size(1)
    reach = length - 1 if bias.reach is None else bias.reach
    offsets = torch.arange(1 - length, length, device=node_ids.device).clamp(-reach, reach) + reach
    table = _table(bias, reach, dtype).index_select(1, offsets)  # (H, 2L - 1): column L - 1 + d is offset d
    out = table.unfold(1, length, 1).flip(1)[None]  # (1, H, L, L): [h, i, j] = table[h, L - 1 - i + j]
    return out if mask is None else torch.where(mask[:, None], out, float("-inf"))


def _default_positions(graph: AttentionGraph, bias: OffsetBias) -> bool:
    """Whether ``bias`` sits on the graph's default positions (each node's index in its sequence)
    of a pattern graph, whose pairs lie in one sequence: there ``p_j - p_i = j - i``."""
    return graph.pos is None and graph.pattern is not None and bias.pos is graph.node_positions()


def _table(bias: OffsetBias, reach: int, dtype: torch.dtype) -> Tensor:
    """``table(reach)`` in ``dtype``, its shape checked."""
    table = bias.table(reach)
    if table.dim() != 2 or table.size(1) != 2 * reach + 1:
        raise ValueError(f"OffsetBias.table({reach}) must have shape [H, {2 * reach + 1}], got {list(table.shape)}")
    return table.to(dtype)


def _gather(bias: OffsetBias, index: Tensor, reach: int, mask: Tensor | None, dtype: torch.dtype) -> Tensor:
    """``T[:, index]`` with ``T = table(reach)`` and one more column of ``-inf`` (masked pairs);
    with ``mask`` (a tile whose blocks share one index), that block's bias spread over the blocks
    and ``-inf`` where the mask is False."""
    table = F.pad(_table(bias, reach, dtype), (0, 1), value=float("-inf"))  # (H, 2R + 2)
    out = table.index_select(1, index.flatten()).view(-1, *index.shape)
    return out if mask is None else torch.where(mask, out, float("-inf"))


def _offset_index(
    graph: AttentionGraph, bias: OffsetBias, memo: dict, tile: str, query_ids: Tensor, key_ids: Tensor,
    mask: Tensor | None,
) -> tuple[Tensor, int, Tensor | None] | None:
    """``(index, R, mask)`` of the tile (see :func:`_index`), kept in ``memo`` when the bias uses
    the graph's positions; ``None`` when the table would be wider than the tile (then evaluating
    ``fn`` is cheaper)."""
    def compute() -> tuple[Tensor, int, Tensor | None] | None:
        delta, bound = _offsets(graph, bias, query_ids, key_ids)
        return _index(delta, mask, bound if bias.reach is None else bias.reach)

    if not _on_graph_positions(graph, bias):
        return compute()
    return memoized(memo, ("offset_index", tile, bias.reach), compute)


def _on_graph_positions(graph: AttentionGraph, bias: OffsetBias) -> bool:
    """Whether ``bias.pos`` is the graph's own position tensor (so the graph may cache its tiles)."""
    return bias.pos is (graph.pos if graph.pos is not None else graph.node_positions())


def _offsets(graph: AttentionGraph, bias: OffsetBias, query_ids: Tensor, key_ids: Tensor) -> tuple[Tensor, int]:
    """``p_j - p_i`` on the tile (exact on the pairs a query may attend to) and a bound on its
    magnitude there, both in O(tile + N)."""
    if _default_positions(graph, bias):  # p = node - start of its sequence
        return key_ids - query_ids, max(int(graph.sizes.max()) - 1, 0)
    pos = bias.pos
    bound = int(pos.max() - pos.min()) if pos.numel() else 0
    return pos[key_ids] - pos[query_ids], bound


def _index(delta: Tensor, mask: Tensor | None, reach: int) -> tuple[Tensor, int, Tensor | None] | None:
    """``(clamp(delta, -R, R) + R, R, None)``, with ``2R + 1`` (the ``-inf`` column) where ``mask``
    is False. The clamp also keeps rows the kernel discards (padding queries) inside the table.

    When every block of a ``[blocks, b, S]`` tile has the same offsets on its allowed pairs (a
    band on default positions: ``k - q`` depends only on the place in the tile), the index is
    that one block's, ``[1, b, S]``, returned with the mask: a forward then gathers ``b S``
    entries per head instead of ``blocks b S`` and masks with one ``torch.where``."""
    shape = delta.shape if mask is None else torch.broadcast_shapes(delta.shape, mask.shape)
    if 2 * reach + 1 > shape.numel():
        return None
    if mask is not None and delta.dim() == 3 and delta.size(0) > 1 and mask.shape == delta.shape:
        # an inner block, whose key ids are not clamped at the ends (on a graph of a few blocks
        # it may be, and the check fails: the full index is kept, as correct, a little slower)
        ref = delta[delta.size(0) // 2]
        if bool(torch.where(mask, delta == ref, True).all()):
            return ref.clamp(-reach, reach).add_(reach)[None], reach, mask
    index = delta.clamp(-reach, reach).add_(reach)
    if mask is not None:  # torch.where: several times faster than masked_fill on CPU
        index = torch.where(mask, index, 2 * reach + 1)
    return index.expand(shape), reach, None
