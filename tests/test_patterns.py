"""Patterns: the specification ``mask`` equals the generator ``edge_index``, identities with
known graphs, seeded randomness, repr, text view, batches, and O(E) generators."""

from __future__ import annotations

import time

import networkx as nx
import pytest
import torch

from graphattn.patterns import (
    Causal,
    Expander,
    Full,
    Global,
    GraphEdges,
    Pattern,
    Random,
    SelfLoops,
    Stride,
    VirtualNodes,
    Window,
    batch_dense_mask,
    batch_edge_index,
    bigbird,
    check_sizes,
    longformer,
    positions,
    sizes_from_batch,
)
from graphattn.patterns.graph import _expander_keys
from graphattn.patterns.sequence import _random_table

SIZES = (1, 2, 7, 64, 129)


def some_graph(n: int, seed: int = 0) -> torch.Tensor:
    """A random directed multigraph on ``n`` nodes: duplicates, self-loops, isolated nodes."""
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(n, (2, 2 * n), generator=gen)
    return torch.cat([ei, ei[:, : n // 3], torch.tensor([[0], [0]])], dim=1)  # duplicates, a loop


# name -> (n -> pattern); a factory so each pattern can be laid on every n in SIZES.
PATTERNS = {
    "full": lambda n: Full(),
    "window0": lambda n: Window(0),
    "window3": lambda n: Window(3),
    "window_left3": lambda n: Window(left=3, right=0),
    "window_right2": lambda n: Window(right=2),
    "window_left1_right4": lambda n: Window(left=1, right=4),
    "window_huge": lambda n: Window(500),
    "causal": lambda n: Causal(),
    "stride3": lambda n: Stride(3),
    "stride2_reach5": lambda n: Stride(2, reach=5),
    "stride4_reach0": lambda n: Stride(4, reach=0),
    "global_first": lambda n: Global((0,)),
    "global_neg": lambda n: Global((0, -1)),
    "global_dup": lambda n: Global((-1, n - 1)),
    "global_none": lambda n: Global(()),
    "random1": lambda n: Random(1, seed=3),
    "random3": lambda n: Random(min(3, n), seed=1),
    "random_dense": lambda n: Random(max(n - 1, 0), seed=2),
    "selfloops": lambda n: SelfLoops(),
    "graph": lambda n: GraphEdges(some_graph(n), num_nodes=n),
    "graph_plus_virtual": lambda n: GraphEdges(some_graph(max(n - 1, 1)), num_nodes=max(n - 1, 1)) | VirtualNodes(1),
    "virtual2": lambda n: VirtualNodes(min(2, n)),
    "expander4": lambda n: Expander(4, seed=5),
    "exphormer": lambda n: GraphEdges(some_graph(n), num_nodes=n) | SelfLoops() | VirtualNodes(1) | Expander(2),
    "union_window_stride": lambda n: Window(1) | Stride(5),
    "union_causal_global": lambda n: Causal() | Global((-1,)),
    "inter_window_causal": lambda n: Window(4) & Causal(),
    "inter_stride_causal": lambda n: Stride(3) & Causal(),
    "inter_random_window": lambda n: Random(min(3, n), seed=4) & Window(5),
    "inter_full_expander": lambda n: Full() & Expander(6, seed=1),
    "inter_union": lambda n: (Window(2) | Global((0,))) & Causal(),
    "inter_graph_window": lambda n: GraphEdges(some_graph(n), num_nodes=n) & Window(10),
    "longformer": lambda n: longformer(2, [0]),
    "longformer_stride": lambda n: longformer(2, [0, -1], stride=3),
    "bigbird": lambda n: bigbird(1, [0], random_per_query=min(2, n), seed=7),
}


def adjacency_counts(ei: torch.Tensor, n: int) -> torch.Tensor:
    """``[n, n]`` number of edges ``j -> i`` indexed ``[query, key]``."""
    counts = torch.zeros(n, n, dtype=torch.long)
    counts.index_put_((ei[1], ei[0]), torch.ones(ei.size(1), dtype=torch.long), accumulate=True)
    return counts


def edge_set(ei: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, ei.t().tolist()))


def without_self_loops(ei: torch.Tensor) -> torch.Tensor:
    return ei[:, ei[0] != ei[1]]


# 1. specification equals implementation ------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", PATTERNS)
def test_mask_equals_edge_index(name, n):
    pattern = PATTERNS[name](n)
    ei = pattern.edge_index(n)
    assert ei.dtype == torch.long and ei.dim() == 2 and ei.size(0) == 2
    assert ei.numel() == 0 or (int(ei.min()) >= 0 and int(ei.max()) < n)
    code = ei[1] * n + ei[0]
    assert bool((code[1:] > code[:-1]).all()), "edges must be sorted by (query, key), no duplicates"
    mask = pattern.dense_mask(n)
    assert mask.dtype == torch.bool and mask.shape == (n, n)
    assert torch.equal(adjacency_counts(ei, n), mask.long())
    assert ei.size(1) <= pattern.max_edges(n)


@pytest.mark.parametrize("pattern", [
    Window(3), Causal(), Global((0, -1)), Random(3), Expander(4), VirtualNodes(2), longformer(1, [0], stride=2),
    GraphEdges(torch.empty(2, 0, dtype=torch.long)) | SelfLoops(), Stride(2) & Causal(),
], ids=repr)
def test_empty_pattern(pattern):
    assert pattern.edge_index(0).shape == (2, 0) and pattern.edge_index(0).dtype == torch.long
    assert pattern.dense_mask(0).shape == (0, 0)


def test_mask_broadcasts_like_a_mask_mod():
    """``mask`` takes any broadcasting pair of index tensors, e.g. one row or single pairs."""
    n, pattern = 9, longformer(1, [0], stride=4) | Random(2, seed=1)
    full = pattern.dense_mask(n)
    q, k = torch.tensor([3]), torch.arange(n)
    assert torch.equal(pattern.mask(q[:, None], k[None, :], n)[0], full[3])
    qs, ks = torch.randint(n, (20,)), torch.randint(n, (20,))
    assert torch.equal(pattern.mask(qs, ks, n), full[qs, ks])


# 2. identities --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_identities(n):
    full = Full().edge_index(n)
    assert torch.equal(Window(n - 1).edge_index(n), full)
    assert torch.equal(Stride(1).edge_index(n), full)
    assert torch.equal(Causal().edge_index(n), Window(left=n - 1, right=0).edge_index(n))
    assert torch.equal(Stride(1, reach=2).edge_index(n), Window(2).edge_index(n))
    assert torch.equal(Window(left=3, right=0).edge_index(n), (Window(3) & Causal()).edge_index(n))
    assert torch.equal(Window(0).edge_index(n), SelfLoops().edge_index(n))
    assert torch.equal((Causal() | Window(left=0, right=n)).edge_index(n), full)
    assert torch.equal(Global((-1,)).edge_index(n), Global((n - 1,)).edge_index(n))
    assert torch.equal(VirtualNodes(1).edge_index(n), Global((-1,)).edge_index(n))
    assert torch.equal(GraphEdges(full, num_nodes=n).edge_index(n), full)


@pytest.mark.parametrize("n", SIZES)
def test_window1_without_self_loops_is_path_graph(n):
    ei = without_self_loops(Window(1).edge_index(n))
    assert edge_set(ei) == set(nx.path_graph(n).to_directed().edges)
    assert ei.size(1) == 2 * (n - 1)


@pytest.mark.parametrize("n", SIZES)
def test_global_without_self_loops_is_star_graph(n):
    ei = without_self_loops(Global((0,)).edge_index(n))
    assert edge_set(ei) == set(nx.star_graph(n - 1).to_directed().edges)


# 3. random patterns ---------------------------------------------------------------------------


@pytest.mark.parametrize("n, per_query", [(64, 3), (64, 40), (7, 7), (129, 0)])
def test_random_distinct_exact_and_seeded(n, per_query):
    ei = Random(per_query, seed=11).edge_index(n)
    assert torch.equal(torch.bincount(ei[1], minlength=n), torch.full((n,), per_query))
    assert torch.unique(ei[1] * n + ei[0]).numel() == ei.size(1)  # distinct keys per query
    _random_table.cache_clear()  # regenerate from the seed rather than reuse the cache
    assert torch.equal(Random(per_query, seed=11).edge_index(n), ei)
    if 0 < per_query < n:
        assert not torch.equal(Random(per_query, seed=12).edge_index(n), ei)


def test_random_keys_cover_the_sequence():
    """Keys are drawn from the whole sequence, not only near the query."""
    ei = Random(3, seed=0).edge_index(1000)
    dist = (ei[0] - ei[1]).abs()
    assert int(dist.max()) > 500 and torch.unique(ei[0]).numel() > 500


@pytest.mark.parametrize("n", [2, 7, 64, 129])
def test_expander_symmetric_bounded_degree(n):
    pattern = Expander(4, seed=3)
    ei = pattern.edge_index(n)
    assert edge_set(ei) == edge_set(ei.flip(0))
    assert bool((ei[0] != ei[1]).all())
    assert int(torch.bincount(ei[1], minlength=n).max()) <= 4
    _expander_keys.cache_clear()
    assert torch.equal(Expander(4, seed=3).edge_index(n), ei)
    if n >= 64:
        assert not torch.equal(Expander(4, seed=4).edge_index(n), ei)
        assert int(torch.bincount(ei[1], minlength=n).min()) >= 1
        assert nx.is_connected(nx.Graph(ei.t().tolist()))


# 4. repr, text view ---------------------------------------------------------------------------


def test_repr_reads_as_the_specification():
    assert repr(longformer(2, [0])) == "Window(radius=2) | Global(nodes=(0,))"
    assert repr(longformer(2, [0, -1], stride=3)) == (
        "Window(radius=2) | Global(nodes=(0, -1)) | Stride(stride=3, reach=6)")
    assert repr(bigbird(1, [0], 2, seed=5)) == "Window(radius=1) | Global(nodes=(0,)) | Random(per_query=2, seed=5)"
    assert repr(Window(left=3, right=0)) == "Window(left=3, right=0)"
    assert repr((Window(2) | Global((0,))) & Causal()) == "(Window(radius=2) | Global(nodes=(0,))) & Causal()"
    namespace = {c.__name__: c for c in (Full, Window, Causal, Stride, Global, Random, SelfLoops, VirtualNodes, Expander)}
    for pattern in (longformer(2, [0], stride=3), bigbird(1, [0, -1], 2, seed=5), Window(left=3, right=1),
                    (Window(2) | Global((0,))) & Causal(), Window(1) & Causal() | Stride(2), Full(), SelfLoops(),
                    VirtualNodes(2), Expander(4, seed=1)):
        assert eval(repr(pattern), namespace) == pattern, repr(pattern)


def test_text_view():
    assert Window(1).to_text(4) == "##..\n###.\n.###\n..##"
    assert longformer(0, [0]).to_text(3) == "###\n##.\n#.#"
    assert Causal().to_text(1) == "#"
    with pytest.raises(ValueError, match="n must be <= 128"):
        Full().to_text(129)


# 5. batches -----------------------------------------------------------------------------------


def test_batch_edge_index_is_block_diagonal_with_positions_per_sequence():
    sizes = torch.tensor([3, 0, 1, 5])
    for pattern in (Window(1), Global((-1,)), Random(1, seed=2), longformer(1, [0], stride=2)):
        ei = batch_edge_index(pattern, sizes)
        expected = torch.cat([pattern.edge_index(3), pattern.edge_index(1) + 3, pattern.edge_index(5) + 4], dim=1)
        assert torch.equal(ei, expected)
        assert torch.equal(adjacency_counts(ei, 9), batch_dense_mask(pattern, sizes).long())
    assert torch.equal(positions(sizes), torch.tensor([0, 1, 2, 0, 0, 1, 2, 3, 4]))
    assert batch_edge_index(Full(), torch.tensor([], dtype=torch.long)).shape == (2, 0)
    assert torch.equal(batch_edge_index(Full(), [2]), Full().edge_index(2))


def test_sizes_from_batch_and_check_sizes():
    assert torch.equal(sizes_from_batch(torch.tensor([0, 0, 0, 2, 2, 3])), torch.tensor([3, 0, 2, 1]))
    assert sizes_from_batch(torch.tensor([], dtype=torch.long)).numel() == 0
    with pytest.raises(ValueError, match="batch must be sorted"):
        sizes_from_batch(torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="batch must have one entry per node"):
        sizes_from_batch(torch.tensor([0, 0]), num_nodes=3)
    with pytest.raises(TypeError, match="batch must be an integer tensor"):  # a wrong dtype is a TypeError
        sizes_from_batch(torch.tensor([0.0, 1.0]))
    assert torch.equal(check_sizes([2, 3], 5), torch.tensor([2, 3]))
    with pytest.raises(ValueError, match="lengths must sum to the number of nodes 5"):
        check_sizes([2, 2], 5)
    with pytest.raises(ValueError, match=r"lengths\[1\] must be in \[0, "):
        check_sizes([6, -1], 5)
    with pytest.raises(TypeError, match="lengths must be an integer tensor"):
        check_sizes(torch.tensor([2.0, 3.0]), 5)
    with pytest.raises(TypeError, match="lengths"):
        check_sizes("23", 5)


# 6. generators are O(E) -----------------------------------------------------------------------


@pytest.mark.parametrize("pattern, edges", [
    (Window(2), lambda n: 5 * n - 6),
    (Window(left=3, right=0), lambda n: 4 * n - 6),
    (Stride(50, reach=100), lambda n: 5 * n - 6 * 50),
    (Global((0, -1)), lambda n: 4 * n - 4),
    (Random(3, seed=0), lambda n: 3 * n),
    (Window(2) & Causal(), lambda n: 3 * n - 3),
    (longformer(2, [0]), None),
    (bigbird(2, [0], 3), None),
    (Expander(4), None),
], ids=repr)
def test_sparse_generators_build_no_n_by_n_intermediate(pattern, edges):
    """On 200,000 nodes an n x n bool mask would take 40 GB: these must stay fast and small."""
    n = 200_000
    start = time.perf_counter()
    ei = pattern.edge_index(n)
    assert time.perf_counter() - start < 5.0
    if edges is not None:
        assert ei.size(1) == edges(n)
    assert ei.size(1) <= pattern.max_edges(n) < n * n // 1000


def test_base_pattern_is_abstract():
    with pytest.raises(NotImplementedError):
        Pattern().edge_index(3)
