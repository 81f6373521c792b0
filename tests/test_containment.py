"""A non-finite query, key or value reaches only the queries that attend to it, on every backend."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_support import SWEPT_KERNELS

from graphattn import AttentionGraph, ops
from graphattn.patterns import Full, GraphEdges, Pattern, SelfLoops, Stride, Window, bigbird, longformer

SETTINGS = settings(max_examples=30, deadline=None)


class Band(Pattern):
    """A mask-only pattern (the generic tile path)."""

    def mask(self, q_idx, k_idx, n):
        return (q_idx - k_idx).abs() <= 3


def graphs(draw) -> tuple[object, list[int]]:
    lengths = draw(st.lists(st.integers(1, 90), min_size=1, max_size=3))
    n = sum(lengths)
    kind = draw(st.sampled_from(["window", "longformer", "bigbird", "full", "stride", "band", "graph", "edges"]))
    if kind in ("graph", "edges"):
        gen = torch.Generator().manual_seed(draw(st.integers(0, 999)))
        ei = torch.randint(n, (2, 3 * n), generator=gen)
        return (ei if kind == "edges" else GraphEdges(ei, n) | SelfLoops()), [n]
    pattern = {"window": Window(1), "longformer": longformer(2, (0,)), "bigbird": bigbird(1, (0,), 1),
               "full": Full(), "stride": Stride(3), "band": Band()}[kind]
    return pattern, lengths


@SETTINGS
@given(data=st.data())
def test_non_finite_inputs_stay_with_the_queries_that_attend_to_them(data):
    edges, lengths = graphs(data.draw)
    n = sum(lengths)
    graph = AttentionGraph.build(edges, lengths=lengths)
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 999)))
    clean = [torch.randn(n, 2, 4, generator=gen, dtype=torch.float64) for _ in range(3)]
    poisoned = [t.clone() for t in clean]
    bad_nodes = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3, unique=True))
    where = {}
    for node in bad_nodes:
        which = data.draw(st.sampled_from([0, 1, 2]))  # q, k or v
        value = data.draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
        poisoned[which][node, data.draw(st.integers(0, 1))] = value
        where.setdefault(which, set()).add(node)
    src, dst = graph.edge_index
    reached = set(where.get(0, set()))  # a bad query spoils its own row
    for which in (1, 2):
        for node in where.get(which, ()):
            reached |= set(dst[src == node].tolist())
    fine = torch.tensor([i not in reached for i in range(n)])
    want = ops.attention(*clean, graph, backend="reference").out
    with torch.no_grad():
        for backend in SWEPT_KERNELS:
            try:
                got = ops.attention(*poisoned, graph, backend=backend).out
            except NotImplementedError:  # a backend this machine cannot run
                continue
            spoiled = ~torch.isfinite(got).all(dim=2).all(dim=1)
            assert not (spoiled & fine).any(), (backend, spoiled.nonzero().flatten().tolist(), sorted(reached))
            torch.testing.assert_close(got[fine], want[fine], atol=1e-10, rtol=0, msg=backend)


def test_one_nan_node_on_a_window_spoils_only_its_neighbours():
    n = 130
    q, k, v = (torch.randn(n, 2, 4) for _ in range(3))
    k[64], v[64] = float("nan"), float("nan")
    for backend in ("reference", "dense", "blocked", "scatter", "sparse"):
        out = ops.attention(q, k, v, Window(1), backend=backend).out
        bad = (~torch.isfinite(out)).any(dim=2).any(dim=1).nonzero().flatten().tolist()
        assert bad == [63, 64, 65], backend


@pytest.mark.parametrize("kind", ["dense", "band", "sparse"])
def test_containment_is_the_same_eager_and_compiled(kind):
    """No value check decides anything on the forward path, so compiled code keeps a non-finite key
    or value exactly where eager code does."""
    torch._dynamo.reset()
    n = 300
    random_edges = torch.randint(n, (2, 4 * n), generator=torch.Generator().manual_seed(0))
    edges = {"dense": Full(), "band": Window(3), "sparse": random_edges}
    graph = AttentionGraph.build(edges[kind], n)
    q, k, v = (torch.randn(n, 2, 8, generator=torch.Generator().manual_seed(i)) for i in range(3))
    k[17, 1, 0], v[200, 0, 3] = float("nan"), float("inf")

    def attend(q, k, v):
        return ops.attention(q, k, v, graph).out

    eager = attend(q, k, v)
    assert ops.attention(q, k, v, graph).kernel == kind
    compiled = torch.compile(attend, fullgraph=True)(q, k, v)
    spoiled = ~torch.isfinite(eager).all(dim=2).all(dim=1)
    assert torch.equal(spoiled, ~torch.isfinite(compiled).all(dim=2).all(dim=1))
    src, dst = graph.edge_index
    assert spoiled.nonzero().flatten().tolist() == sorted(set(dst[(src == 17) | (src == 200)].tolist()))
    torch.testing.assert_close(compiled[~spoiled], eager[~spoiled], atol=1e-5, rtol=1e-5)
