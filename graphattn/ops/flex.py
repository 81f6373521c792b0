"""The flex kernel: ``torch.nn.attention.flex_attention`` over the padded batch.

Each sequence is padded to a multiple of FlexAttention's tile ``b`` (as the tile kernel does),
so tiles never straddle two sequences, and all of them form one FlexAttention sequence
``[1, H, nb * b, C]``. The ``BlockMask`` comes from the one tile planner of
:mod:`graphattn.ops.tiles` (pieces name the candidate tiles; a mask-only pattern is scanned
once per pattern value and length): empty tiles are never computed, full tiles skip the mask,
and the partial tiles keep their bits (one per pair, packed in bytes). The plan is built once per
:class:`~graphattn.ops.graph.AttentionGraph`, so every layer and the backward pass reuse it. The
kernel's ``mask_mod`` reads the stored bits with gathers only, which the compiled kernels lower
for any pattern (a pattern's own ``mask`` may use ``isin`` or reductions, which FlexAttention's
compiled ``mask_mod`` cannot hold), and which cost no recompile when the next graph has the
same size.

A score bias ``bias(q_idx, k_idx) -> [..., H]`` (ALiBi, relative position, shortest path) is
the ``score_mod`` ``score + bias(node[q_idx], node[k_idx])[h]``, so it stays inside the fused
kernel. The log-sum-exp FlexAttention returns gives the attention weights; a query without keys
gets zeros.

Where it runs (torch 2.13): on CUDA through ``torch.compile(flex_attention)``, forward and
backward. On CPU torch has no FlexAttention backward, and its compiled CPU kernel returns no
log-sum-exp and takes about 36 s to compile (measured, Window(128), n = 4096); so on CPU this
kernel calls ``flex_attention`` uncompiled (forward only, torch's reference path, which holds
the ``[H, N, N]`` scores) and says it cannot run a backward there. ``auto`` never picks it on
CPU. Slow twin: :func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .graph import AttentionGraph
from .kernel import Kernel, KernelResult, Plan, dot_only, needs_pattern
from .masked import FirstOrderOnly, reached_on_rows
from .scores import BiasFn, ScoreSpec
from .tiles import lay_tiles

try:
    from torch.nn.attention.flex_attention import BlockMask, flex_attention
except ImportError:  # torch < 2.5
    BlockMask = flex_attention = None
try:
    from torch.nn.attention.flex_attention import AuxRequest
except ImportError:  # torch < 2.9: return_lse=True instead
    AuxRequest = None

__all__ = ["Flex", "FlexPlan", "plan_flex", "FLEX_BLOCK"]

#: FlexAttention's tile (its default ``BLOCK_SIZE``).
FLEX_BLOCK = 128
_COMPILED: dict[str, object] = {}


@dataclass(frozen=True)
class FlexPlan(Plan):
    """What the flex kernel derives from the graph alone (once per graph).

    ``slot [N]`` each node's row in the padded layout of ``npad = nb * b`` rows; ``node [npad]``
    the node of every padded row (padding rows repeat node 0); ``block_mask`` the ``BlockMask``;
    ``key_blocks [nb, K]`` and ``masks [nb, b, K b]`` the tiles as the tile kernel lays them
    (for :meth:`Flex.reached`); ``any_key``: whether any query has a key.
    """

    block: int
    slot: Tensor
    node: Tensor
    block_mask: object
    key_blocks: Tensor
    masks: Tensor
    any_key: bool
    memo: dict = field(default_factory=dict, compare=False, repr=False)


class Flex(Kernel[FlexPlan]):
    """FlexAttention on the tile plan (see the module docstring)."""

    name = backend = "flex"
    mixes = True
    half_on = frozenset({"cuda"})  # SDPA / FlexAttention accumulate in float32 there

    def __init__(self, prefers: tuple[Kernel, ...] = ()):
        #: the tile kernels whose cases ``auto`` gives to flex on CUDA
        self.prefers = prefers

    def unsupported(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        if flex_attention is None:
            return [f"FlexAttention (needs torch >= 2.5, this is {torch.__version__})"]
        reasons = dot_only(spec) + needs_pattern(graph)
        if spec.dropout > 0 and spec.training:
            reasons.append("dropout on the attention weights (FlexAttention has none)")
        if spec.device not in ("cuda", "cpu"):
            reasons.append(f"tensors on {spec.device} (FlexAttention here runs on cuda and cpu)")
        if spec.device == "cpu" and spec.grad:
            reasons.append("a backward on CPU (torch's FlexAttention has none there: call backend='flex' under "
                           "torch.no_grad() on CPU, or run on CUDA)")
        return reasons

    def declines(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        if spec.device != "cuda":
            return ["off CUDA FlexAttention runs uncompiled, holding every score"]
        if not any(not k.unsupported(graph, spec) and not k.declines(graph, spec) for k in self.prefers):
            return ["no tile kernel would take this pattern (dense or sparse is cheaper)"]
        return []

    def plan(self, graph: AttentionGraph) -> FlexPlan:
        return plan_flex(graph, FLEX_BLOCK)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: FlexPlan, *,
                need_weights: bool) -> KernelResult:
        n, heads, channels = q.shape
        if not plan.any_key:  # FlexAttention needs one block; nobody attends to anything anyway
            return KernelResult(v.new_zeros(v.shape), q.new_full((n, heads), float("-inf")) if need_weights else None)
        if q.device.type == "cpu":  # torch refuses CPU inputs that require grad at all (no backward there)
            q, k, v = q.detach(), k.detach(), v.detach()
        npad = plan.node.numel()
        # the compiled kernels want a head dim of at least 16; zero columns change no score
        pad_to = 0 if q.device.type == "cpu" else max(16 - channels, 0)
        pad_v = 0 if q.device.type == "cpu" else max(16 - v.size(-1), 0)

        def lay(t: Tensor, extra: int) -> Tensor:  # (N, H, C) -> (1, H, npad, C + extra)
            rows = t.new_zeros(npad, heads, t.size(-1)).index_copy(0, plan.slot, t)
            return F.pad(rows, (0, extra)).transpose(0, 1)[None]

        score_mod = None if spec.bias is None else _score_mod(spec.bias, plan.node)
        out, lse = _call(lay(q, pad_to), lay(k, pad_to), lay(v, pad_v), score_mod, plan.block_mask, spec.scale, need_weights)
        out = out[0, :, :, : v.size(-1)].transpose(0, 1).index_select(0, plan.slot)  # (N, H, C)
        if lse is not None:
            lse = lse[0].transpose(0, 1).index_select(0, plan.slot).to(q.dtype)  # (N, H)
        return KernelResult(out, lse)

    def reached(self, graph: AttentionGraph, plan: FlexPlan, bad: Tensor) -> Tensor:
        nb, block = plan.key_blocks.size(0), plan.block
        flags = bad.to(torch.float32).new_zeros((nb + 1) * block, bad.size(1)).index_copy(0, plan.slot, bad.float())
        rows = flags.view(nb + 1, block, -1)[plan.key_blocks].flatten(1, 2)  # (nb, K b, H)
        hit = reached_on_rows(plan.masks, rows, plan.memo)  # (nb, b, H)
        return hit.reshape(nb * block, -1).index_select(0, plan.slot)


def _score_mod(bias: BiasFn, node: Tensor):
    """``score + bias`` on the nodes of the padded rows."""
    def score_mod(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return score + bias(node[q_idx], node[kv_idx])[h].to(score.dtype)
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
            out, lse = fn(q, k, v, **kwargs), None
        elif AuxRequest is not None:
            out, aux = fn(q, k, v, return_aux=AuxRequest(lse=True), **kwargs)
            lse = aux.lse
        else:
            out, lse = fn(q, k, v, return_lse=True, **kwargs)
    return (FirstOrderOnly.apply(out, "flex kernel") if out.requires_grad else out), lse


def plan_flex(graph: AttentionGraph, block: int) -> FlexPlan:
    """The ``BlockMask`` of the padded batch from the tile planner: per (query block, key block)
    empty, full or partial (its bits packed 8 to a byte)."""
    slot, key_blocks, masks, node = lay_tiles(graph, block)
    device, (nb, width) = graph.device, key_blocks.shape
    count = masks.sum(dim=(2, 3))  # (nb, K)
    valid = key_blocks < nb
    full_tile, partial_tile = valid & (count == block * block), valid & (count > 0) & (count < block * block)
    rows = torch.arange(nb)[:, None].expand_as(key_blocks)
    full = torch.zeros(nb, nb + 1, dtype=torch.bool)
    full[rows[full_tile], key_blocks[full_tile]] = True
    partial = torch.zeros(nb, nb + 1, dtype=torch.bool)
    partial[rows[partial_tile], key_blocks[partial_tile]] = True
    full, partial = full[:, :nb], partial[:, :nb]
    tile = torch.full((nb, nb), -1, dtype=torch.long)
    order = partial.nonzero()  # row-major
    tile[order[:, 0], order[:, 1]] = torch.arange(order.size(0))
    # the bits of each partial tile, in the row-major order of ``tile``
    which = torch.zeros(nb, nb + 1, dtype=torch.long)
    which[rows[partial_tile], key_blocks[partial_tile]] = partial_tile.flatten().nonzero()[:, 0]
    chosen = masks.flatten(0, 1)[which[:, :nb][partial]]  # (P, b, b)
    weights = 1 << torch.arange(8)  # bit j of a byte: key 8 w + j
    packed = (chosen.view(-1, block, block // 8, 8).long() * weights).sum(dim=-1).to(torch.uint8)  # (P, b, b / 8)
    # one spare all-zero tile, so the mask_mod's gather has a row to read when no tile is partial
    bits = torch.cat([packed, torch.zeros(1, block, block // 8, dtype=torch.uint8)]).to(device)
    tile, full = tile.to(device), full.to(device)
    block_mask = BlockMask.from_kv_blocks(
        *_ordered(partial.to(device)), *_ordered(full), BLOCK_SIZE=block,
        mask_mod=_tile_mask_mod(tile, full, bits, block), seq_lengths=(nb * block, nb * block))
    laid = masks.permute(0, 2, 1, 3).reshape(nb, block, width * block)  # (nb, b, K b)
    return FlexPlan(block, slot.to(device), node[: nb * block].to(device), block_mask, key_blocks.to(device),
                    laid.to(device), bool(valid.any()))


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
