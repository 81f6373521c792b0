"""Data-dependent patterns: the graph of each forward, built from its queries and keys.

The "learnable pattern" branch of the efficient transformers (Tay et al., 2022) chooses who
attends to whom from the content. In the graph view each forward builds its own graph on the
nodes of every sequence (sequences never mix, as for any pattern):

* :class:`LSH` (Reformer, Kitaev et al. 2020): query ``i`` attends to key ``j`` when their
  angular hashes agree, ``h(q_i) = h(k_j)`` with ``h(x) = argmax [x R ; -x R]`` and ``R`` a fixed
  random ``D x buckets/2`` matrix (seeded);
* :class:`KMeans` (clustered / routing attention, Vyas et al. 2020, Roy et al. 2021): spherical
  k-means on the sequence's own unit queries and keys; ``i`` attends to ``j`` when they are
  nearest to the same centroid;
* :class:`TopK` (top-k / kNN attention, Gupta et al. 2021): ``i`` attends to the ``k`` keys of
  its sequence with the largest scores ``q_i . k_j`` (maximum inner product search).

``route(q, k, layout)`` says what was chosen as plain tensors: :class:`Groups` (bucket / cluster
ids of every query and key: the graph is block-diagonal once nodes are sorted by group) or a
:class:`KeyList` (a fixed number of keys per query). :func:`graphattn.ops.route` turns it into
the :class:`~graphattn.ops.AttentionGraph` of the forward, which every kernel computes and
``return_attention_weights`` returns.

**One graph for all heads**, as for every pattern: the choice is made on each node's heads
side by side (``q_i`` is ``[H * C]``; for ``TopK`` the score is the sum of the heads' dot
products). **Gradients** flow through the attention on the chosen edges, never through the
choice: routing runs without autograd on detached ``q`` and ``k`` (a bucket, a cluster, a
top-k set are piecewise constant in ``q`` and ``k``, with derivative zero almost everywhere), so
``q`` and ``k`` learn through the scores of the edges that were chosen and ``v`` through their
weights, as in Reformer and the Routing Transformer. A row of ``q`` or ``k`` holding NaN or inf
is routed as zeros, so it changes no other node's choice; its own edges then carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from .base import Pattern, check_fields
from .batch import pad_sequences, unpad_sequences

__all__ = ["Routed", "Groups", "KeyList", "LSH", "KMeans", "TopK"]

#: Scores held at once while TopK scans a batch (query rows x keys).
TOPK_CHUNK = 1 << 22


class SequenceLayout(Protocol):
    """What routing needs of a batch (an :class:`~graphattn.ops.graph.Layout`), read only."""

    @property
    def lengths(self) -> tuple[int, ...]: ...
    @property
    def ptr(self) -> Tensor: ...
    @property
    def batch(self) -> Tensor: ...
    @property
    def position(self) -> Tensor: ...


class Groups(NamedTuple):
    """Query ``i`` attends to key ``j`` iff ``key[j] == query[i]``: ``query, key [N]`` group ids in
    ``[0, count)``; a group never spans two sequences."""

    query: Tensor
    key: Tensor
    count: int  # type: ignore[assignment]  # the field shadows tuple.count() (public name, kept)


class KeyList(NamedTuple):
    """Query ``i`` attends to the keys ``keys[i, t]`` (node ids, ascending) where ``valid[i, t]``
    (``valid`` is ``None`` when every entry is a key)."""

    keys: Tensor
    valid: Tensor | None


class Routed(Pattern):
    """Base of the data-dependent patterns (see the module docstring)."""

    @property
    def data_dependent(self) -> bool:
        return True

    def route(self, q: Tensor, k: Tensor, layout: SequenceLayout) -> Groups | KeyList:
        """What this pattern chooses for ``q, k [N, H, C]`` on the sequences of ``layout``."""
        raise NotImplementedError

    def mask(self, q_idx: Tensor, k_idx: Tensor, n: int) -> Tensor:
        raise TypeError(f"{self!r} is data-dependent: its edges come from q and k in each forward; see them with "
                        f"graphattn.ops.route(q, k, graph) or return_attention_weights=True")

    def generate_edges(self, n: int) -> Tensor:
        return self.mask(torch.zeros(0), torch.zeros(0), n)  # raises: there are no edges without q and k


def _rows(x: Tensor) -> Tensor:
    """``[N, H, C] -> [N, H * C]``, detached, non-finite rows as zeros."""
    x = x.detach().reshape(x.size(0), -1)
    return torch.where(torch.isfinite(x).all(dim=-1, keepdim=True), x, 0.0)


def _padded(x: Tensor, layout: SequenceLayout, length: int) -> Tensor:
    return pad_sequences(x, layout.batch, layout.position, len(layout.lengths), length)  # (B, L, D)


def _unpadded(x: Tensor, layout: SequenceLayout) -> Tensor:
    return unpad_sequences(x, layout.batch, layout.position)


@lru_cache(maxsize=64)
def _rotations(seed: int, dim: int, half: int) -> Tensor:
    return torch.randn(dim, half, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@dataclass(frozen=True)
class LSH(Routed):
    """Reformer's angular LSH buckets: ``i`` attends to ``j`` iff ``h(q_i) = h(k_j)`` in its sequence.

    ``h(x) = argmax [x R ; -x R]`` over ``buckets`` values, ``R ~ N(0, 1)`` of shape
    ``[H * C, buckets / 2]`` drawn from ``seed`` (the same in every forward, so a model is a fixed
    function; Reformer redraws it per batch: use another ``seed``). Vectors at a small angle
    share a bucket with high probability. ``LSH(1)`` is ``Full()``. With shared queries and keys
    (``projection="shared"``) every node is in its own query's bucket, as in Reformer; with
    separate ones a query may meet no key (its output is then zero).
    """

    buckets: int
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, buckets=1, seed=0)
        if self.buckets > 1 and self.buckets % 2:
            raise ValueError(f"buckets must be 1 or even (angular LSH hashes to the argmax of [xR, -xR] with "
                             f"buckets / 2 random directions), got {self.buckets}")

    def route(self, q: Tensor, k: Tensor, layout: SequenceLayout) -> Groups:
        base = layout.batch * self.buckets
        if self.buckets == 1:
            return Groups(base, base, len(layout.lengths))
        x_q, x_k = _rows(q), _rows(k)
        rotation = _rotations(self.seed, x_q.size(1), self.buckets // 2).to(x_q.device, x_q.dtype)

        def bucket(x: Tensor) -> Tensor:
            proj = x @ rotation  # (N, buckets / 2)
            return torch.cat([proj, -proj], dim=1).argmax(dim=1)

        return Groups(base + bucket(x_q), base + bucket(x_k), len(layout.lengths) * self.buckets)

    def max_edges(self, n: int) -> int:
        return n * n


@dataclass(frozen=True)
class KMeans(Routed):
    """Clusters of each sequence: ``i`` attends to ``j`` iff ``q_i`` and ``k_j`` are nearest the same centroid.

    Spherical k-means (cosine similarity) on the unit queries and keys of each sequence, run in
    every forward: the ``clusters`` centroids start at the keys at positions ``r L / clusters``
    and take ``iterations`` Lloyd steps, each assigning every unit query and key to its nearest
    centroid and moving the centroid to the normalised mean of what it was given (an emptied
    centroid stays). Deterministic; no state between forwards (the Routing Transformer keeps its
    centroids across batches by a moving average instead). ``KMeans(1)`` is ``Full()``. With
    separate query and key projections the clusters can split the queries from the keys, so a
    query may meet no key (its output is then zero); share them (``projection="shared"``), as
    the Routing Transformer does.
    """

    clusters: int
    iterations: int = 3

    def __post_init__(self) -> None:
        check_fields(self, clusters=1, iterations=0)

    def route(self, q: Tensor, k: Tensor, layout: SequenceLayout) -> Groups:
        num, clusters = len(layout.lengths), self.clusters
        base = layout.batch * clusters
        if clusters == 1 or q.size(0) == 0:
            return Groups(base, base, num * clusters)
        x_q, x_k = (torch.nn.functional.normalize(_rows(x), dim=1) for x in (q, k))
        length = max(layout.lengths)
        padded = _padded(x_q, layout, length), _padded(x_k, layout, length)
        sizes = torch.tensor(layout.lengths, device=q.device)
        start = (layout.ptr[:-1, None] + torch.arange(clusters, device=q.device) * sizes[:, None] // clusters)
        centroids = x_k[start.clamp(max=q.size(0) - 1)]  # (B, K, D)

        def assign(c: Tensor) -> tuple[Tensor, Tensor]:
            p_q, p_k = (_unpadded(torch.bmm(x, c.transpose(1, 2)), layout).argmax(dim=1) for x in padded)
            return p_q, p_k

        for _ in range(self.iterations):
            c_q, c_k = assign(centroids)
            sums = x_q.new_zeros(num * clusters, x_q.size(1)).index_add_(0, base + c_q, x_q).index_add_(0, base + c_k, x_k)
            sums = sums.view(num, clusters, -1)
            centroids = torch.where(sums.norm(dim=-1, keepdim=True) > 0, torch.nn.functional.normalize(sums, dim=-1),
                                    centroids)
        c_q, c_k = assign(centroids)
        return Groups(base + c_q, base + c_k, num * clusters)

    def max_edges(self, n: int) -> int:
        return n * n


@dataclass(frozen=True)
class TopK(Routed):
    """Top-k attention: query ``i`` attends to the ``k`` keys of its sequence of largest ``q_i . k_j``.

    The score is summed over the heads; a sequence shorter than ``k`` gives all its keys.

    Choosing reads every score of a sequence (O(L^2) time, in chunks of query rows, so memory
    stays O(N k)); only the chosen ``N k`` edges are then attended. ``TopK(n)`` is ``Full()`` on
    sequences of up to ``n`` nodes.
    """

    k: int

    def __post_init__(self) -> None:
        check_fields(self, k=1)

    def route(self, q: Tensor, k: Tensor, layout: SequenceLayout) -> KeyList:
        n, lengths = q.size(0), layout.lengths
        length = max(lengths, default=0)
        per_query = min(self.k, length)
        if n == 0:
            return KeyList(torch.zeros(0, per_query, dtype=torch.long, device=q.device), None)
        q_pad, k_pad = _padded(_rows(q), layout, length), _padded(_rows(k), layout, length)  # (B, L, D)
        sizes = torch.tensor(lengths, device=q.device)
        pad_key = torch.arange(length, device=q.device) >= sizes[:, None]  # (B, L)
        chosen = torch.empty(len(lengths), length, per_query, dtype=torch.long, device=q.device)
        rows = max(1, TOPK_CHUNK // max(len(lengths) * length, 1))
        for r in range(0, length, rows):
            scores = torch.bmm(q_pad[:, r:r + rows], k_pad.transpose(1, 2)).masked_fill(pad_key[:, None], float("-inf"))
            chosen[:, r:r + rows] = scores.topk(per_query, dim=-1).indices
        keys = _unpadded(chosen, layout).sort(dim=1).values  # (N, k) positions in the sequence; padding last
        valid = None if min(lengths) >= per_query else keys < sizes[layout.batch, None]
        return KeyList(keys + layout.ptr[:-1][layout.batch, None], valid)

    def max_edges(self, n: int) -> int:
        return n * min(n, self.k)
