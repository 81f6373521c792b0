"""AttentionGraph: one graph from every input form, built once per forward, and mask-only patterns."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_support import call
from torch_geometric import EdgeIndex

from graphattn import ops
from graphattn.models import GraphAttentionNetwork, GraphTransformer
from graphattn.nn import SelfAttentionConv
from graphattn.ops import AttentionGraph, ScoreSpec
from graphattn.ops.dense import Dense
from graphattn.ops.scatter import Scatter
from graphattn.ops.tiles import Tiles
from graphattn.patterns import Full, Global, GraphEdges, Pattern, Pieces, SelfLoops, Stride, VirtualNodes, Window, longformer

SETTINGS = settings(max_examples=25, deadline=None)


class Band(Pattern):
    """A user's pattern that states only its predicate: ``|q - k| <= radius``."""

    def __init__(self, radius: int):
        self.radius = radius

    def mask(self, q_idx, k_idx, n):
        return (q_idx - k_idx).abs() <= self.radius


class Modular(Pattern):
    """A scattered mask-only pattern: ``(a q + b k) % m == 0``, plus self when ``self_loops``."""

    def __init__(self, a: int, b: int, m: int, self_loops: bool):
        self.a, self.b, self.m, self.self_loops = a, b, m, self_loops

    def mask(self, q_idx, k_idx, n):
        out = (self.a * q_idx + self.b * k_idx) % self.m == 0
        return out | (q_idx == k_idx) if self.self_loops else out


def dense_weights(weights: tuple[torch.Tensor, torch.Tensor], n: int) -> torch.Tensor:
    """``[H, n, n]`` attention matrix indexed ``[query, key]`` from ``(edge_index, alpha)``."""
    (src, dst), alpha = weights
    out = alpha.new_zeros(n * n, alpha.size(1))
    return out.index_add(0, dst * n + src, alpha).T.reshape(-1, n, n)


