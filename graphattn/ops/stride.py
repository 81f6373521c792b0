"""The stride kernel: a lone ``Stride(s)`` permuted into ``s`` interleaved sub-sequences.

Keys of ``Stride(s)`` share the query's residue modulo ``s``. Sorting each sequence's nodes by
(residue, position) lays them as ``s`` sub-sequences of about ``L / s`` nodes on which the
pattern is ``Full()`` (computed by the dense kernel) or, with ``reach``, ``Window(reach // s)``
(the band kernel): ``1 / s`` of dense's work, one fused call. Part of the public backend
``"blocked"``. Slow twin: :func:`graphattn.ops.reference.reference_attention`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..patterns import Full, Window
from .band import Band
from .dense import Dense
from .graph import AttentionGraph
from .kernel import Kernel, KernelResult, Plan, dot_only, needs_pattern
from .scores import ScoreSpec

__all__ = ["StridePermute", "StridePlan"]


@dataclass(frozen=True)
class StridePlan(Plan):
    """``order [N]`` new slot -> node, ``inverse [N]`` node -> new slot, ``sub_graph`` the
    sub-sequences, computed by ``sub_kernel`` with its own plan on ``sub_graph``."""

    order: Tensor
    inverse: Tensor
    sub_graph: AttentionGraph


class StridePermute(Kernel[StridePlan]):
    """A lone stride on interleaved sub-sequences (see the module docstring)."""

    name, backend = "stride", "blocked"
    mixes = True
    half_on = frozenset({"cuda"})  # SDPA / FlexAttention accumulate in float32 there

    def __init__(self, dense: Dense, band: Band):
        self.dense, self.band = dense, band

    def unsupported(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        reasons = dot_only(spec) + needs_pattern(graph)
        if graph.pattern is not None:
            pieces = graph.pattern.pieces()
            if pieces is None or pieces.stride is None or pieces.stride < 2:
                reasons.append("the pattern is not a lone Stride(s >= 2)")
        return reasons

    def plan(self, graph: AttentionGraph) -> StridePlan:
        pieces = graph.pattern.pieces()
        stride, reach, device = pieces.stride, pieces.reach, graph.device
        n, layout = graph.num_nodes, graph.layout
        seq, pos = layout.batch, layout.position
        sub_sizes = (graph.sizes[:, None] - torch.arange(stride) + stride - 1).clamp(min=0) // stride  # (B, s)
        order = torch.argsort((seq * stride + pos % stride) * (n + 1) + pos // stride)  # new slot -> node
        inverse = torch.empty_like(order).index_copy_(0, order, torch.arange(n, device=device))
        sub = Full() if reach is None else Window(reach // stride)
        return StridePlan(order, inverse, AttentionGraph.build(sub, n, lengths=sub_sizes.flatten()).to(device))

    def _sub_kernel(self, plan: StridePlan) -> Kernel:
        return self.dense if isinstance(plan.sub_graph.pattern, Full) else self.band

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: StridePlan, *,
                need_weights: bool) -> KernelResult:
        order, sub = plan.order, plan.sub_graph
        if spec.bias is not None:  # the bias sees the original node ids
            bias = spec.bias
            spec = replace(spec, bias=lambda qi, ki: bias(order[qi], order[ki]))
        kernel = self._sub_kernel(plan)
        out, lse, _ = kernel.forward(q[order], k[order], v[order], sub, spec, sub.plan(kernel), need_weights=need_weights)
        return KernelResult(out[plan.inverse], None if lse is None else lse[plan.inverse])

    def reached(self, graph: AttentionGraph, plan: StridePlan, bad: Tensor) -> Tensor:
        kernel = self._sub_kernel(plan)
        return kernel.reached(plan.sub_graph, plan.sub_graph.plan(kernel), bad[plan.order])[plan.inverse]
