"""The graph of one forward for a data-dependent pattern, and the bucket kernel.

:func:`route` turns what a data-dependent pattern (:mod:`graphattn.patterns.routed`) chose from
``q`` and ``k`` into the :class:`~graphattn.ops.AttentionGraph` of this forward, on the same
nodes, sequences and positions as the graph it was laid on; the dispatcher runs it before it
picks a kernel, so every kernel computes it and ``return_weights`` returns its edges:

* :class:`~graphattn.patterns.Groups` (``LSH``, ``KMeans``) give a :class:`GroupGraph`: query
  ``i`` attends to the keys of its group. :class:`Buckets` computes it as Reformer does: queries
  and keys sorted by group (a permutation), each group padded to the largest one, one fused
  ``scaled_dot_product_attention`` over ``[G, H, L_q, C] x [G, H, L_k, C]``: work ``G L_q L_k``
  (about ``N^2 / buckets`` per sequence when the buckets are balanced, more when one is large).
  Its edge list is built only when asked for (weights, another kernel).
* A :class:`~graphattn.patterns.KeyList` (``TopK``) gives an explicit graph of ``k`` edges per
  query, which the sparse kernel computes (or dense, when the keys cover most of a sequence).

A data-dependent graph's shape is data: laying it out reads a few sizes from the device per
layer and forward (how many groups hold a query and a key, the largest of them; the number of
edges), the host round trips of these patterns, which the fixed patterns never make. Unlike
Reformer's fixed-size chunks of the sorted sequence, groups are kept whole (the graph is exactly
"same bucket"), so the cost follows the largest group. Slow twin:
:func:`graphattn.ops.reference.reference_attention` on the routed graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

from ..patterns import Groups, Routed
from .graph import AttentionGraph
from .kernel import Kernel, KernelResult, Plan, dot_only
from .masked import explicit, needs_explicit, sdpa
from .scores import ScoreSpec

__all__ = ["route", "GroupGraph", "Buckets", "BucketPlan", "group_edges"]

G = TypeVar("G", bound=AttentionGraph)


def _derived(base: AttentionGraph, cls: type[G], edge_index: Tensor | None) -> G:
    """A graph on ``base``'s nodes, sequences and positions (its layout and position plans shared,
    not recomputed) with explicit edges instead of its pattern."""
    graph = cls.__new__(cls)
    graph.__dict__.update(vars(base))
    graph.pattern, graph._edge_index, graph._csr = None, edge_index, None
    graph._plans, graph.choices = dict(base._plans), {}
    return graph


def route(q: Tensor, k: Tensor, graph: AttentionGraph) -> AttentionGraph:
    """The graph of this forward: for a graph laid with a data-dependent pattern, what it chooses
    from ``q, k [N, H, C]`` (see the module docstring); any other graph as it is."""
    pattern = graph.pattern
    if pattern is None or not pattern.data_dependent:
        return graph
    if not isinstance(pattern, Routed):
        raise TypeError(f"{pattern!r} is data_dependent but not a graphattn.patterns.Routed, which defines route()")
    with torch.no_grad():
        chosen = pattern.route(q, k, graph.layout)
    if isinstance(chosen, Groups):
        out = _derived(graph, GroupGraph, None)
        out.groups, out.routed_by = chosen, pattern
        return out
    keys, valid = chosen
    queries = torch.arange(keys.size(0), device=keys.device)[:, None].expand_as(keys)
    if valid is None:
        edge_index = torch.stack([keys.flatten(), queries.flatten()])
    else:
        edge_index = torch.stack([keys[valid], queries[valid]])
    return _derived(graph, AttentionGraph, edge_index)


def group_edges(groups: Groups) -> Tensor:
    """``[2, E]`` every (key ``j``, query ``i``) with ``key[j] == query[i]``, sorted by query, then key."""
    query, key, count = groups
    order = torch.sort(key, stable=True).indices  # keys by group, then node id
    sizes = torch.bincount(key, minlength=count)
    start = torch.cumsum(sizes, 0) - sizes
    per_query = sizes[query]  # (N,)
    total = int(per_query.sum())
    dst = torch.repeat_interleave(torch.arange(query.numel(), device=query.device), per_query, output_size=total)
    first = torch.cumsum(per_query, 0) - per_query
    offset = torch.arange(total, device=query.device) - first[dst]
    return torch.stack([order[start[query][dst] + offset], dst])


class GroupGraph(AttentionGraph):
    """The graph of a forward of a bucket / cluster pattern: ``groups`` (a
    :class:`~graphattn.patterns.Groups`) and the pattern that chose them, ``routed_by``; its
    ``edge_index`` is derived from the groups when first asked for. Build it with :func:`route`."""

    groups: Groups
    routed_by: object

    @property
    def edge_index(self) -> Tensor:
        if self._edge_index is None:
            self._edge_index = group_edges(self.groups)
        return self._edge_index

    def to(self, device: torch.device | str) -> GroupGraph:
        device = torch.device(device)
        if device == self.device:
            return self
        out = _derived(super().to(device), GroupGraph, None)
        out.groups = Groups(self.groups.query.to(device), self.groups.key.to(device), self.groups.count)
        out.routed_by = self.routed_by
        return out

    def __repr__(self) -> str:
        return (f"GroupGraph({self.groups.count} groups of {self.routed_by!r}, num_nodes={self.num_nodes}, "
                f"sequences={self.sizes.numel()})")


@dataclass(frozen=True)
class BucketPlan(Plan):
    """The ``count`` groups that hold a query and a key (renumbered; the others attend to nothing
    and are never laid out), padded to ``q_len`` / ``k_len`` rows: where every query / key sits
    (``q_slot, k_slot [N]``; a node of no such group sits at the trash slot ``count * length``),
    which padded key rows hold a key (``key_mask [G, 1, 1, L_k]``), and the node in each padded
    row (``q_node [G, L_q]``, ``k_node [G, L_k]``, for score biases). No query row is ever
    fully masked, and empty groups cost nothing."""

    q_slot: Tensor
    k_slot: Tensor
    count: int
    q_len: int
    k_len: int
    key_mask: Tensor
    q_node: Tensor
    k_node: Tensor


def _slots(group: Tensor, count: int) -> tuple[Tensor, int, Tensor, Tensor]:
    """``(slot [N], length, sizes [G], node [G, length])`` of nodes sorted into ``count`` padded
    groups; nodes of group ``count`` (none of them) go to the trash slot ``count * length``."""
    n = group.numel()
    sizes = torch.bincount(group, minlength=count + 1)
    length = max(int(sizes[:count].max()) if count else 0, 1)
    order = torch.sort(group, stable=True).indices
    sorted_group = group[order]
    rank = torch.arange(n, device=group.device) - (torch.cumsum(sizes, 0) - sizes)[sorted_group]
    slot = torch.empty_like(order).index_copy_(0, order, sorted_group * length + torch.where(sorted_group < count, rank, 0))
    node = torch.zeros(count * length + 1, dtype=torch.long, device=group.device).index_copy_(
        0, slot, torch.arange(n, device=group.device))
    return slot, length, sizes[:count], node[: count * length].view(count, length)


def _groups(graph: AttentionGraph) -> Groups:
    """The groups of a :class:`GroupGraph`: the only graphs :class:`Buckets` accepts (its
    ``unsupported`` refuses any other, so the dispatcher never plans or runs one)."""
    if not isinstance(graph, GroupGraph):
        raise TypeError(f"the buckets kernel computes a GroupGraph (the LSH / KMeans graph of a forward), not {graph!r}")
    return graph.groups


class Buckets(Kernel[BucketPlan]):
    """Attention within groups, sorted and padded (see the module docstring)."""

    name, backend = "buckets", "blocked"
    mixes = True

    def unsupported(self, graph: AttentionGraph, spec: ScoreSpec) -> list[str]:
        reasons = dot_only(spec)
        if not isinstance(graph, GroupGraph):
            reasons.append("not a graph of groups (the LSH / KMeans graph of a forward)")
        return reasons

    def footprint(self, graph: AttentionGraph, spec: ScoreSpec, need_weights: bool) -> int:
        plan = graph.plan(self)  # the layout is the estimate (kept for the forward)
        pairs = plan.count * plan.q_len * plan.k_len
        return spec.shape[0] * pairs * spec.dtype.itemsize * (3 * needs_explicit(spec, need_weights) + (spec.bias is not None))

    def plan(self, graph: AttentionGraph) -> BucketPlan:
        query, key, count = _groups(graph)
        live = (torch.bincount(query, minlength=count) > 0) & (torch.bincount(key, minlength=count) > 0)
        kept = int(live.sum())
        renumber = torch.where(live, torch.cumsum(live, 0) - 1, kept)  # a group without a query or a key: trash
        q_slot, q_len, _, q_node = _slots(renumber[query], kept)
        k_slot, k_len, k_sizes, k_node = _slots(renumber[key], kept)
        key_mask = (torch.arange(k_len, device=key.device) < k_sizes[:, None])[:, None, None, :]
        return BucketPlan(q_slot, k_slot, kept, q_len, k_len, key_mask, q_node, k_node)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, graph: AttentionGraph, spec: ScoreSpec, plan: BucketPlan, *,
                need_weights: bool) -> KernelResult:
        groups = plan.count

        def padded(t: Tensor, slot: Tensor, length: int) -> Tensor:  # (N, H, C) -> (G, H, L, C), trash row dropped
            rows = t.new_zeros(groups * length + 1, *t.shape[1:]).index_copy(0, slot, t)[: groups * length]
            return rows.view(groups, length, *t.shape[1:]).transpose(1, 2)

        qp = padded(q, plan.q_slot, plan.q_len)
        kp, vp = padded(k, plan.k_slot, plan.k_len), padded(v, plan.k_slot, plan.k_len)
        bias = None
        if spec.bias is not None:  # (G, H, L_q, L_k), -inf where no key: SDPA's one float mask
            bias = spec.bias(plan.q_node[:, :, None], plan.k_node[:, None, :]).permute(0, 3, 1, 2).to(q.dtype)
            bias = torch.where(plan.key_mask, bias, float("-inf"))
        lse = None
        if needs_explicit(spec, need_weights):
            out, lse = explicit(qp, kp, vp, plan.key_mask, spec, bias)  # (G, H, L_q, C), (G, H, L_q)
            lse = torch.cat([lse.transpose(1, 2).reshape(-1, q.size(1)), lse.new_full((1, q.size(1)), float("-inf"))])
            lse = lse.index_select(0, plan.q_slot)  # (N, H): -inf for a query that meets no key
        else:
            out = sdpa(qp, kp, vp, plan.key_mask if bias is None else bias, spec.scale)
        out = out.transpose(1, 2).reshape(-1, out.size(1), out.size(-1))  # (G * L_q, H, C)
        return KernelResult(torch.cat([out, out.new_zeros(1, *out.shape[1:])]).index_select(0, plan.q_slot), lse)

    def reached(self, graph: AttentionGraph, plan: BucketPlan, bad: Tensor) -> Tensor:
        query, key, count = _groups(graph)
        spoiled = bad.new_zeros(count, bad.size(1), dtype=torch.float32).index_add_(0, key, bad.to(torch.float32))
        return spoiled.index_select(0, query) > 0
