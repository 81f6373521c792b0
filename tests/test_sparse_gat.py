"""GAT's and GATv2's scores: the sparse kernel equals scatter and the float64 oracle (outputs, weights,
gradients), keeps O(E H) numbers for the backward, applies a caller's dropout mask, and auto picks it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphattn import AttentionGraph, ops
from graphattn.ops import ScoreSpec

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = settings(max_examples=30, deadline=None)


@st.composite
def cases(draw):
    """A random graph (duplicate edges, self-loops, queries without keys) and GAT-style inputs."""
    n = draw(st.integers(1, 20))
    e = draw(st.integers(0, 60))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 10_000)))
    ei = torch.randint(n, (2, e), generator=gen)
    if e and draw(st.booleans()):
        ei = torch.cat([ei, ei[:, : draw(st.integers(1, e))]], dim=1)
    score = draw(st.sampled_from(["gat", "gatv2"]))
    heads, channels = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    width = 1 if score == "gat" else channels
    q, k = (torch.randn(n, heads, width, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(2))
    v = torch.randn(n, heads, channels, generator=gen, dtype=torch.float64, requires_grad=True)
    edge_k = torch.randn(ei.size(1), heads, width, generator=gen, dtype=torch.float64, requires_grad=True)
    att = torch.randn(heads, width, generator=gen, dtype=torch.float64, requires_grad=True)
    extras = {"edge_k": edge_k if draw(st.booleans()) else None, "negative_slope": draw(st.sampled_from([0.2, 0.01, 1.5]))}
    if draw(st.booleans()):  # a caller's dropout mask
        extras["keep"] = (torch.rand(ei.size(1), heads, generator=gen) > 0.3).double() / 0.7
    return AttentionGraph.build(ei, n), score, q, k, v, att if score == "gatv2" else None, extras


def run(backend, graph, score, q, k, v, att, extras):
    res = ops.attention(q, k, v, graph, score=score, att=att, backend=backend, return_weights=True, **extras)
    assert res.kernel == backend
    return res.out, res.weights[1]


@SETTINGS
@given(cases())
def test_sparse_and_scatter_equal_the_oracle_outputs_weights_and_gradients(case):
    graph, score, q, k, v, att, extras = case
    leaves = [t for t in (q, k, v, att, extras.get("edge_k")) if t is not None]
    # the dense oracle holds one value per (query, key): per-edge values on duplicate edges go to scatter,
    # itself pinned to the oracle wherever the oracle can run
    spec = ScoreSpec(score=score, edge_k=extras.get("edge_k"), keep=extras.get("keep"))
    oracle = "scatter" if ops.KERNELS["reference"].unsupported(graph, spec) else "reference"
    results = {}
    for backend in (oracle, "scatter", "sparse"):
        out, alpha = run(backend, graph, score, q, k, v, att, extras)
        probe = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        loss = (out * probe).sum() + (alpha * alpha.detach().flip(0)).sum()
        results[backend] = (out, alpha, torch.autograd.grad(loss, leaves, allow_unused=True))
    want_out, want_alpha, want_grads = results[oracle]
    for backend in ("scatter", "sparse"):
        out, alpha, grads = results[backend]
        torch.testing.assert_close(out, want_out, atol=1e-12, rtol=0)
        torch.testing.assert_close(alpha, want_alpha, atol=1e-12, rtol=0)
        for got, want in zip(grads, want_grads):
            if want is None:
                assert got is None or not got.abs().sum()
            else:
                torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


@pytest.mark.parametrize("score", ["gat", "gatv2"])
def test_gradcheck_with_duplicates_isolated_queries_and_edge_features(score):
    ei = torch.tensor([[0, 1, 2, 2, 3, 4, 5, 8, 8, 1, 6], [1, 1, 1, 3, 2, 2, 6, 6, 7, 7, 6]])  # 0, 4, 5, 8 isolated
    graph = AttentionGraph.build(ei, 9)
    gen = torch.Generator().manual_seed(0)
    width = 1 if score == "gat" else 3
    q, k = (torch.randn(9, 2, width, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(2))
    v = torch.randn(9, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    e = torch.randn(11, 2, width, generator=gen, dtype=torch.float64, requires_grad=True)
    att = torch.randn(2, width, generator=gen, dtype=torch.float64, requires_grad=True) if score == "gatv2" else None

    def attend(q, k, v, e):
        return ops.attention(q, k, v, graph, score=score, att=att, edge_k=e, backend="sparse", return_weights=True)[:2]

    assert torch.autograd.gradcheck(lambda *t: (attend(*t)[0], attend(*t)[1][1]), (q, k, v, e))
    out = attend(q, k, v, e)[0]
    assert out[[0, 4, 5, 8]].abs().sum() == 0  # queries without in-neighbours output zeros


@pytest.mark.parametrize("score, channels", [("gat", 1), ("gatv2", 32)])
def test_backward_keeps_per_edge_numbers_not_per_edge_rows(score, channels):
    n, heads, e = 300, 4, 6000
    graph = AttentionGraph.build(torch.randint(n, (2, e), generator=torch.Generator().manual_seed(0)), n)
    q, k = (torch.randn(n, heads, channels, requires_grad=True) for _ in range(2))
    v = torch.randn(n, heads, 32, requires_grad=True)
    edge_k = torch.randn(e, heads, channels, requires_grad=True)
    att = torch.randn(heads, channels, requires_grad=True) if score == "gatv2" else None
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        ops.attention(q, k, v, graph, score=score, att=att, edge_k=edge_k, backend="sparse")
    # saved: the inputs themselves and O(E H) numbers; a gathering kernel keeps E H C = 768000 per tensor
    own = [t for t in saved if not any(t is leaf for leaf in (q, k, v, edge_k, att))]
    assert max(t.numel() for t in own) <= max(e * heads, n * heads * 32)


def test_a_callers_dropout_mask_is_applied_and_replaces_drawing():
    n = 30
    ei = torch.randint(n, (2, 200), generator=torch.Generator().manual_seed(1)).unique(dim=1)
    graph = AttentionGraph.build(ei, n)
    q = torch.randn(n, 2, 1, dtype=torch.float64)
    v = torch.eye(n, dtype=torch.float64)[:, None, :].expand(n, 2, n)  # one-hot values: out is the dropped weights
    keep = (torch.rand(ei.size(1), 2) > 0.5).double() * 2
    for backend in ("sparse", "scatter", "reference"):
        res = ops.attention(q, q, v, graph, score="gat", keep=keep, dropout=0.9, training=True, backend=backend,
                            return_weights=True)
        dropped = res.out[ei[1], torch.arange(2)[:, None], ei[0]].T  # (E, H)
        torch.testing.assert_close(dropped, res.weights[1] * keep)


def test_auto_picks_sparse_for_gat_scores_and_refuses_them_on_dense_kernels():
    graph = AttentionGraph.build(torch.randint(50, (2, 300), generator=torch.Generator().manual_seed(0)), 50)
    spec = ScoreSpec(score="gat")
    assert ops.choose_kernel(graph, spec).name == "sparse"
    q = torch.randn(50, 2, 1)
    with pytest.raises(NotImplementedError, match="gat scores"):
        ops.attention(q, q, torch.randn(50, 2, 4), graph, score="gat", backend="dense")
    with pytest.raises(ValueError, match=r"att must be a \[H, C\]"):
        ops.attention(q, q, q, graph, score="gatv2")
    with pytest.raises(ValueError, match=r"keep must be a tensor of shape \[300, 2\]"):
        ops.attention(q, q, q, graph, score="gat", keep=torch.ones(3, 2))