def random_graph(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(n, (2, 4 * n), generator=gen)
    return torch.cat([ei, torch.arange(n).repeat(2, 1)], dim=1).unique(dim=1)  # self-loops, no duplicates


# 1. one graph, five input forms ----------------------------------------------------------------

def test_pattern_edge_index_edgeindex_and_adj_t_give_the_same_output_and_weights():
    torch.manual_seed(0)
    n = 40
    ei = random_graph(n, 0)
    ei = ei[:, torch.randperm(ei.size(1))]  # the caller's order, not sorted
    row, col = ei[1], ei[0]  # adj_t: rows are queries, columns keys
    forms = {
        "pattern": GraphEdges(ei, n),
        "edge_index": ei,
        "EdgeIndex": EdgeIndex(ei, sparse_size=(n, n)),
        "adj_t COO": torch.sparse_coo_tensor(torch.stack([row, col]), torch.ones(ei.size(1)), (n, n),
                                             check_invariants=True),
        "adj_t CSR": torch.sparse_coo_tensor(torch.stack([row, col]), torch.ones(ei.size(1)), (n, n),
                                             check_invariants=True).to_sparse_csr(),
    }
    try:
        from torch_sparse import SparseTensor
        forms["SparseTensor"] = SparseTensor(row=row, col=col, sparse_sizes=(n, n))
    except ImportError:
        pass
    layer = SelfAttentionConv(8, 8, heads=2).double()
    x = torch.randn(n, 8, dtype=torch.float64)
    want, want_w = layer(x, ei, return_attention_weights=True)
    for name, edges in forms.items():
        graph = AttentionGraph.build(edges, n)
        got, got_w = layer(x, graph, return_attention_weights=True)
        torch.testing.assert_close(got, want, msg=name)
        torch.testing.assert_close(dense_weights(got_w, n), dense_weights(want_w, n), msg=name)
    # an explicit edge_index keeps the caller's order: weights line up with the given columns
    _, (ei_back, _) = layer(x, AttentionGraph.build(ei, n), return_attention_weights=True)
    assert torch.equal(ei_back, ei)


def test_csr_is_sorted_by_query_and_perm_points_back_to_the_callers_edges():
    n = 30
    ei = random_graph(n, 1)
    ei = torch.cat([ei, ei[:, :5]], dim=1)[:, torch.randperm(ei.size(1) + 5)]  # duplicates, shuffled
    rowptr, col, perm = AttentionGraph.build(ei, n).csr()
    assert torch.equal(col, ei[0, perm])
    assert torch.equal(torch.repeat_interleave(torch.arange(n), rowptr.diff()), ei[1, perm])
    assert torch.equal(perm.sort().values, torch.arange(ei.size(1)))


def test_a_list_of_patterns_is_one_pattern_when_equal_and_a_block_diagonal_edge_index_otherwise():
    lengths = [5, 3]
    same = AttentionGraph.build([Window(1), Window(1)], lengths=lengths)
    assert same.pattern == Window(1)
    g1, g2 = GraphEdges(torch.tensor([[0, 1], [1, 2]]), 5), GraphEdges(torch.tensor([[2], [0]]), 3)
    mixed = AttentionGraph.build([g1 | SelfLoops(), g2 | SelfLoops()], lengths=lengths)
    assert mixed.pattern is None
    want = torch.cat([(g1 | SelfLoops()).edge_index(5), (g2 | SelfLoops()).edge_index(3) + 5], dim=1)
    assert torch.equal(mixed.edge_index, want)


def test_virtual_nodes_are_laid_after_each_sequence_and_removed_again():
    graph = AttentionGraph.build(Window(1) | VirtualNodes(2), lengths=[3, 1])
    assert (graph.num_nodes, graph.num_real_nodes, graph.sizes.tolist()) == (8, 4, [5, 3])
    assert graph.real_index.tolist() == [0, 1, 2, 5] and graph.virtual_index.tolist() == [3, 4, 6, 7]
    h = torch.arange(4.0)[:, None]
    full = graph.with_virtual(h, torch.tensor([[10.0], [20.0]]))
    assert full.flatten().tolist() == [0, 1, 2, 10, 20, 3, 10, 20]
    assert torch.equal(graph.real(full), h)
    # rows that already hold the virtual nodes: the pattern is laid on them as they are
    rows = AttentionGraph.build(Window(1) | VirtualNodes(2), 8, lengths=[5, 3], includes_virtual=True)
    assert torch.equal(rows.edge_index, graph.edge_index)


def test_prepared_graph_refuses_a_second_layout():
    graph = AttentionGraph.build(Window(1), 6)
    with pytest.raises(ValueError, match="prepared AttentionGraph"):
        SelfAttentionConv(4, 4)(torch.randn(6, 4), graph, lengths=[3, 3])
    with pytest.raises(ValueError, match="6 nodes but q, k, v have N=5"):
        ops.attention(*torch.randn(3, 5, 1, 2), graph)
    with pytest.raises(ValueError, match="needs num_nodes"):
        AttentionGraph.build(Window(1))
    with pytest.raises(ValueError, match="square"):
        AttentionGraph.build(torch.eye(3, 4).to_sparse(), 3)


# 2. built once per forward ----------------------------------------------------------------------

def test_the_plan_is_derived_once_per_model_forward(monkeypatch):
    from graphattn.ops import band as blocked

    calls = {"plan": 0, "build": 0}
    plan, build = blocked.plan_band, AttentionGraph.build.__func__

    def counting_plan(*args, **kwargs):
        calls["plan"] += 1
        return plan(*args, **kwargs)

    def counting_build(cls, edges, *args, **kwargs):
        calls["build"] += not isinstance(edges, AttentionGraph)  # a prepared graph comes back as it is
        return build(cls, edges, *args, **kwargs)

    monkeypatch.setattr(blocked, "plan_band", counting_plan)
    monkeypatch.setattr(AttentionGraph, "build", classmethod(counting_build))
    model = GraphTransformer(8, 16, 3, num_layers=4, heads=2, pattern=longformer(8, (0,)))
    x = torch.randn(600, 8)
    model(x).sum().backward()
    assert calls == {"plan": 1, "build": 1}
    graph = AttentionGraph.build(longformer(8, (0,)), 600)
    for _ in range(3):  # a prepared graph is reused across forwards: no new plan
        model(x, graph)
    assert calls == {"plan": 2, "build": 2}


# 3. patterns that state only their mask ------------------------------------------------------------

def test_mask_only_pattern_generates_its_edges_by_scanning():
    for n in (1, 7, 64, 300):
        assert torch.equal(Band(3).edge_index(n), Window(3).edge_index(n))
    assert not Band(3).has_generator and Band(3).pieces() is None
    assert torch.equal((Band(1) | Global((0,))).edge_index(50), (Window(1) | Global((0,))).edge_index(50))


@SETTINGS
@given(a=st.integers(1, 5), b=st.integers(-3, 3), m=st.integers(1, 9), self_loops=st.booleans(),
       lengths=st.lists(st.integers(0, 70), min_size=1, max_size=3).filter(lambda s: sum(s) > 0),
       block=st.sampled_from([4, 16, 64]), bias=st.booleans())
def test_mask_only_pattern_equals_the_reference_on_every_backend(a, b, m, self_loops, lengths, block, bias):
    pattern = Modular(a, b, m, self_loops)
    n, heads = sum(lengths), 2
    gen = torch.Generator().manual_seed(a + 7 * m)
    q, k, v = (torch.randn(n, heads, 3, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3))
    score_bias = (lambda qi, ki: (qi - ki).double()[..., None].expand(*torch.broadcast_shapes(qi.shape, ki.shape), heads)
                  * 0.1) if bias else None
    graph = AttentionGraph.build(pattern, lengths=lengths)
    spec = ScoreSpec(scale=0.5, bias=score_bias)
    want, want_w = ops.reference_attention(q, k, v, graph, spec, return_weights=True)
    grads = torch.autograd.grad(want.sum(), (q, k, v))
    kernels = {"dense": call(Dense()), "scatter": call(Scatter()), "tiles": call(Tiles(block))}
    for name, kernel in kernels.items():
        got, got_w = kernel(q, k, v, graph, spec, return_weights=True)
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0, msg=name)
        torch.testing.assert_close(got_w, want_w, atol=1e-10, rtol=0, msg=name)
        fast = kernel(q, k, v, graph, ScoreSpec(scale=0.5, bias=score_bias))[0]  # the fused path, no weights
        torch.testing.assert_close(fast, want, atol=1e-10, rtol=0, msg=name)
        for g, w in zip(torch.autograd.grad(fast.sum(), (q, k, v)), grads):
            torch.testing.assert_close(g, w, atol=1e-9, rtol=0, msg=name)
    assert ops.choose_backend(graph) != "scatter"


