"""The flex kernel: ``torch.nn.attention.flex_attention`` over the packed batch.

All ``N`` nodes of the batch are one FlexAttention sequence ``[1, H, N, C]``. Who attends to
whom is the pattern's own ``mask`` inside a document mask: query ``i`` and key ``j`` must lie
in the same sequence, and the pattern is asked with their positions in that sequence and that
sequence's own ``n`` (virtual nodes included), exactly as :meth:`Pattern.dense_mask` lays it.
As ``create_block_mask`` does, that predicate is evaluated once per
:class:`~graphattn.ops.graph.AttentionGraph` (one chunk of query rows at a time, memory
O(chunk), work O(N^2) predicate evaluations) and reduced to ``b x b`` tiles: empty tiles are
never computed, full tiles skip the mask, and the partial tiles keep their bits (one per pair,
packed in bytes). The ``BlockMask`` and those bits are cached on the graph, so every layer and
the backward pass reuse them. The kernel's ``mask_mod`` reads the stored bits with gathers
only, which the compiled kernels lower for any pattern (a pattern's own ``mask`` may use
``isin`` or reductions, which FlexAttention's compiled ``mask_mod`` cannot hold), and which
cost no recompile when the next graph has the same size.

A score bias ``bias(q_idx, k_idx) -> [..., H]`` (ALiBi, relative position, shortest path) is
the ``score_mod`` ``score + bias(q_idx, k_idx)[h]``, so it stays inside the fused kernel.
Attention weights come from the log-sum-exp FlexAttention returns
(:func:`~graphattn.ops.masked.edge_weights`); a query without keys gets zeros.

Where it runs (torch 2.13): on CUDA through ``torch.compile(flex_attention)``, forward and
backward. On CPU torch has no FlexAttention backward, and its compiled CPU kernel returns no
log-sum-exp and takes about 36 s to compile (measured, Window(128), n = 4096); so on CPU this
kernel calls ``flex_attention`` uncompiled (forward only, torch's reference path, which holds
the ``[H, N, N]`` scores) and refuses autograd with ``NotImplementedError``. ``auto`` never
picks it on CPU. Slow twin: :func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .blocked import blocked_unsupported
from .graph import AttentionGraph
from .masked import edge_weights
from .scatter import falls_back_to_scatter
from .scores import BiasFn, ScoreSpec

try:
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
except ImportError:  # torch < 2.5
    BlockMask = flex_attention = None
try:
    from torch.nn.attention.flex_attention import AuxRequest
except ImportError:  # torch < 2.9: return_lse=True instead
    AuxRequest = None

__all__ = ["flex_attention_kernel", "flex_unsupported", "FlexPlan", "plan_flex", "FLEX_BLOCK"]

#: FlexAttention's tile (its default ``BLOCK_SIZE``).
FLEX_BLOCK = 128
#: Predicate evaluations per chunk of the mask scan, per device type.
SCAN_CHUNK = {"cpu": 1 << 22}
SCAN_CHUNK_DEFAULT = 1 << 25
#: Why the CPU path refuses autograd.
CPU_BACKWARD = ("FlexAttention has no backward on CPU (torch 2.13): call backend='flex' under torch.no_grad() / "
                "torch.inference_mode() on CPU, or run on CUDA")
_COMPILED: dict[str, object] = {}


def flex_unsupported(graph: AttentionGraph, spec: ScoreSpec) -> str | None:
    """Why the flex kernel cannot run this (``None`` if it can), e.g. autograd on CPU
    (``spec.grad``); ``ops.attention`` then runs what ``auto`` picks, and the kernel called
    directly with inputs that need a backward on CPU raises :data:`CPU_BACKWARD`."""
    if flex_attention is None:
        return f"FlexAttention (needs torch >= 2.5, this is {torch.__version__})"
    reason = blocked_unsupported(graph, spec)  # a pattern and dot scores, as the tile kernels
    if reason is not None:
        return reason
    if spec.dropout > 0 and spec.training:
        return "dropout on the attention weights (FlexAttention has none)"
    if graph.device.type not in ("cuda", "cpu"):
        return f"tensors on {graph.device.type} (FlexAttention here runs on cuda and cpu)"
    if graph.device.type == "cpu" and spec.grad:
        return "a backward on CPU (torch's FlexAttention has none there)"
    return None


@falls_back_to_scatter(flex_unsupported)
def flex_attention_kernel(
    q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, *, return_weights: bool = False
) -> tuple[Tensor, Tensor | None]:
    n, heads, channels = q.shape
    if q.device.type == "cpu" and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        raise NotImplementedError(CPU_BACKWARD)
    if q.device.type == "cpu" and not torch.is_grad_enabled():  # torch refuses CPU inputs that require grad at all
        q, k, v = q.detach(), k.detach(), v.detach()
    if n == 0:
        return v.new_zeros(v.shape), (q.new_zeros(0, heads) if return_weights else None)
    plan: FlexPlan = graph.cached(("flex", str(q.device), FLEX_BLOCK), lambda: plan_flex(graph, FLEX_BLOCK))
    if not plan.any_key:  # FlexAttention needs one block; nobody attends to anything anyway
        return v.new_zeros(v.shape), (q.new_zeros(0, heads) if return_weights else None)
    # the compiled kernels want a head dim of at least 16; zero columns change no score
    pad_to = 0 if q.device.type == "cpu" else max(16 - channels, 0)
    pad_v = 0 if q.device.type == "cpu" else max(16 - v.size(-1), 0)
    qf = F.pad(q, (0, pad_to)).transpose(0, 1)[None]  # (1, H, N, C)
    kf = F.pad(k, (0, pad_to)).transpose(0, 1)[None]
    vf = F.pad(v, (0, pad_v)).transpose(0, 1)[None]
    score_mod = None if spec.bias is None else _score_mod(spec.bias)
    out, lse = _call(qf, kf, vf, score_mod, plan.block_mask, spec.scale, return_weights)
    out = out[0, :, :, : v.size(-1)].transpose(0, 1)  # (N, H, C)
    if not return_weights:
        return out, None
    return out, edge_weights(q, k, graph, spec, lse[0].transpose(0, 1).to(q.dtype))  # lse: (1, H, N) -> (N, H)


def _score_mod(bias: BiasFn):
    def score_mod(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return score + bias(q_idx.long(), kv_idx.long())[h].to(score.dtype)
    return score_mod


def _call(q: Tensor, k: Tensor, v: Tensor, score_mod, block_mask, scale: float, with_lse: bool):
    """``(out (1, H, N, C), lse (1, H, N) | None)``: compiled on CUDA, torch's uncompiled
    reference path on CPU (see the module docstring for why)."""
    if q.device.type == "cpu":
        fn = flex_attention
    else:
        fn = _COMPILED.get("flex")
        if fn is None:
            fn = _COMPILED["flex"] = torch.compile(flex_attention)
    kwargs = {"score_mod": score_mod, "block_mask": block_mask, "scale": scale}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        if not with_lse:
            return fn(q, k, v, **kwargs), None
        if AuxRequest is not None:
            out, aux = fn(q, k, v, return_aux=AuxRequest(lse=True), **kwargs)
            return out, aux.lse
        return fn(q, k, v, return_lse=True, **kwargs)


class FlexPlan(NamedTuple):
    """What the flex kernel derives from the graph alone (cached per graph and device).

    ``block_mask``: the ``BlockMask`` of the packed batch; ``tile [nb, nb]``: the partial tile
    id of each (query block, key block), ``-1`` for empty or full ones; ``full [nb, nb]``;
    ``bits [P, b, b / 8]``: the packed mask bits of the partial tiles; ``any_key``: whether
    any query has a key.
    """

    block_mask: object
    tile: Tensor
    full: Tensor
    bits: Tensor
    any_key: bool


def document_mask(graph: AttentionGraph):
    """``mask(q_idx, k_idx) -> bool``, broadcasting, on batch-global node ids: same sequence,
    and the pattern's own ``mask`` on the positions in that sequence and its own ``n``
    (evaluated once per distinct sequence length)."""
    pattern, device = graph.pattern, graph.device
    sizes = graph.sizes.to(device)
    seq = graph.batch  # (N,)
    starts = torch.cumsum(sizes, 0) - sizes  # (B,)
    own = sizes[seq]  # (N,) the length of every node's sequence
    lengths = sorted(s for s in set(graph.sizes.tolist()) if s)

    def mask(q_idx: Tensor, k_idx: Tensor) -> Tensor:
        s = seq[q_idx]
        same = s == seq[k_idx]
        lq, lk = q_idx - starts[s], k_idx - starts[s]  # keys of other sequences: out of range, masked by same
        out = None
        for m in lengths:
            part = pattern.mask(lq.clamp(0, m - 1), lk.clamp(0, m - 1), m)
            if len(lengths) > 1:
                part = part & (own[q_idx] == m)
            out = part if out is None else out | part
        return same & out

    return mask


def plan_flex(graph: AttentionGraph, block: int) -> FlexPlan:
    """Scan :func:`document_mask` chunk by chunk of query blocks into tiles and a ``BlockMask``."""
    n, device = graph.num_nodes, graph.device
    nb = -(-n // block)
    npad = nb * block
    mask = document_mask(graph)
    rows = max(1, SCAN_CHUNK.get(device.type, SCAN_CHUNK_DEFAULT) // (npad * block)) * block
    keys = torch.arange(n, device=device)[None, :]
    weights = (1 << torch.arange(8, device=device)).to(torch.uint8)  # bit j of a byte: key 8 w + j
    anys, fulls, bits = [], [], []
    for start in range(0, npad, rows):
        stop = min(start + rows, npad)
        queries = torch.arange(start, min(stop, n), device=device)[:, None]
        m = mask(queries, keys).expand(queries.size(0), n)  # (r, N)
        m = F.pad(m, (0, npad - n, 0, stop - start - queries.size(0)))  # padding: never attends
        t = m.view(-1, block, nb, block).transpose(1, 2)  # (c, nb, b, b)
        count = t.sum(dim=(2, 3))  # (c, nb)
        anys.append(count > 0)
        fulls.append(count == block * block)
        partial = (count > 0) & (count < block * block)
        packed = t[partial].view(-1, block, block // 8, 8).to(torch.uint8) * weights  # (P_c, b, b / 8, 8)
        bits.append(packed.sum(dim=-1, dtype=torch.uint8))
    nonempty, full = torch.cat(anys), torch.cat(fulls)  # (nb, nb)
    partial = nonempty & ~full
    tile = torch.full((nb, nb), -1, dtype=torch.long, device=device)
    tile[partial] = torch.arange(int(partial.sum()), device=device)  # row-major, as the chunks were packed
    # one spare all-zero tile, so the mask_mod's gather has a row to read when no tile is partial
    bit_table = torch.cat([*bits, torch.zeros(1, block, block // 8, dtype=torch.uint8, device=device)])
    block_mask = BlockMask.from_kv_blocks(
        *_ordered(partial), *_ordered(full), BLOCK_SIZE=block, mask_mod=_tile_mask_mod(tile, full, bit_table, block),
        seq_lengths=(n, n))
    return FlexPlan(block_mask, tile, full, bit_table, bool(nonempty.any()))


def _ordered(flags: Tensor) -> tuple[Tensor, Tensor]:
    """``[nb, nb]`` block flags -> ``(num [1, 1, nb], indices [1, 1, nb, nb])`` int32, the set
    key blocks of each query block first, in ascending order."""
    num = flags.sum(dim=1).to(torch.int32)
    indices = torch.argsort((~flags).to(torch.int8), dim=1, stable=True).to(torch.int32)
    return num[None, None], indices[None, None]


def _tile_mask_mod(tile: Tensor, full: Tensor, bits: Tensor, block: int):
    """The ``mask_mod`` of the plan: the stored bit of a partial tile, else the tile's own state."""
    def mask_mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        qb, kb = q_idx // block, kv_idx // block
        t = tile[qb, kb]
        byte = bits[t.clamp(min=0), q_idx % block, (kv_idx % block) // 8].to(torch.int32)
        bit = ((byte >> (kv_idx % 8).to(torch.int32)) & 1) == 1
        return torch.where(t >= 0, bit, full[qb, kb])
    return mask_mod
