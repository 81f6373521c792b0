"""The oracle: dense masked attention, written plainly, in any float dtype.

For every query ``i`` with in-neighbours ``N(i)`` (counted with multiplicity ``c_ij``):

.. math::
    s_{ij} = q_i \\cdot k_j / \\sqrt{C} \\;(+\\, b_{ij}), \\qquad
    \\alpha_{ij} = \\frac{c_{ij} e^{s_{ij}}}{\\sum_{l} c_{il} e^{s_{il}}}, \\qquad
    o_i = \\sum_j \\alpha_{ij} v_j

and ``o_i = 0`` when ``N(i)`` is empty; a non-finite key or value reaches only the queries that
attend to it. The score is any of :class:`~graphattn.ops.scores.ScoreSpec`'s. Memory is
O(N^2 H) (O(N^2 H C) for additive and GATv2 scores and edge features): use it for tests, never
for speed.
"""

from __future__ import annotations

from typing import overload

import torch
from torch import Tensor

from ..checks import all_finite
from .graph import AttentionGraph
from .kernel import Kernel, KernelResult
from .scores import ScoreSpec

__all__ = ["Reference", "reference_attention"]


class Reference(Kernel[Tensor]):
    """The dense oracle (see the module docstring); its plan is the ``[N, N]`` count matrix."""

    name = backend = "reference"

    def unsupported(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        per_edge = spec.edge_kv is not None or spec.edge_k is not None or spec.keep is not None
        if per_edge and graph.pattern is None and graph.edge_index.size(1) and bool((graph.plan(self) > 1).any()):
            return ["edge features or a dropout mask on duplicate edges (the dense oracle holds one value per pair)"]
        return []

    def declines(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        return ["it is the O(N^2) float64 oracle for tests"]

    def footprint(self, graph: AttentionGraph, spec: ScoreSpec, need_weights: bool) -> int:
        n, (heads, channels, _), item = graph.num_nodes, spec.shape, spec.dtype.itemsize
        pairs = n * n * heads * channels * item * 2 if spec.edge_kv is not None or spec.score != "dot" else 0
        return 8 * n * n + 4 * heads * n * n * item + pairs  # counts, scores / logits / weights

    def plan(self, graph: AttentionGraph) -> Tensor:
        n, device = graph.num_nodes, graph.device
        src, dst = graph.edge_index
        counts = torch.zeros(n * n, dtype=torch.long, device=device).index_add_(0, dst * n + src, torch.ones_like(src))
        return counts.view(n, n)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: Tensor, *,
                need_weights: bool) -> KernelResult:
        out, alpha = reference_attention(q, k, v, graph, spec, plan, return_weights=need_weights)
        return KernelResult(out, alpha=alpha)


def reference_attention(
    q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, counts: Tensor | None = None, *,
    return_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """``(out [N, H, C], alpha [E, H] | None)``; ``counts [N, N]`` the edge multiplicities
    indexed ``[query, key]`` (default: the graph's)."""
    n = q.size(0)
    if n == 0:  # amax below cannot reduce an empty row dimension
        return v.new_zeros(v.shape), (q.new_zeros(0, q.size(1)) if return_weights else None)
    counts = (graph.plan(REFERENCE) if counts is None else counts).to(q.dtype)  # (N_q, N_k)
    idx = torch.arange(n, device=q.device)
    edge_kv, edge_k = (_dense_edges(t, graph, n) for t in (spec.edge_kv, spec.edge_k))  # (N_q, N_k, H, C) or None
    if spec.score == "dot":
        scores = torch.einsum("ihc,jhc->hij", q, k)
        if edge_kv is not None:
            scores = scores + torch.einsum("ihc,ijhc->hij", q, edge_kv)
        scores = scores * spec.scale
    else:
        pair = q[:, None] + k[None, :]  # (N_q, N_k, H, C)
        for e in (edge_kv, edge_k):
            if e is not None:
                pair = pair + e
        if spec.score == "gat":
            scores = spec.activation(pair.sum(dim=-1)).permute(2, 0, 1)
        else:
            scores = torch.einsum("ijhc,hc->hij", spec.activation(pair), spec.att)
    if spec.bias is not None:
        scores = scores + spec.bias(idx[:, None], idx[None, :]).permute(2, 0, 1).to(scores.dtype)
    allowed = counts > 0
    logits = torch.where(allowed, scores + counts.clamp(min=1).log(), float("-inf"))
    row_max = logits.amax(dim=-1, keepdim=True).clamp(min=torch.finfo(q.dtype).min)
    expo = torch.exp(logits - row_max)  # exactly 0 off the graph
    denom = expo.sum(dim=-1, keepdim=True)
    probs = expo / torch.where(denom > 0, denom, 1)  # (H, N_q, N_k); empty rows stay 0
    dropped = spec.apply_dropout(probs)
    if spec.keep is not None:
        dropped = dropped * _dense_edges(spec.keep, graph, n).permute(2, 0, 1)
    if all_finite(v) and (edge_kv is None or all_finite(edge_kv)):
        out = torch.einsum("hij,jhc->ihc", dropped, v)
        if edge_kv is not None:
            out = out + torch.einsum("hij,ijhc->ihc", dropped, edge_kv)
    else:  # 0 * NaN = NaN: sum over each query's own keys only, so a bad value stays local
        terms = dropped[..., None] * v.transpose(0, 1)[:, None]  # (H, N_q, N_k, C)
        if edge_kv is not None:
            terms = terms + dropped[..., None] * edge_kv.permute(2, 0, 1, 3)
        out = torch.where(allowed[None, :, :, None], terms, 0).sum(dim=2).transpose(0, 1)  # (N_q, H, C)
    weights = None
    if return_weights:
        src, dst = graph.edge_index.to(q.device)
        weights = (probs[:, dst, src] / counts[dst, src]).T  # per edge copy: (E, H)
    return out, weights


@overload
def _dense_edges(values: Tensor, graph: AttentionGraph, n: int) -> Tensor: ...
@overload
def _dense_edges(values: Tensor | None, graph: AttentionGraph, n: int) -> Tensor | None: ...


def _dense_edges(values: Tensor | None, graph: AttentionGraph, n: int) -> Tensor | None:
    """Per-edge ``values [E, ...]`` laid on ``[N_q, N_k, ...]`` (zeros off the graph)."""
    if values is None:
        return None
    src, dst = graph.edge_index
    dense = values.new_zeros(n, n, *values.shape[1:])
    dense[dst, src] = values
    return dense


REFERENCE = Reference()
