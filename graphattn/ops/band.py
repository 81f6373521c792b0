"""The band kernel: sequence patterns computed block by block from their pieces, never edge by edge.

The ``N`` queries (all sequences of the batch, back to back) are cut into blocks of ``b``.
Each query block gets one row of key columns, built from the pattern's pieces
(:meth:`~graphattn.patterns.Pattern.pieces`):

* the **band**: the contiguous span ``[start - left, start + b + right)`` of keys, a
  strided view of the padded keys (``unfold``, no copy), masked inside by the band's own
  ``mask`` evaluated on the tile's offsets ``k - q`` and by "same sequence";
* **global key columns** of the sequences the block touches, minus keys the band already
  counts (the band's mask evaluated on those pairs);
* **random keys**: each query's own random keys (``Random.table``), minus keys already in
  the band or global, minus duplicates between random pieces.

Because every column is counted by exactly one piece, a single softmax over the row is the
softmax over the query's in-neighbours: one ``scaled_dot_product_attention`` call over
``[H, blocks, b, C] x [H, blocks, keys, C]`` with a 4-D boolean mask ``[1, blocks, b, keys]``
(CPU keeps its fused kernel with this mask; the same mask as 3-D is several times slower).
Global queries attend to their whole sequence: dense rows written over their block rows.
With :mod:`graphattn.ops.stride` (a lone ``Stride(s)``) and :mod:`graphattn.ops.tiles` (a
pattern known only by its ``mask``) it forms the public backend ``"blocked"``.

Everything that depends only on the graph (key ids, tile masks) is derived once per
:class:`~graphattn.ops.graph.AttentionGraph` into its :class:`BandPlan`, so the layers of a
model and the backward pass reuse it.

Memory: O(N x keys per block row) for the mask, O(N H C x (b + left + right) / b) for
the unfolded keys in backward; never O(N^2) or O(E H C). A score bias is evaluated on the same
tiles and handed to SDPA as a float mask (still fused); dropout and weights use the explicit
matmul + log-sum-exp path on the same tiles. Slow twin:
:func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..patterns import Pieces
from .bias import tile_bias
from .dense import DENSE_MAX_MASK
from .graph import AttentionGraph
from .kernel import Kernel, KernelResult, Plan, dot_only, needs_pattern
from .masked import explicit, needs_explicit, reached_on_rows, sdpa, tile_attention
from .scores import ScoreSpec

__all__ = ["Band", "BandPlan", "BlockKernel", "BLOCK", "WORK_RATIO", "band_core"]

P = TypeVar("P")

#: Queries per block: 64 keeps the band's wasted corners small for radii around 128.
BLOCK = 64
#: ``auto`` takes a tile kernel over dense when it computes at most this fraction of dense's keys.
WORK_RATIO = 0.5


class BlockKernel(Kernel[P]):
    """A kernel of the public backend ``"blocked"``: fused SDPA calls on blocks of ``block`` queries."""

    backend = "blocked"
    mixes = True
    half_on = frozenset({"cuda"})  # SDPA accumulates in float32 there

    def __init__(self, block: int = BLOCK):
        self.block = block

    @property
    def plan_key(self) -> str:
        return f"{self.name}:{self.block}"


class Band(BlockKernel["BandPlan"]):
    """Band, global and random pieces on blocks of queries (see the module docstring)."""

    name = "band"

    def unsupported(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        reasons = dot_only(spec) + needs_pattern(graph)
        if graph.pattern is not None and graph.pattern.pieces() is None:
            reasons.append("the pattern declares no pieces (band / global / random): the tile kernel scans its mask")
        return reasons

    def declines(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        pieces, lengths = graph.pattern.pieces(), graph.layout.lengths
        length = max(lengths, default=0)
        if pieces.stride is not None and pieces.stride > 1:
            return ["a lone Stride: the stride kernel computes it on 1 / stride of the keys"]
        if pieces.full:
            return ["the pattern is full: dense computes it in one call"]
        work = pieces.keys_per_query(length, self.block)
        fits = len(lengths) * length * length <= DENSE_MAX_MASK
        if work > WORK_RATIO * length and fits:
            return [f"it would compute {work} key columns per query, more than {WORK_RATIO:.0%} of a sequence "
                    f"of {length}: dense is cheaper"]
        return []

    def plan(self, graph: AttentionGraph) -> BandPlan:
        return plan_band(graph, graph.pattern.pieces(), self.block)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: BandPlan, *,
                need_weights: bool) -> KernelResult:
        return KernelResult(*band_core(q, k, v, graph, spec, plan, need_weights=need_weights))

    def reached(self, graph: AttentionGraph, plan: BandPlan, bad: Tensor) -> Tensor:
        flags = bad.to(torch.float32)[..., None]  # (N, H, 1): a one-channel "value"
        n = bad.size(0)
        if plan.mask.size(2) == 0:
            return torch.zeros_like(bad)
        rows = _key_rows(flags, plan)[..., 0].permute(1, 2, 0)  # (nb, S, H)
        out = reached_on_rows(plan.mask, rows, plan.memo).reshape(plan.npad, -1)[:n]  # (N, H)
        if plan.global_rows.numel():
            keys = flags[plan.sequence_keys][..., 0]  # (B, L, H)
            if plan.sequence_mask is not None:
                keys = keys * plan.sequence_mask[..., None]
            per_sequence = keys.amax(dim=1) > 0  # (B, H): a global query sees its whole sequence
            sequence = plan.global_slots // plan.global_ids.size(1)
            out = out.index_copy(0, plan.global_rows, per_sequence.index_select(0, sequence))
        return out


def band_core(q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: BandPlan, *,
              need_weights: bool) -> tuple[Tensor, Tensor | None]:
    """``(out [N, H, C], lse [N, H] | None)`` for a pattern graph with pieces."""
    n, heads, channels = q.shape
    explicit_path = needs_explicit(spec, need_weights)
    if plan.mask.size(2) == 0:  # no piece has a key: every query attends to nothing
        return v.new_zeros(v.shape), (q.new_full((n, heads), float("-inf")) if explicit_path else None)
    kb, vb = _key_rows(k, plan), _key_rows(v, plan)  # (H, nb, S, C)
    nb, block = plan.mask.size(0), plan.block
    qb = F.pad(q, (0, 0, 0, 0, 0, plan.npad - n)).view(nb, block, heads, channels).permute(2, 0, 1, 3)  # (H, nb, b, C)
    out, lse = tile_attention(qb, kb, vb, plan.mask, spec, explicit_path, plan.query_ids, plan.key_ids,
                              graph, plan.memo, "band")
    if lse is not None:
        lse = lse.permute(1, 2, 0).reshape(plan.npad, heads)[:n]  # (N, H)
    out = out.permute(1, 2, 0, 3).reshape(plan.npad, heads, -1)[:n]  # (N, H, C)
    if plan.global_rows.numel():
        out, lse = _global_rows(q, k, v, graph, spec, plan, out, lse, explicit_path)
    return out, lse


def _key_rows(t: Tensor, plan: BandPlan) -> Tensor:
    """``t [N, H, C]`` laid as the key row of every query block: ``[H, nb, S, C]``."""
    n, parts = t.size(0), []
    if plan.span:
        pad = (0, 0, 0, 0, plan.left, plan.npad - n + plan.right)
        # unfold: (nb, H, C, S) views of the padded keys, one per block, overlapping in memory.
        parts.append(F.pad(t, pad).unfold(0, plan.span, plan.block).permute(1, 0, 3, 2))  # (H, nb, S, C)
    if plan.gathered.size(1):  # global and random key columns
        parts.append(t[plan.gathered].permute(2, 0, 1, 3))  # (H, nb, S', C)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)


@dataclass(frozen=True)
class BandPlan(Plan):
    """What the band / global / random path derives from the graph alone (once per graph).

    The key row of query block ``i`` is the band span (``span`` keys from ``i * b - left``,
    when there is a band) followed by the ``gathered`` key ids; ``mask [nb, b, S]`` says which
    of them each query counts; ``query_ids [nb, b]`` / ``key_ids [nb, S]`` are node ids (for
    score biases). Global queries attend to their own sequence only, laid per sequence:
    ``global_ids [B, G]`` (-1 = none), their sequence's keys ``sequence_keys [B, L]`` and
    ``sequence_mask [B, L]`` (``None`` when every sequence has ``L`` nodes), so their cost is
    O(B G L), not O(B G N) over the whole batch; ``global_rows [Gq]`` are the real ones in order
    and ``global_slots [Gq]`` their places in the flattened ``[B * G]``. ``memo`` keeps the
    score-bias index tiles of this layout (:mod:`graphattn.ops.bias`).
    """

    block: int
    npad: int
    left: int
    right: int
    span: int
    gathered: Tensor
    mask: Tensor
    query_ids: Tensor
    key_ids: Tensor
    global_ids: Tensor
    sequence_keys: Tensor
    sequence_mask: Tensor | None
    global_rows: Tensor
    global_slots: Tensor
    memo: dict = field(default_factory=dict, compare=False, repr=False)


def plan_band(graph: AttentionGraph, pieces: Pieces, block: int) -> BandPlan:
    """Key columns and masks of every query block from the pattern's pieces."""
    n, device = graph.num_nodes, graph.device
    sizes, starts = graph.layout.ptr.diff(), graph.layout.ptr[:-1]
    seq, pos = graph.layout.batch, graph.layout.position  # (N,) sequence, position in it
    nb = -(-n // block)
    npad = nb * block
    seq_q = F.pad(seq, (0, npad - n), value=-1).view(nb, block)  # (nb, b); padding queries: -1
    glob = _global_ids(pieces, graph.sizes, starts.cpu()).to(device)  # (B, G), -1 = none
    is_global = torch.zeros(n + 1, dtype=torch.bool, device=device)
    is_global[glob.flatten()] = True  # slot n absorbs the -1 fillers
    is_global = is_global[:n]

    key_ids, masks = [], []
    length = max(graph.layout.lengths)
    left = right = span = 0
    if pieces.band is not None:
        left, right = int(min(pieces.left, length - 1)), int(min(pieces.right, length - 1))
        span = block + left + right
        kid = (torch.arange(nb, device=device) * block - left)[:, None] + torch.arange(span, device=device)  # (nb, S)
        offset = torch.arange(span, device=device)[None, :] - left - torch.arange(block, device=device)[:, None]
        inside = pieces.band.mask(torch.zeros_like(offset), offset, length)  # (b, S): offsets allowed
        seq_k = torch.where((kid >= 0) & (kid < n), seq[kid.clamp(0, n - 1)], -2)
        masks.append(inside[None] & (seq_q[:, :, None] == seq_k[:, None, :]))  # (nb, b, S)
        key_ids.append(kid.clamp(0, n - 1))

    def in_band(qi: Tensor, ki: Tensor) -> Tensor:
        """Whether query ``qi`` already counts key ``ki`` (same sequence) through the band."""
        if pieces.band is None:
            return torch.zeros_like(qi, dtype=torch.bool)
        return pieces.band.mask(torch.zeros_like(qi), pos[ki] - pos[qi], length)

    qid = torch.arange(npad, device=device).view(nb, block).clamp(max=n - 1)  # (nb, b)
    gathered = []
    if glob.size(1):  # global key columns of every sequence a block touches
        first, last = seq_q[:, 0], seq_q.max(dim=1).values  # (nb,)
        reach = int((last - first).max()) + 1
        which = first[:, None] + torch.arange(reach, device=device)  # (nb, m)
        gid = glob[which.clamp(max=glob.size(0) - 1)]  # (nb, m, G)
        gid = torch.where((which <= last[:, None])[:, :, None], gid, -1).flatten(1)  # (nb, m * G)
        safe = gid.clamp(min=0)
        ok = (gid[:, None, :] >= 0) & (seq[safe][:, None, :] == seq_q[:, :, None])
        masks.append(ok & ~in_band(qid[:, :, None], safe[:, None, :]))  # (nb, b, m * G)
        gathered.append(safe)
    if pieces.randoms:  # each query's own random keys, as b * t columns per block
        table = _random_ids(pieces, graph.sizes, starts.cpu()).to(device)  # (N, t)
        t = table.size(1)
        dup = torch.zeros_like(table, dtype=torch.bool)
        for j in range(1, t):
            dup[:, j] = (table[:, j : j + 1] == table[:, :j]).any(dim=1)
        ok = ~dup & ~is_global[table] & ~in_band(torch.arange(n, device=device)[:, None], table)  # (N, t)
        ok = F.pad(ok, (0, 0, 0, npad - n), value=False).view(nb, block * t)
        owner = torch.arange(block, device=device).repeat_interleave(t)  # (b * t,)
        masks.append(ok[:, None, :] & (owner[None, None, :] == torch.arange(block, device=device)[None, :, None]))
        gathered.append(F.pad(table, (0, 0, 0, npad - n)).view(nb, block * t))
    empty = torch.zeros(nb, 0, dtype=torch.long, device=device)
    gathered_ids = torch.cat(gathered, dim=1) if gathered else empty
    key_ids.extend(gathered)
    mask = torch.cat(masks, dim=2) if masks else torch.zeros(nb, block, 0, dtype=torch.bool, device=device)
    in_seq = torch.arange(length, device=device)
    sequence_keys = (starts[:, None] + in_seq).clamp(max=max(n - 1, 0))  # (B, L)
    sequence_mask = None if min(graph.layout.lengths) == length else in_seq < sizes[:, None]
    slots = (glob.flatten() >= 0).nonzero()[:, 0]
    return BandPlan(block, npad, left, right, span, gathered_ids, mask, qid,
                    torch.cat(key_ids, dim=1) if key_ids else empty, glob, sequence_keys, sequence_mask,
                    glob.flatten()[slots], slots)


def _global_ids(pieces: Pieces, sizes: Tensor, starts: Tensor) -> Tensor:
    """``[B, G]`` node ids of each sequence's global tokens (padded with -1)."""
    if not pieces.global_nodes:
        return torch.empty(len(sizes), 0, dtype=torch.long)
    rows = [sorted({g % s + int(o) for g in pieces.global_nodes if -s <= g < s}) if s else []
            for s, o in zip(sizes.tolist(), starts)]
    width = max(len(r) for r in rows)
    return torch.tensor([r + [-1] * (width - len(r)) for r in rows], dtype=torch.long).view(len(rows), width)


def _random_ids(pieces: Pieces, sizes: Tensor, starts: Tensor) -> Tensor:
    """``[N, t]`` node ids of each query's random keys, all random pieces side by side."""
    per_size: dict[int, Tensor] = {}
    rows = []
    for s, o in zip(sizes.tolist(), starts.tolist()):
        if s == 0:
            continue
        if s not in per_size:
            per_size[s] = torch.cat([r.table(s) for r in pieces.randoms], dim=1)
        rows.append(per_size[s] + o)
    return torch.cat(rows)


def _global_rows(
    q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: BandPlan, out: Tensor,
    lse: Tensor | None, explicit_path: bool,
) -> tuple[Tensor, Tensor | None]:
    """Global queries attend to their whole sequence: per sequence, its ``G`` global queries
    against its ``L`` keys, written over their block rows."""
    ids, keys, key_mask = plan.global_ids, plan.sequence_keys, plan.sequence_mask
    qg = q[ids.clamp(min=0)].permute(0, 2, 1, 3)  # (B, H, G, C)
    kg, vg = k[keys].permute(0, 2, 1, 3), v[keys].permute(0, 2, 1, 3)  # (B, H, L, C)
    mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, L)
    bias = None
    if spec.bias is not None:  # (B, H, G, L), -inf where masked, as in tile_attention
        bias = tile_bias(graph, spec.bias, plan.memo, "global_rows", ids.clamp(min=0)[:, :, None], keys[:, None, :],
                         None if key_mask is None else key_mask[:, None, :], q.dtype).transpose(0, 1)
    rows, slots = plan.global_rows, plan.global_slots

    def real(t: Tensor) -> Tensor:  # (B, H, G, ...) -> (Gq, H, ...), the real global queries
        return t.transpose(1, 2).flatten(0, 1).index_select(0, slots)

    if not explicit_path:
        og = sdpa(qg, kg, vg, mask if bias is None else bias, spec.scale)  # (B, H, G, C)
        return out.index_copy(0, rows, real(og)), lse
    og, lg = explicit(qg, kg, vg, mask, spec, bias)  # (B, H, G, C), (B, H, G)
    return out.index_copy(0, rows, real(og)), lse.index_copy(0, rows, real(lg))
