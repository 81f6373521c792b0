"""The kernel protocol: one object per way of computing attention along an AttentionGraph.

A kernel says whether it can run a call (:meth:`Kernel.unsupported`: independent reasons, an
empty list when it can), whether ``auto`` should prefer another (:meth:`Kernel.declines`: the
kernel could run it, but another one is cheaper), derives a frozen, typed plan from the graph
alone (:meth:`Kernel.plan`, built once per graph by :meth:`AttentionGraph.plan
<graphattn.ops.graph.AttentionGraph.plan>`, as FlexAttention's ``BlockMask``), and computes
(:meth:`Kernel.forward`). The dispatcher (:mod:`graphattn.ops.dispatch`) is the only caller; it
checks metadata once, handles the empty graph, picks a kernel, keeps non-finite keys and values
local for the kernels that mix keys (:attr:`Kernel.mixes`) and turns log-sum-exps into
attention weights (:func:`edge_weights`).

Every kernel returns ``(out [N, H, C_v], lse [N, H] | None, alpha [E, H] | None)``. When the
caller wants attention weights (``need_weights``) it returns ``lse`` (``-inf`` for a query
without keys), from which the dispatcher derives them, or ``alpha`` itself (in the caller's edge
order) when it has them at hand. All three are differentiable.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, fields, replace
from typing import ClassVar, Generic, NamedTuple, TypeVar

import torch
from torch import Tensor

from .graph import AttentionGraph
from .scores import ScoreSpec

__all__ = ["Kernel", "Plan", "memoized", "KernelResult", "edge_scores", "edge_weights", "segment_softmax", "DOT_ONLY",
           "EDGE_KV", "dot_only", "needs_pattern"]

P = TypeVar("P")
T = TypeVar("T")


class KernelResult(NamedTuple):
    """What :meth:`Kernel.forward` returns (see the module docstring)."""

    out: Tensor
    lse: Tensor | None = None
    alpha: Tensor | None = None


def _move(value: object, device: torch.device) -> object:
    if isinstance(value, Tensor) or hasattr(value, "to") and not isinstance(value, type):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(_move(v, device) for v in value)
    if isinstance(value, dict):  # a memo of derived tiles: rebuilt on the new device
        return {}
    return value


@dataclass(frozen=True)
class Plan:
    """Base of the kernels' plans: frozen, moved whole with :meth:`to` (tensors, nested plans
    and graphs follow; memo dictionaries start empty on the new device)."""

    def to(self, device: torch.device | str) -> Plan:
        device = torch.device(device)
        return replace(self, **{f.name: _move(getattr(self, f.name), device) for f in fields(self) if f.init})


def memoized(memo: dict, key: Hashable, compute: Callable[[], T]) -> T:
    """``memo[key]``, computed once by ``compute()`` (outside inference mode, so what a plan derives
    during an inference forward can serve training later)."""
    if key not in memo:
        with torch.inference_mode(False):
            memo[key] = compute()
    return memo[key]


class Kernel(Generic[P]):
    """One way to compute attention (see the module docstring)."""

    #: Its own name (``backend=`` accepts it).
    name: ClassVar[str]
    #: The public backend name it answers to (``"blocked"`` for the three tile kernels).
    backend: ClassVar[str]
    #: Whether its dense products touch keys a query does not attend to (``0 * NaN = NaN``): the
    #: dispatcher then hands it finite keys and values and marks the queries that attend to a
    #: non-finite one itself (contract 8 of ``docs/architecture.md``).
    mixes: ClassVar[bool] = False
    #: Device types on which it computes float16 / bfloat16 inputs itself, accumulating in float32;
    #: elsewhere the dispatcher hands it float32 copies and casts the results back.
    half_on: ClassVar[frozenset[str]] = frozenset()

    def unsupported(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        """Why this kernel cannot compute the call, one reason per failed requirement."""
        return []

    def declines(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        """Why ``auto`` should let a later kernel of the priority list run it (a forced kernel
        runs anyway)."""
        return []

    @property
    def plan_key(self) -> str:
        return self.name

    def plan(self, graph: AttentionGraph) -> P:
        raise NotImplementedError

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: P, *,
                need_weights: bool) -> KernelResult:
        raise NotImplementedError

    def footprint(self, graph: AttentionGraph, spec: ScoreSpec, need_weights: bool) -> int:
        """Bytes of the call's largest allocations where they grow faster than the inputs (O(N^2)
        scores, O(E H C) rows), so that impossible work is refused before it is allocated; 0 for
        kernels whose memory is linear in their inputs."""
        return 0

    def reached(self, graph: AttentionGraph, plan: P, bad: Tensor) -> Tensor:
        """``[N, H]`` bool: whether query ``i`` attends, in head ``h``, to a key flagged in
        ``bad [N, H]`` (only kernels that :attr:`mixes` keys need it)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<kernel {self.name!r}>"


