"""The blocked kernel: sequence patterns computed tile by tile, never edge by edge.

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
A lone ``Stride(s)`` is instead permuted into ``s`` interleaved sub-sequences, on which it is
``Full()`` (dense kernel) or, with ``reach``, ``Window(reach // s)``. A pattern without pieces
(one that defines only ``mask``) takes the generic tile path of :mod:`graphattn.ops.tiles`.

Everything that depends only on the graph (key ids, tile masks, permutations) is derived
once per :class:`~graphattn.ops.graph.AttentionGraph` and cached there, so the layers of a
model and the backward pass reuse it.

Memory: O(N x keys per block row) for the mask, O(N H C x (b + left + right) / b) for
the unfolded keys in backward; never O(N^2) or O(E H C). A score bias is evaluated on the same
tiles and handed to SDPA as a float mask (still fused); dropout and weights use the explicit
matmul + log-sum-exp path on the same tiles. Slow twin:
:func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..patterns import Full, Window
from ..patterns.pieces import Pieces
from .bias import tile_bias
from .dense import dense_core
from .graph import AttentionGraph
from .masked import edge_weights, explicit, needs_explicit, sdpa, tile_attention
from .scatter import falls_back_to_scatter
from .scores import ScoreSpec
from .tiles import tiled_core

__all__ = ["blocked_attention", "blocked_core", "blocked_unsupported", "BLOCK"]

#: Queries per block: 64 keeps the band's wasted corners small for radii around 128.
BLOCK = 64


def blocked_unsupported(graph: AttentionGraph, spec: ScoreSpec) -> str | None:
    """Why the blocked kernel cannot run this (``None`` if it can)."""
    if spec.score != "dot":
        return f"{spec.score} scores"
    if spec.edge_kv is not None:
        return "edge features (edge_kv)"
    if graph.pattern is None:
        return "an explicit edge_index (no pattern)"
    return None


@falls_back_to_scatter(blocked_unsupported)
def blocked_attention(
    q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, *,
    return_weights: bool = False, block: int = BLOCK,
) -> tuple[Tensor, Tensor | None]:
    if q.size(0) == 0:
        return v.new_zeros(v.shape), (q.new_zeros(0, q.size(1)) if return_weights else None)
    out, lse = blocked_core(q, k, v, graph, spec, with_lse=return_weights, block=block)
    return out, (edge_weights(q, k, graph, spec, lse) if return_weights else None)


def blocked_core(
    q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, *, with_lse: bool, block: int
) -> tuple[Tensor, Tensor | None]:
    """``(out [N, H, C], lse [N, H] | None)`` for a pattern graph."""
    pieces = graph.cached("pieces", graph.pattern.pieces)
    if pieces is None:
        return tiled_core(q, k, v, graph, spec, with_lse=with_lse, block=block)
    if pieces.stride is not None and pieces.stride > 1:
        return _strided(q, k, v, graph, spec, pieces, with_lse=with_lse, block=block)
    n, heads, channels = q.shape
    plan: BandPlan = graph.cached(("band", block), lambda: plan_band(graph, pieces, block))
    explicit_path = needs_explicit(spec, with_lse)
    if plan.mask.size(2) == 0:  # no piece has a key: every query attends to nothing
        return v.new_zeros(v.shape), (q.new_full((n, heads), float("-inf")) if explicit_path else None)
    keys, values = [], []
    if plan.span:
        pad = (0, 0, 0, 0, plan.left, plan.npad - n + plan.right)
        # unfold: (nb, H, C, S) views of the padded keys, one per block, overlapping in memory.
        keys.append(F.pad(k, pad).unfold(0, plan.span, block).permute(1, 0, 3, 2))  # (H, nb, S, C)
        values.append(F.pad(v, pad).unfold(0, plan.span, block).permute(1, 0, 3, 2))  # (H, nb, S, C)
    if plan.gathered.size(1):  # global and random key columns
        keys.append(k[plan.gathered].permute(2, 0, 1, 3))  # (H, nb, S', C)
        values.append(v[plan.gathered].permute(2, 0, 1, 3))
    kb = keys[0] if len(keys) == 1 else torch.cat(keys, dim=2)  # (H, nb, S, C)
    vb = values[0] if len(values) == 1 else torch.cat(values, dim=2)
    nb = plan.mask.size(0)
    qb = F.pad(q, (0, 0, 0, 0, 0, plan.npad - n)).view(nb, block, heads, channels).permute(2, 0, 1, 3)  # (H, nb, b, C)
    out, lse = tile_attention(qb, kb, vb, plan.mask, spec, explicit_path, plan.query_ids, plan.key_ids,
                              graph, ("band", block))
    if lse is not None:
        lse = lse.permute(1, 2, 0).reshape(plan.npad, heads)[:n]  # (N, H)
    out = out.permute(1, 2, 0, 3).reshape(plan.npad, heads, -1)[:n]  # (N, H, C)
    if plan.global_rows.numel():
        out, lse = _global_rows(q, k, v, graph, spec, plan, out, lse, explicit_path, block)
    return out, lse


class BandPlan(NamedTuple):
    """What the band / global / random path derives from the graph alone (cached per graph).

    The key row of query block ``i`` is the band span (``span`` keys from ``i * b - left``,
    when there is a band) followed by the ``gathered`` key ids; ``mask [nb, b, S]`` says which
    of them each query counts; ``query_ids [nb, b]`` / ``key_ids [nb, S]`` are node ids (for
    score biases). Global queries attend to their own sequence only, laid per sequence:
    ``global_ids [B, G]`` (-1 = none), their sequence's keys ``sequence_keys [B, L]`` and
    ``sequence_mask [B, L]`` (``None`` when every sequence has ``L`` nodes), so their cost is
    O(B G L), not O(B G N) over the whole batch; ``global_rows [Gq]`` are the real ones in order.
    """

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


def plan_band(graph: AttentionGraph, pieces: Pieces, block: int) -> BandPlan:
    """Key columns and masks of every query block from the pattern's pieces."""
    n, device = graph.num_nodes, graph.device
    sizes = graph.sizes.to(device)
    starts = torch.cumsum(sizes, 0) - sizes
    seq = graph.batch  # (N,)
    pos = torch.arange(n, device=device) - starts[seq]  # (N,) position in own sequence
    nb = -(-n // block)
    npad = nb * block
    seq_q = F.pad(seq, (0, npad - n), value=-1).view(nb, block)  # (nb, b); padding queries: -1
    glob = _global_ids(pieces, graph.sizes, starts.cpu()).to(device)  # (B, G), -1 = none
    is_global = torch.zeros(n + 1, dtype=torch.bool, device=device)
    is_global[glob.flatten()] = True  # slot n absorbs the -1 fillers
    is_global = is_global[:n]

    key_ids, masks = [], []
    length = int(sizes.max())
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
    sequence_mask = None if bool((sizes == length).all()) else in_seq < sizes[:, None]
    return BandPlan(npad, left, right, span, gathered_ids, mask, qid,
                    torch.cat(key_ids, dim=1) if key_ids else empty, glob, sequence_keys, sequence_mask,
                    glob[glob >= 0])


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
    lse: Tensor | None, explicit_path: bool, block: int,
) -> tuple[Tensor, Tensor | None]:
    """Global queries attend to their whole sequence: per sequence, its ``G`` global queries
    against its ``L`` keys, written over their block rows."""
    ids, keys, key_mask = plan.global_ids, plan.sequence_keys, plan.sequence_mask
    real = ids >= 0  # (B, G)
    qg = q[ids.clamp(min=0)].permute(0, 2, 1, 3)  # (B, H, G, C)
    kg, vg = k[keys].permute(0, 2, 1, 3), v[keys].permute(0, 2, 1, 3)  # (B, H, L, C)
    mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, L)
    bias = None
    if spec.bias is not None:  # (B, H, G, L), -inf where masked, as in tile_attention
        bias = tile_bias(graph, spec.bias, ("global_rows", block), ids.clamp(min=0)[:, :, None], keys[:, None, :],
                         None if key_mask is None else key_mask[:, None, :], q.dtype).transpose(0, 1)
    rows = plan.global_rows
    if not explicit_path:
        og = sdpa(qg, kg, vg, mask if bias is None else bias, spec.scale)  # (B, H, G, C)
        return out.index_copy(0, rows, og.transpose(1, 2)[real]), lse
    og, lg = explicit(qg, kg, vg, mask, spec, bias)  # (B, H, G, C), (B, H, G)
    return out.index_copy(0, rows, og.transpose(1, 2)[real]), lse.index_copy(0, rows, lg.transpose(1, 2)[real])