def test_mask_only_pattern_is_never_sent_to_scatter_and_takes_tiles_when_sparse():
    assert ops.choose_backend(Band(2), num_nodes=50) == "dense"  # small: one SDPA call
    assert ops.choose_backend(Band(16), num_nodes=4096) == "blocked"  # sparse tiles
    assert ops.choose_backend(Band(16) | Full(), num_nodes=4096) == "dense"
    q = torch.randn(2000, 2, 8)
    got = ops.attention(q, q, q, Band(16))
    assert got.backend == "blocked"
    torch.testing.assert_close(got.out, ops.attention(q, q, q, Window(16), backend="blocked").out)


def test_a_model_runs_a_mask_only_pattern_end_to_end():
    torch.manual_seed(0)
    model = GraphAttentionNetwork(6, 8, 3, heads=2, pattern=Band(2) | VirtualNodes(1), pooling="mean").double().eval()
    x, batch = torch.randn(30, 6, dtype=torch.float64), torch.tensor([0] * 12 + [1] * 18)
    out = model(x, batch=batch)
    want = model(x, Window(2) | VirtualNodes(1), batch=batch)
    torch.testing.assert_close(out, want)


class CountingBand(Pattern):
    """A user's mask-only band that counts how many predicate values it computed."""

    evaluated = 0

    def __init__(self, radius: int):
        self.radius = radius

    def mask(self, q_idx, k_idx, n):
        out = (q_idx - k_idx).abs() <= self.radius
        CountingBand.evaluated += out.numel()
        return out


def test_a_user_pattern_is_planned_once_per_value_and_length_not_per_object():
    q = torch.randn(3000, 2, 4)
    CountingBand.evaluated = 0
    first = ops.attention(q, q, q, CountingBand(16))
    assert first.kernel == "tiles"
    scanned = CountingBand.evaluated
    assert scanned >= 3000 * 3000  # the whole predicate, once
    for _ in range(3):  # new objects, equal by value: no new scan
        again = ops.attention(q, q, q, CountingBand(16))
        torch.testing.assert_close(again.out, first.out)
    assert CountingBand.evaluated == scanned
    ops.attention(q, q, q, CountingBand(17))  # another value: its own scan
    assert CountingBand.evaluated > scanned
    assert CountingBand(16) == CountingBand(16) != CountingBand(17) and hash(CountingBand(16)) == hash(CountingBand(16))
    assert repr(CountingBand(16)) == "CountingBand(radius=16)"


class DeclaredEvenBand(Pattern):
    """A user's pattern that declares its pieces: it is never scanned."""

    def __init__(self, radius: int):
        self.radius = radius

    def mask(self, q_idx, k_idx, n):
        d = k_idx - q_idx
        return (d.abs() <= self.radius) & (d % 2 == 0)

    def pieces(self):
        return Pieces(band=self, left=self.radius, right=self.radius)


def test_a_user_pattern_that_declares_its_pieces_runs_on_the_band_kernel_like_the_built_ins():
    q, k, v = (torch.randn(2000, 2, 4, dtype=torch.float64) for _ in range(3))
    mine = ops.attention(q, k, v, DeclaredEvenBand(16), return_weights=True)
    built_in = ops.attention(q, k, v, Window(16) & Stride(2), return_weights=True)
    assert mine.kernel == built_in.kernel == "band"
    torch.testing.assert_close(mine.out, built_in.out)
    assert torch.equal(mine.weights[0], built_in.weights[0])