#: The reason a kernel that computes dot-product scores only gives for additive scores.
DOT_ONLY = "additive scores (only scatter and reference compute them)"
#: The reason a kernel without per-edge values gives for ``edge_kv``.
EDGE_KV = "edge features (edge_kv: per-edge per-channel values; scatter and reference compute them)"


def dot_only(spec: ScoreSpec) -> list[str]:
    """The reasons of a kernel without additive scores, edge features or a caller's dropout mask."""
    reasons = []
    if spec.score == "additive":
        reasons.append(DOT_ONLY)
    elif spec.score != "dot":
        reasons.append(f"{spec.score} scores (only sparse, scatter and reference compute them)")
    if spec.edge_kv is not None:
        reasons.append(EDGE_KV)
    if spec.edge_k is not None:
        reasons.append("edge features in the scores (edge_k; sparse, scatter and reference compute them)")
    if spec.keep is not None:
        reasons.append("a dropout mask drawn per edge by the caller (keep; sparse, scatter and reference apply it)")
    return reasons


def needs_pattern(graph: AttentionGraph) -> list[str]:
    """The reason of a tile kernel given explicit edges."""
    return [] if graph.pattern is not None else ["an explicit edge_index (no pattern to tile)"]


def edge_scores(q: Tensor, k: Tensor, graph: AttentionGraph, spec: ScoreSpec) -> Tensor:
    """``[E, H]`` the score ``s_ij`` of every edge of ``graph.edge_index`` (any score of
    :class:`~graphattn.ops.scores.ScoreSpec`, with edge features and bias), gathered per edge: O(E H C)."""
    src, dst = graph.edge_index
    k_j = k.index_select(0, src)
    if spec.edge_kv is not None:
        k_j = k_j + spec.edge_kv
    if spec.edge_k is not None:
        k_j = k_j + spec.edge_k
    q_i = q.index_select(0, dst)
    if spec.score == "dot":
        scores = (q_i * spec.scale * k_j).sum(dim=-1)  # (E, H); scaled first: no half overflow
    elif spec.score == "gat":
        scores = spec.activation((q_i + k_j).sum(dim=-1))
    else:
        assert spec.att is not None  # ops.attention refuses additive / gatv2 scores without att [H, C]
        scores = (spec.activation(q_i + k_j) * spec.att).sum(dim=-1)
    if spec.bias is not None:
        scores = scores + spec.bias(dst, src).to(scores.dtype)
    return scores


def edge_weights(q: Tensor, k: Tensor, graph: AttentionGraph, spec: ScoreSpec, lse: Tensor) -> Tensor:
    """``alpha [E, H]`` on ``graph.edge_index`` from each query's log-sum-exp ``lse [N, H]``:
    ``alpha_ij = exp(s_ij - lse_i)``, the one place weights are derived from a kernel's output
    (``0`` for a query whose every score is ``-inf``, whose ``lse`` is ``-inf`` too)."""
    lse_i = lse.index_select(0, graph.edge_index[1])
    alive = lse_i > float("-inf")
    return torch.where(alive, torch.exp(edge_scores(q, k, graph, spec) - torch.where(alive, lse_i, 0.0)), 0.0)


def segment_softmax(scores: Tensor, index: Tensor, num_nodes: int) -> Tensor:
    """``softmax`` of ``scores [E, H]`` over the entries that share ``index [E]`` (a query): ``0``
    for a query whose every score is ``-inf`` (where ``torch_geometric.utils.softmax`` gives NaN)."""
    row_max = scores.new_full((num_nodes, scores.size(1)), float("-inf"))
    row_max = row_max.scatter_reduce(0, index[:, None].expand_as(scores), scores.detach(), "amax")
    row_max = torch.where(row_max > float("-inf"), row_max, 0.0).index_select(0, index)  # (E, H)
    expo = torch.exp(scores - row_max)
    denom = expo.new_zeros(num_nodes, scores.size(1)).index_add(0, index, expo)
    return expo / torch.where(denom > 0, denom, 1.0).index_select(0, index)
