"""The tile planner, and the tile kernel for patterns known only by their ``mask``.

**One planner** (:func:`sequence_tiles`) turns a pattern on a sequence of ``L`` nodes into its
non-empty ``b x b`` tiles and their mask bits, as FlexAttention's ``create_block_mask`` does. A
pattern with pieces (:meth:`~graphattn.patterns.Pattern.pieces`) names its candidate tiles (the
band's diagonals, global rows and columns, the blocks of its random keys) and only those are
evaluated; any other pattern is scanned one chunk of query rows at a time (memory O(chunk),
never ``L x L``). The result is remembered per (pattern value, length, block): patterns compare
by their fields, so ``Band(16)`` built anew in every step of a loop is planned once. The tile
kernel below and the flex kernel (:mod:`graphattn.ops.flex`) both lay their plans from it.

**The tile kernel**: each sequence is padded to a multiple of ``b`` so that tiles never
straddle two sequences. Query block ``i`` attends over the ``K`` key blocks it touches (``K`` =
the most any block touches), one fused ``scaled_dot_product_attention`` call over
``[H, blocks, b, C] x [H, blocks, K b, C]`` with the stored tile masks; empty tiles are never
computed. Part of the public backend ``"blocked"``.

Memory: O(N K b) booleans for the masks, O(N H C K) for the gathered keys. Work: the
non-empty tiles only. Slow twin: :func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..patterns import Pattern
from ..patterns.base import SCAN_CHUNK, scan_mask
from .band import WORK_RATIO, BlockKernel
from .dense import DENSE_MAX_MASK
from .graph import AttentionGraph
from .kernel import KernelResult, Plan, dot_only, needs_pattern
from .masked import needs_explicit, reached_on_rows, tile_attention
from .scores import ScoreSpec

__all__ = ["Tiles", "TilePlan", "SequenceTiles", "sequence_tiles", "plan_tiles", "lay_tiles"]


class SequenceTiles(NamedTuple):
    """The non-empty tiles of one sequence: ``key_blocks [nbs, K]`` the key blocks of every query
    block (``-1`` pads) and ``masks [nbs, K, b, b]`` their bits."""

    key_blocks: Tensor
    masks: Tensor


def sequence_tiles(pattern: Pattern, length: int, block: int) -> SequenceTiles:
    """The tiles of ``pattern`` on ``length`` nodes, remembered per (pattern value, length, block)."""
    try:
        return _remembered(pattern, length, block)
    except TypeError:  # an unhashable field: plan every time
        return _plan_sequence(pattern, length, block)


def _candidates(pattern: Pattern, length: int, block: int) -> Tensor | None:
    """``[nbs, nbs]`` bool: the tiles the pattern's pieces can reach, or ``None`` without pieces."""
    pieces = pattern.pieces()
    if pieces is None:
        return None
    nbs = -(-length // block)
    qb, kb = torch.arange(nbs)[:, None], torch.arange(nbs)[None, :]
    out = torch.zeros(nbs, nbs, dtype=torch.bool)
    if pieces.band is not None:  # key blocks within [i b - left, (i + 1) b - 1 + right]
        left, right = min(pieces.left, length), min(pieces.right, length)
        out |= (kb * block <= (qb + 1) * block - 1 + right) & ((kb + 1) * block - 1 >= qb * block - left)
    if pieces.global_nodes:
        ids = torch.tensor(sorted({g % length for g in pieces.global_nodes if -length <= g < length}), dtype=torch.long)
        blocks = torch.zeros(nbs, dtype=torch.bool)
        blocks[ids // block] = True
        out |= blocks[:, None] | blocks[None, :]
    for r in pieces.randoms:
        table = r.table(length)  # (L, t)
        rows = (torch.arange(length) // block)[:, None].expand_as(table)
        out[rows.flatten(), (table // block).flatten()] = True
    return out


def _plan_sequence(pattern: Pattern, length: int, block: int) -> SequenceTiles:
    nbs = -(-length // block)
    candidates = _candidates(pattern, length, block)
    pair_list, bit_list = [], []
    if candidates is None:  # scan every row of the mask, keeping the non-empty tiles of each chunk
        for start, rows in scan_mask(pattern, length, block):
            c = -(-rows.size(0) // block)
            m = F.pad(rows, (0, nbs * block - length, 0, c * block - rows.size(0)))
            m = m.view(c, block, nbs, block).transpose(1, 2)  # (c, nbs, b, b)
            found = m.flatten(2).any(dim=2).nonzero()  # (P, 2) row-major: query block, then key block
            bit_list.append(m[found[:, 0], found[:, 1]])
            pair_list.append(found + torch.tensor([start // block, 0]))
    else:  # evaluate the candidate tiles only, a chunk of them at a time
        pairs = candidates.nonzero()
        offsets = torch.arange(block)
        step = max(1, SCAN_CHUNK // (block * block))
        for start in range(0, pairs.size(0), step):
            p = pairs[start:start + step]
            q = (p[:, 0, None] * block + offsets)[:, :, None]  # (P, b, 1)
            k = (p[:, 1, None] * block + offsets)[:, None, :]  # (P, 1, b)
            bits = pattern.mask(q.clamp(max=length - 1), k.clamp(max=length - 1), length) & (q < length) & (k < length)
            keep = bits.flatten(1).any(dim=1)
            pair_list.append(p[keep])
            bit_list.append(bits[keep])
    pairs = torch.cat(pair_list) if pair_list else torch.zeros(0, 2, dtype=torch.long)
    bits = torch.cat(bit_list) if bit_list else torch.zeros(0, block, block, dtype=torch.bool)
    counts = torch.bincount(pairs[:, 0], minlength=nbs)
    width = int(counts.max()) if counts.numel() else 0
    column = torch.arange(pairs.size(0)) - (torch.cumsum(counts, 0) - counts)[pairs[:, 0]]
    key_blocks = torch.full((nbs, width), -1, dtype=torch.long)
    key_blocks[pairs[:, 0], column] = pairs[:, 1]
    masks = torch.zeros(nbs, width, block, block, dtype=torch.bool)
    masks[pairs[:, 0], column] = bits
    return SequenceTiles(key_blocks, masks)


_remembered = lru_cache(maxsize=64)(_plan_sequence)


def lay_tiles(graph: AttentionGraph, block: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The tiles of every sequence of a pattern graph laid on the padded batch (each sequence from
    a multiple of ``b``): ``(slot [N], key_blocks [nb, K], masks [nb, K, b, b], node [nb b + b])``,
    with ``nb`` (one past the last block) as the padding key block and ``node`` the node of every
    padded row (padding rows repeat node 0), all on the CPU."""
    lengths = graph.layout.lengths
    per_size = {s: sequence_tiles(graph.pattern, s, block) for s in set(lengths) if s}
    blocks = [-(-s // block) for s in lengths]
    width = max((t.key_blocks.size(1) for t in per_size.values()), default=0)
    nb = sum(blocks)
    key_blocks = torch.full((nb, width), nb, dtype=torch.long)
    masks = torch.zeros(nb, width, block, block, dtype=torch.bool)
    slot, node = [], torch.zeros(nb * block + block, dtype=torch.long)
    first_block = first_node = 0
    for s, count in zip(lengths, blocks):
        if s:
            kb, m = per_size[s]
            rows = slice(first_block, first_block + count)
            key_blocks[rows, : kb.size(1)] = torch.where(kb >= 0, kb + first_block, nb)
            masks[rows, : kb.size(1)] = m
            slot.append(torch.arange(s) + first_block * block)
            node[first_block * block : first_block * block + s] = torch.arange(s) + first_node
        first_block, first_node = first_block + count, first_node + s
    return (torch.cat(slot) if slot else torch.zeros(0, dtype=torch.long)), key_blocks, masks, node


@dataclass(frozen=True)
class TilePlan(Plan):
    """Non-empty tiles of a pattern graph, laid for the tile kernel.

    ``slot [N]``: each node's row in the padded layout of ``nb * b`` rows; ``key_blocks [nb, K]``:
    the key blocks of every query block (``nb`` = an all-masked padding block); ``mask
    [nb, b, K b]``: which keys each query counts; ``node [nb * b + b]``: the node in every padded
    row (for score biases). ``band``: when every query block ``i`` touches only blocks
    ``i + band .. i + band + K - 1`` (a local pattern), the key rows are laid as that window, a
    strided view of the keys (no gather), and ``band`` is its first offset; else ``None``.
    """

    block: int
    slot: Tensor
    key_blocks: Tensor
    mask: Tensor
    node: Tensor
    band: int | None
    memo: dict = field(default_factory=dict, compare=False, repr=False)


def plan_tiles(graph: AttentionGraph, block: int) -> TilePlan:
    slot, key_blocks, masks, node = lay_tiles(graph, block)
    key_blocks, masks, band = _as_window(key_blocks, masks)
    nb = key_blocks.size(0)
    mask = masks.permute(0, 2, 1, 3).reshape(nb, block, -1)  # (nb, b, K b)
    device = graph.device
    return TilePlan(block, slot.to(device), key_blocks.to(device), mask.to(device), node.to(device), band)


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


class Tiles(BlockKernel[TilePlan]):
    """The non-empty tiles of any pattern (see the module docstring)."""

    name = "tiles"

    def unsupported(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        return dot_only(spec) + needs_pattern(graph)

    def declines(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        pattern, lengths = graph.pattern, graph.layout.lengths
        if pattern.pieces() is not None:
            return ["the pattern declares pieces: the band kernel computes them without a tile plan"]
        if pattern.has_generator:
            return ["the pattern generates its edges: dense or sparse run it without scanning its mask"]
        length = max(lengths, default=0)
        work = graph.plan(self).key_blocks.size(1) * self.block
        if work > WORK_RATIO * length and len(lengths) * length * length <= DENSE_MAX_MASK:
            return [f"its tiles hold {work} key columns per query, more than {WORK_RATIO:.0%} of a sequence of "
                    f"{length}: dense is cheaper"]
        return []

    def plan(self, graph: AttentionGraph) -> TilePlan:
        return plan_tiles(graph, self.block)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: TilePlan, *,
                need_weights: bool) -> KernelResult:
        n, heads, _ = q.shape
        nb, width = plan.key_blocks.shape
        explicit_path = needs_explicit(spec, need_weights)
        if width == 0:  # no tile has a key: every query attends to nothing
            return KernelResult(v.new_zeros(v.shape), q.new_full((n, heads), float("-inf")) if explicit_path else None)
        block = plan.block
        qb = _pad(q, plan)[:nb].permute(2, 0, 1, 3)  # (H, nb, b, C)
        kb, vb = _key_rows(k, plan), _key_rows(v, plan)  # (H, nb, K b, C)
        rows = plan.node[: nb * block].view(nb, block)  # (nb, b) node of every query slot
        cols = plan.node.view(nb + 1, block)[plan.key_blocks].flatten(1)  # (nb, K b) node of every key slot
        out, lse = tile_attention(qb, kb, vb, plan.mask, spec, explicit_path, rows, cols, graph, plan.memo, "tiles")
        if lse is not None:
            lse = lse.permute(1, 2, 0).reshape(nb * block, heads).index_select(0, plan.slot)  # (N, H)
        out = out.permute(1, 2, 0, 3).reshape(nb * block, heads, -1).index_select(0, plan.slot)  # (N, H, C)
        return KernelResult(out, lse)

    def reached(self, graph: AttentionGraph, plan: TilePlan, bad: Tensor) -> Tensor:
        nb, width = plan.key_blocks.shape
        if width == 0:
            return torch.zeros_like(bad)
        rows = _key_rows(bad.to(torch.float32)[..., None], plan)[..., 0].permute(1, 2, 0)  # (nb, K b, H)
        hit = reached_on_rows(plan.mask, rows, plan.memo)  # (nb, b, H)
        return hit.reshape(nb * plan.block, -1).index_select(0, plan.slot)


def _pad(t: Tensor, plan: TilePlan) -> Tensor:
    """``[N, H, C] -> [nb + 1, b, H, C]``, the last block all zeros."""
    nb, block = plan.key_blocks.size(0), plan.block
    return t.new_zeros((nb + 1) * block, *t.shape[1:]).index_copy(0, plan.slot, t).view(nb + 1, block, *t.shape[1:])


def _key_rows(t: Tensor, plan: TilePlan) -> Tensor:
    """``t [N, H, C]`` laid as the key row of every query block: ``[H, nb, K b, C]``."""
    nb, width = plan.key_blocks.shape
    block = plan.block
    if plan.band is None:
        return _pad(t, plan)[plan.key_blocks].flatten(1, 2).permute(2, 0, 1, 3)
    rows = _pad(t, plan)[:nb].flatten(0, 1)  # (nb b, H, C), then the window of every block as a view
    before, after = max(0, -plan.band), max(0, plan.band + width - 1)
    rows = F.pad(rows[max(0, plan.band) * block:], (0, 0, 0, 0, before * block, after * block))
    return rows.unfold(0, width * block, block)[:nb].permute(1, 0, 3, 2)