def _strided(
    q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, pieces: Pieces, *,
    with_lse: bool, block: int,
) -> tuple[Tensor, Tensor | None]:
    """A lone ``Stride(s)``: keys share the query's residue mod ``s``; permute into ``s``
    sub-sequences per sequence, on which the pattern is ``Full()`` (or ``Window(reach // s)``)."""
    order, inverse, sub_graph = graph.cached("strided", lambda: _stride_layout(graph, pieces))
    sub_spec = spec
    if spec.bias is not None:
        sub_spec = replace(spec, bias=lambda qi, ki: spec.bias(order[qi], order[ki]))
    qs, ks, vs = q[order], k[order], v[order]
    if pieces.reach is None:
        out, lse = dense_core(qs, ks, vs, sub_graph, sub_spec, with_lse=with_lse)
    else:
        out, lse = blocked_core(qs, ks, vs, sub_graph, sub_spec, with_lse=with_lse, block=block)
    return out[inverse], (lse[inverse] if lse is not None else None)


def _stride_layout(graph: AttentionGraph, pieces: Pieces) -> tuple[Tensor, Tensor, AttentionGraph]:
    """``(order, inverse, sub_graph)``: new slot -> node, node -> new slot, the sub-sequences."""
    stride, reach, device = pieces.stride, pieces.reach, graph.device
    sizes, n = graph.sizes.to(device), graph.num_nodes
    seq = graph.batch
    pos = torch.arange(n, device=device) - (torch.cumsum(sizes, 0) - sizes)[seq]
    sub_sizes = (sizes[:, None] - torch.arange(stride, device=device) + stride - 1).clamp(min=0) // stride
    order = torch.argsort((seq * stride + pos % stride) * (n + 1) + pos // stride)  # new slot -> node
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(n, device=device)
    sub = Full() if reach is None else Window(reach // stride)
    sub_graph = AttentionGraph(n, pattern=sub, sizes=sub_sizes.flatten().cpu(), device=device)
    return order, inverse, sub_graph
