"""The sparse (SDDMM / SpMM) kernel: equal to the oracle on any edge list, O(E H) saved, chosen for graphs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphattn import AttentionGraph, ops
from graphattn.nn import SelfAttentionConv
from graphattn.ops import ScoreSpec

SETTINGS = settings(max_examples=40, deadline=None)


def sparse_attention(q, k, v, graph, spec, return_weights=False):
    """The sparse kernel through the dispatcher, forced: ``(out, alpha | None)``."""
    res = ops.attention(q, k, v, graph, scale=spec.scale, bias=spec.bias, dropout=spec.dropout, training=spec.training,
                        backend="sparse", return_weights=return_weights)
    assert res.kernel == "sparse"
    return res.out, (res.weights[1] if return_weights else None)


@st.composite
def edge_lists(draw):
    """Random directed graphs with duplicate edges, self-loops and queries without any edge."""
    n = draw(st.integers(1, 25))
    e = draw(st.integers(0, 80))
    seed = draw(st.integers(0, 10_000))
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(n, (2, e), generator=gen)
    if e and draw(st.booleans()):
        ei = torch.cat([ei, ei[:, : draw(st.integers(1, e))]], dim=1)  # duplicates
    ei = ei[:, torch.randperm(ei.size(1), generator=gen)]
    return n, ei, draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.booleans()), seed


def tensors(n, heads, channels, seed, with_bias):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n, heads, channels, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3))
    table = torch.randn(n, n, heads, generator=gen, dtype=torch.float64, requires_grad=True)
    return q, k, v, table, ScoreSpec(scale=channels**-0.5, bias=(lambda i, j: table[i, j]) if with_bias else None)


@SETTINGS
@given(edge_lists())
def test_sparse_equals_the_reference_outputs_weights_and_gradients(case):
    n, ei, heads, channels, with_bias, seed = case
    q, k, v, table, spec = tensors(n, heads, channels, seed, with_bias)
    graph = AttentionGraph.build(ei, n)
    want, want_w = ops.reference_attention(q, k, v, graph, spec, return_weights=True)
    got, got_w = sparse_attention(q, k, v, graph, spec, return_weights=True)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    torch.testing.assert_close(got_w, want_w, atol=1e-12, rtol=0)
    probe, probe_w = torch.randn_like(want), torch.randn_like(want_w)
    leaves = (q, k, v, table)
    want_g = torch.autograd.grad((want * probe).sum() + (want_w * probe_w).sum(), leaves, allow_unused=True)
    got_g = torch.autograd.grad((got * probe).sum() + (got_w * probe_w).sum(), leaves, allow_unused=True)
    for g, w in zip(got_g, want_g):
        if w is None:
            assert g is None or not g.abs().sum()
        else:
            torch.testing.assert_close(g, w, atol=1e-11, rtol=0)


def test_gradcheck_with_bias_duplicates_isolated_queries_and_dropout():
    n, heads, channels = 9, 2, 3
    ei = torch.tensor([[0, 1, 2, 2, 3, 4, 5, 8, 8, 1], [1, 1, 1, 1, 2, 2, 6, 6, 7, 7]])  # 0, 3, 4, 5, 8 isolated
    graph = AttentionGraph.build(ei, n)
    q, k, v, table, _ = tensors(n, heads, channels, 0, True)

    def attend(q, k, v, table, dropout=0.0):
        torch.manual_seed(0)  # the same dropout mask on every call
        spec = ScoreSpec(scale=0.7, bias=lambda i, j: table[i, j], dropout=dropout, training=True)
        out, alpha = sparse_attention(q, k, v, graph, spec, return_weights=True)
        return out, alpha

    assert torch.autograd.gradcheck(attend, (q, k, v, table))
    assert torch.autograd.gradcheck(lambda *t: attend(*t, dropout=0.4), (q, k, v, table))
    out, _ = attend(q, k, v, table)
    assert out[[0, 3, 4, 5, 8]].abs().sum() == 0  # queries without in-neighbours output zeros


def test_dropout_drops_weights_and_rescales_the_rest():
    n = 40
    ei = torch.randint(n, (2, 400), generator=torch.Generator().manual_seed(1)).unique(dim=1)
    graph = AttentionGraph.build(ei, n)
    q = torch.randn(n, 1, 4, dtype=torch.float64)
    v = torch.eye(n, dtype=torch.float64)[:, None, :]  # one-hot values: out is the dropped weight matrix
    spec = ScoreSpec(scale=0.5, dropout=0.5, training=True)
    torch.manual_seed(3)
    out, alpha = sparse_attention(q, q, v, graph, spec, return_weights=True)
    dense = torch.zeros(n, n, dtype=torch.float64).index_put_((ei[1], ei[0]), alpha[:, 0], accumulate=True)
    kept = out[:, 0, :]
    ratio = kept[dense > 0] / dense[dense > 0]
    assert set(ratio.round(decimals=9).tolist()) <= {0.0, 2.0} and (ratio == 0).any() and (ratio == 2).any()


def test_backward_saves_per_edge_numbers_not_per_edge_rows():
    n, heads, channels = 300, 4, 32
    ei = torch.randint(n, (2, 6000), generator=torch.Generator().manual_seed(0))
    graph = AttentionGraph.build(ei, n)
    q, k, v = (torch.randn(n, heads, channels, requires_grad=True) for _ in range(3))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        sparse_attention(q, k, v, graph, ScoreSpec(scale=0.2))
    # O(E H) per-edge numbers and O(N H C) rows; gathering would keep E H C = 768000 per tensor
    assert max(saved) <= max(ei.size(1) * heads, n * heads * channels)
    assert sum(saved) < ei.size(1) * heads * channels / 2


def test_auto_picks_sparse_for_graphs_and_the_layer_agrees_with_scatter():
    torch.manual_seed(0)
    n = 3000
    ei = torch.cat([torch.randint(n, (2, 20000)), torch.arange(n).repeat(2, 1)], dim=1)
    layer = SelfAttentionConv(16, 16, heads=4)
    x = torch.randn(n, 16)
    assert ops.choose_backend(ei, num_nodes=n) == "sparse"
    out, (ei_back, alpha) = layer(x, ei, return_attention_weights=True)
    layer.backend = "scatter"
    want, (_, want_alpha) = layer(x, ei, return_attention_weights=True)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alpha, want_alpha, atol=1e-6, rtol=1e-4)
    assert torch.equal(ei_back, ei)


@pytest.mark.parametrize("score, edge_dim, reason", [("additive", None, "additive scores"), ("dot", 3, "edge features")])
def test_additive_scores_and_edge_features_are_refused_by_sparse_and_run_on_scatter(score, edge_dim, reason):
    n = 20
    ei = torch.randint(n, (2, 60), generator=torch.Generator().manual_seed(0)).unique(dim=1)
    layer = SelfAttentionConv(8, 8, heads=2, score=score, edge_dim=edge_dim, backend="sparse").double()
    x = torch.randn(n, 8, dtype=torch.float64)
    edge_attr = torch.randn(ei.size(1), 3, dtype=torch.float64) if edge_dim else None
    with pytest.raises(NotImplementedError, match=f"backend='sparse' cannot run this call.*{reason}.*'scatter'"):
        layer(x, ei, edge_attr)
    layer.backend = "auto"
    got = layer(x, ei, edge_attr)
    layer.backend = "reference"
    torch.testing.assert_close(got, layer(x, ei, edge_attr))
