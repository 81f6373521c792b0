"""The dense kernel: one ``scaled_dot_product_attention`` call over padded sequences.

A batch of sequences is padded to ``[B, H, L_max, C]``; keys past a sequence's end are
masked out, so the block-diagonal graph costs ``B L_max^2`` instead of ``N^2``. ``Full()``
needs no mask for one sequence and only a key-padding mask ``[B, 1, 1, L]`` for a batch;
other patterns pass their ``mask`` as a boolean ``[B, 1, L, L]``; an ``edge_index`` graph
passes its adjacency (``log`` multiplicity as a float mask when it has duplicate edges).
Memory: O(B L^2) for the mask, O(N H C) for the rest on the fused path (a score bias joins it
as a float mask, O(B H L^2)); dropout and attention weights take the explicit path (O(B H L^2)
scores). Slow twin: :func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .bias import dense_bias
from .graph import AttentionGraph
from .kernel import Kernel, KernelResult, Plan, dot_only
from .masked import explicit, masked_lse, needs_explicit, sdpa
from .scores import ScoreSpec

__all__ = ["Dense", "DensePlan", "DENSE_MAX_MASK", "DENSE_MIN_DENSITY"]

#: The dense kernel's mask is ``B L^2`` booleans; above this many ``auto`` does not pick it.
DENSE_MAX_MASK = 1 << 28
#: ``auto`` picks dense over sparse for graphs at least this dense (edges / (B L^2)).
DENSE_MIN_DENSITY = 0.05


@dataclass(frozen=True)
class DensePlan(Plan):
    """The padded layout: ``slot [N]`` where each node sits among ``B * L`` rows (``None`` when
    nothing is padded); the mask ``[B, 1, L|1, L]`` (bool, True = may attend; ``None`` for one full
    sequence) or, for duplicate edges, ``log_counts [1, 1, N, N]`` (float64, cast to the inputs'
    dtype per call; ``-inf`` off the graph); ``node [B, L]`` the node in every padded slot (for score biases)."""

    slot: Tensor | None
    batch: int
    length: int
    mask: Tensor | None
    log_counts: Tensor | None
    node: Tensor
    memo: dict = field(default_factory=dict, compare=False, repr=False)


def plan_dense(graph: AttentionGraph) -> DensePlan:
    device, n = graph.device, graph.num_nodes
    lengths = graph.layout.lengths if graph.pattern is not None else (n,)
    batch, length = len(lengths), max(lengths, default=0)
    if graph.pattern is not None:
        seq, pos = graph.layout.batch, graph.layout.position
    else:
        seq, pos = torch.zeros(n, dtype=torch.long, device=device), torch.arange(n, device=device)
    slot = seq * length + pos
    node = torch.full((batch * length,), max(n - 1, 0), dtype=torch.long, device=device)
    node = node.index_copy(0, slot, torch.arange(n, device=device)).view(batch, length)
    log_counts = mask = None
    if graph.pattern is None:
        src, dst = graph.edge_index
        counts = torch.zeros(n * n, dtype=torch.float64, device=device)
        counts = counts.index_add_(0, dst * n + src, torch.ones(src.numel(), dtype=torch.float64, device=device))
        counts = counts.view(1, 1, n, n)
        mask = counts > 0
        if bool((counts > 1).any()):  # duplicates: each copy is one more message, log(count) in the score
            log_counts = torch.where(mask, counts.log(), float("-inf"))
    else:
        mask = _pattern_mask(graph, batch, length)
    return DensePlan(None if batch * length == n else slot, batch, length, mask, log_counts, node)


def _pattern_mask(graph: AttentionGraph, batch: int, length: int) -> Tensor | None:
    device, pieces = graph.device, graph.pattern.pieces()
    lengths = graph.layout.lengths
    if pieces is not None and pieces.full:
        if batch == 1:
            return None
        return (torch.arange(length, device=device) < torch.tensor(lengths, device=device)[:, None])[:, None, None, :]
    mask = torch.zeros(batch, 1, length, length, dtype=torch.bool, device=device)
    per_size: dict[int, Tensor] = {}
    for b, size in enumerate(lengths):
        if size not in per_size:
            per_size[size] = graph.pattern.dense_mask(size, device=device)
        mask[b, 0, :size, :size] = per_size[size]
    return mask


class Dense(Kernel[DensePlan]):
    """Scaled dot-product attention over the padded batch (see the module docstring)."""

    name = backend = "dense"
    mixes = True
    half_on = frozenset({"cuda"})  # SDPA / FlexAttention accumulate in float32 there

    def unsupported(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        return dot_only(spec)

    def declines(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        lengths = graph.layout.lengths if graph.pattern is not None else (graph.num_nodes,)
        batch, length = len(lengths), max(lengths, default=0)
        if batch * length * length > DENSE_MAX_MASK:
            return [f"its padded mask (B L^2 = {batch * length * length}) exceeds {DENSE_MAX_MASK}"]
        if graph.pattern is None:
            edges = graph.num_edges
        elif graph.pattern.has_generator:
            edges = graph.pattern.max_edges(length)
        else:  # known only by its mask: the tile kernel weighed its tiles against this kernel
            edges = length * length
        if edges < DENSE_MIN_DENSITY * length * length:
            return [f"the graph is sparse ({edges} of {length * length} pairs per sequence, below "
                    f"{DENSE_MIN_DENSITY:.0%}): the sparse kernel computes only the edges"]
        return []

    def footprint(self, graph: AttentionGraph, spec: ScoreSpec, need_weights: bool) -> int:
        lengths = graph.layout.lengths if graph.pattern is not None else (graph.num_nodes,)
        pairs = len(lengths) * max(lengths, default=0) ** 2
        heads, item = spec.shape[0], spec.dtype.itemsize
        scores = heads * pairs * item * (3 * needs_explicit(spec, need_weights) + (spec.bias is not None))
        return pairs + (8 * pairs if graph.pattern is None else 0) + scores  # mask (and counts), scores

    def plan(self, graph: AttentionGraph) -> DensePlan:
        return plan_dense(graph)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: DensePlan, *,
                need_weights: bool) -> KernelResult:
        out, lse = dense_core(q, k, v, graph, spec, plan, need_weights=need_weights)
        return KernelResult(out, lse)

    def reached(self, graph: AttentionGraph, plan: DensePlan, bad: Tensor) -> Tensor:
        flags = _pad(bad.to(torch.float32)[..., None], plan).squeeze(-1)  # (B, H, L)
        if plan.mask is None:  # one full sequence: every query sees every key
            out = flags.amax(dim=-1, keepdim=True).expand_as(flags)
        elif plan.mask.size(2) == 1:  # full sequences, padded: every query sees its sequence's keys
            out = (flags * plan.mask[:, :, 0]).amax(dim=-1, keepdim=True).expand_as(flags)
        else:  # (B, 1, L|1, L) @ (B, H, L, 1): how many bad keys each query attends to
            out = torch.matmul(plan.mask.to(flags.dtype).expand(-1, -1, plan.length, -1), flags[..., None])[..., 0]
        return _unpad(out[..., None], plan)[..., 0] > 0


def _pad(t: Tensor, plan: DensePlan) -> Tensor:
    """``[N, H, C] -> [B, H, L, C]``, padding slots zero."""
    if plan.slot is not None:
        t = t.new_zeros(plan.batch * plan.length, *t.shape[1:]).index_copy(0, plan.slot, t)
    return t.view(plan.batch, plan.length, t.size(1), -1).transpose(1, 2)


def _unpad(t: Tensor, plan: DensePlan) -> Tensor:
    """``[B, H, L, C] -> [N, H, C]``."""
    t = t.transpose(1, 2).reshape(plan.batch * plan.length, t.size(1), -1)
    return t if plan.slot is None else t.index_select(0, plan.slot)


def dense_core(q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: DensePlan, *,
               need_weights: bool) -> tuple[Tensor, Tensor | None]:
    """``(out [N, H, C], lse [N, H] | None)``: the output from SDPA unless dropout asks for the
    explicit path, so it is the same number whether or not weights are asked for (then ``lse``
    comes from the masked scores beside it)."""
    mask, bias = plan.mask, None
    if plan.log_counts is not None:
        bias = plan.log_counts.to(q.dtype)
    if spec.bias is not None:
        score_bias = dense_bias(graph, spec.bias, plan, q.dtype)  # (B, H, L, L), -inf where masked
        bias = score_bias if bias is None else bias + score_bias
    qp, kp, vp = _pad(q, plan), _pad(k, plan), _pad(v, plan)
    if not needs_explicit(spec, False):
        # a float bias (log-counts, score bias) holds -inf where masked: SDPA's one mask then
        out = _unpad(sdpa(qp, kp, vp, mask if bias is None else bias, spec.scale), plan)
        if not need_weights:
            return out, None
        return out, _unpad(masked_lse(qp, kp, mask, spec, bias)[1], plan)[..., 0]
    out, lse = explicit(qp, kp, vp, mask, spec, bias)  # (B, H, L, C), (B, H, L)
    return _unpad(out, plan), _unpad(lse[..., None], plan)[..., 0]
