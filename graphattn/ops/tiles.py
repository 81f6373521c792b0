"""The generic tile path: any pattern known only by its ``mask``, computed tile by tile.

As FlexAttention's ``create_block_mask`` does, the predicate is evaluated once per graph, one
chunk of query rows at a time (memory O(chunk), never ``N x N``), and reduced to the non-empty
``b x b`` tiles. Each sequence is padded to a multiple of ``b`` so that tiles never straddle
two sequences, and sequences of equal length share one scan. Query block ``i`` then attends
over the ``K`` key blocks it touches (``K`` = the most any block touches), one fused
``scaled_dot_product_attention`` call over ``[H, blocks, b, C] x [H, blocks, K b, C]`` with the
stored tile masks; empty tiles are never computed. The scan of a (pattern, length) pair is
remembered across graphs (the batches of a run repeat them), as long as the pattern is hashable.

Memory: O(N K b) booleans for the masks, O(N H C K) for the gathered keys. Work: the
non-empty tiles only. Slow twin: :func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..patterns import Pattern
from ..patterns.base import scan_mask
from .graph import AttentionGraph
from .masked import needs_explicit, tile_attention
from .scores import ScoreSpec

__all__ = ["TilePlan", "plan_tiles", "tiled_core"]


class TilePlan(NamedTuple):
    """Non-empty tiles of a pattern graph (cached per graph).

    ``slot [N]``: each node's row in the padded layout of ``nb * b`` rows; ``key_blocks [nb, K]``:
    the key blocks of every query block (``nb`` = an all-masked padding block); ``mask
    [nb, b, K b]``: which keys each query counts; ``node [nb * b + b]``: the node in every padded
    row (for score biases; padding rows repeat node 0). ``band``: when every query block ``i``
    touches only blocks ``i + band .. i + band + K - 1`` (a local pattern), the key rows are laid
    as that window, a strided view of the keys (no gather), and ``band`` is its first offset;
    else ``None``.
    """

    slot: Tensor
    key_blocks: Tensor
    mask: Tensor
    node: Tensor
    band: int | None


def _sequence_tiles(pattern: Pattern, size: int, block: int) -> tuple[Tensor, Tensor]:
    """:func:`_scan_tiles`, remembered across graphs: the scan costs O(size^2) predicate
    evaluations, and the batches of a training run repeat the same (pattern, length) pairs."""
    try:
        return _remembered_tiles(pattern, size, block)
    except TypeError:  # an unhashable pattern: scan every time
        return _scan_tiles(pattern, size, block)


def _scan_tiles(pattern: Pattern, size: int, block: int) -> tuple[Tensor, Tensor]:
    """``(key_blocks [nbs, K], masks [nbs, K, b, b])`` of one sequence, local block ids, ``-1`` pads."""
    nbs = -(-size // block)
    padded = nbs * block
    ids, tiles = [], []
    for _, rows in scan_mask(pattern, size, block):
        c = -(-rows.size(0) // block)
        m = torch.zeros(c * block, padded, dtype=torch.bool)
        m[: rows.size(0), :size] = rows
        m = m.view(c, block, nbs, block).transpose(1, 2)  # (c, nbs, b, b)
        nonempty = m.any(dim=3).any(dim=2)  # (c, nbs)
        for i in range(c):
            kb = torch.nonzero(nonempty[i]).flatten()
            ids.append(kb)
            tiles.append(m[i, kb])
    width = max((kb.numel() for kb in ids), default=0)
    key_blocks = torch.full((nbs, width), -1, dtype=torch.long)
    masks = torch.zeros(nbs, width, block, block, dtype=torch.bool)
    for i, (kb, t) in enumerate(zip(ids, tiles)):
        key_blocks[i, : kb.numel()] = kb
        masks[i, : kb.numel()] = t
    return key_blocks, masks


_remembered_tiles = lru_cache(maxsize=64)(_scan_tiles)


def plan_tiles(graph: AttentionGraph, block: int) -> TilePlan:
    """Scan the pattern's mask on every distinct sequence length and lay the tiles out."""
    sizes = graph.sizes.tolist()
    per_size = {s: _sequence_tiles(graph.pattern, s, block) for s in set(sizes) if s}
    blocks = [-(-s // block) for s in sizes]
    width = max((per_size[s][0].size(1) for s in per_size), default=0)
    nb = sum(blocks)
    key_blocks = torch.full((nb, width), nb, dtype=torch.long)  # nb: the padding block
    masks = torch.zeros(nb, width, block, block, dtype=torch.bool)
    slot, node = [], torch.zeros(nb * block + block, dtype=torch.long)
    first_block = first_node = 0
    for s, count in zip(sizes, blocks):
        if s:
            kb, m = per_size[s]
            rows = slice(first_block, first_block + count)
            key_blocks[rows, : kb.size(1)] = torch.where(kb >= 0, kb + first_block, nb)
            masks[rows, : kb.size(1)] = m
            slot.append(torch.arange(s) + first_block * block)
            node[first_block * block : first_block * block + s] = torch.arange(s) + first_node
        first_block, first_node = first_block + count, first_node + s
    slot_t = torch.cat(slot) if slot else torch.zeros(0, dtype=torch.long)
    key_blocks, masks, band = _as_window(key_blocks, masks)
    mask = masks.permute(0, 2, 1, 3).reshape(nb, block, -1)  # (nb, b, K b)
    device = graph.device
    return TilePlan(slot_t.to(device), key_blocks.to(device), mask.to(device), node.to(device), band)


def _as_window(key_blocks: Tensor, masks: Tensor) -> tuple[Tensor, Tensor, int | None]:
    """Re-lay the tiles as one window of blocks per query block when that costs at most one block
    more than the gathered rows: ``(key_blocks, masks, first offset)``, or the input and ``None``."""
    nb, width = key_blocks.shape
    valid = key_blocks < nb
    if not valid.any():
        return key_blocks, masks, None
    offsets = key_blocks - torch.arange(nb)[:, None]
    lo, hi = int(offsets[valid].min()), int(offsets[valid].max())
    if hi - lo + 1 > width + 1:
        return key_blocks, masks, None
    window = torch.arange(nb)[:, None] + torch.arange(lo, hi + 1)  # (nb, W) key block of every slot
    laid = torch.zeros(nb, hi - lo + 1, *masks.shape[2:], dtype=masks.dtype)
    rows, cols = valid.nonzero(as_tuple=True)
    laid[rows, offsets[rows, cols] - lo] = masks[rows, cols]
    return torch.where((window >= 0) & (window < nb), window, nb), laid, lo


def tiled_core(
    q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, *, with_lse: bool, block: int
) -> tuple[Tensor, Tensor | None]:
    """``(out [N, H, C], lse [N, H] | None)`` over the non-empty tiles of a mask-only pattern."""
    plan: TilePlan = graph.cached(("tiles", block), lambda: plan_tiles(graph, block))
    n, heads, channels = q.shape
    nb, width = plan.key_blocks.shape
    explicit_path = needs_explicit(spec, with_lse)
    if width == 0:  # no tile has a key: every query attends to nothing
        return v.new_zeros(v.shape), (q.new_full((n, heads), float("-inf")) if explicit_path else None)

    def pad(t: Tensor) -> Tensor:  # (N, H, C) -> (nb + 1, b, H, C), the last block all zeros
        return t.new_zeros((nb + 1) * block, *t.shape[1:]).index_copy(0, plan.slot, t).view(nb + 1, block, heads, -1)

    def keys(t: Tensor) -> Tensor:  # (N, H, C) -> (H, nb, K b, C)
        if plan.band is None:
            return pad(t)[plan.key_blocks].flatten(1, 2).permute(2, 0, 1, 3)
        rows = pad(t)[:nb].flatten(0, 1)  # (nb b, H, C), then the window of every block as a view
        before, after = max(0, -plan.band), max(0, plan.band + width - 1)
        rows = F.pad(rows[max(0, plan.band) * block:], (0, 0, 0, 0, before * block, after * block))
        return rows.unfold(0, width * block, block)[:nb].permute(1, 0, 3, 2)

    qb = pad(q)[:nb].permute(2, 0, 1, 3)  # (H, nb, b, C)
    kb, vb = keys(k), keys(v)
    rows = plan.node[: nb * block].view(nb, block)  # (nb, b) node of every query slot
    cols = plan.node.view(nb + 1, block)[plan.key_blocks].flatten(1)  # (nb, K b) node of every key slot
    out, lse = tile_attention(qb, kb, vb, plan.mask, spec, explicit_path, rows, cols, graph, ("tiles", block))
    if lse is not None:
        lse = lse.permute(1, 2, 0).reshape(nb * block, heads)[plan.slot]  # (N, H)
    out = out.permute(1, 2, 0, 3).reshape(nb * block, heads, -1)[plan.slot]  # (N, H, C)
    return out, lse
