"""Data-dependent patterns (LSH, KMeans, TopK): the graph each forward builds from q and k, the
kernels that compute it equal the float64 oracle on that graph, and the identities with Full()."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphattn import GraphTransformer, ops
from graphattn.nn import SelfAttentionConv
from graphattn.ops import AttentionGraph, GroupGraph
from graphattn.patterns import LSH, Full, KMeans, TopK, Window, parse_pattern
from graphattn.viz import attention_to_dense

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def qkv(n: int, heads: int = 2, channels: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, heads, channels, generator=gen, dtype=torch.float64).requires_grad_() for _ in range(3)]


def outputs_weights_grads(q, k, v, edges, **kwargs):
    res = ops.attention(q, k, v, edges, return_weights=True, **kwargs)
    probe = torch.randn(res.out.shape, generator=torch.Generator().manual_seed(1), dtype=res.out.dtype)
    return res, torch.autograd.grad((res.out * probe).sum(), (q, k, v))


def assert_same_attention(a, b, atol=1e-12):
    (res_a, grads_a), (res_b, grads_b) = a, b
    torch.testing.assert_close(res_a.out, res_b.out, atol=atol, rtol=0)
    assert torch.equal(res_a.weights[0], res_b.weights[0])
    torch.testing.assert_close(res_a.weights[1], res_b.weights[1], atol=atol, rtol=0)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, atol=atol, rtol=0)


# 1. identities with Full() ---------------------------------------------------------------------
@pytest.mark.parametrize("pattern", [LSH(1), KMeans(1), TopK(32), TopK(1000)], ids=repr)
def test_one_bucket_one_cluster_or_k_at_least_the_length_is_full(pattern):
    sizes = [1, 7, 32, 0, 19]
    q, k, v = qkv(sum(sizes))
    full = AttentionGraph.build(Full(), lengths=sizes)
    routed = AttentionGraph.build(pattern, lengths=sizes)
    assert_same_attention(outputs_weights_grads(q, k, v, routed), outputs_weights_grads(q, k, v, full, backend="reference"))


# 2. the fast kernels equal the oracle on the routed graph --------------------------------------
ROUTED = {
    "lsh": lambda d: LSH(d(st.sampled_from([2, 4, 8])), seed=d(st.integers(0, 3))),
    "kmeans": lambda d: KMeans(d(st.integers(1, 5)), iterations=d(st.integers(0, 3))),
    "topk": lambda d: TopK(d(st.integers(1, 9))),
}


@SETTINGS
@given(name=st.sampled_from(sorted(ROUTED)), data=st.data(),
       sizes=st.lists(st.integers(0, 20), min_size=1, max_size=3).filter(lambda s: sum(s) > 0),
       heads=st.integers(1, 2), channels=st.integers(1, 4), shared=st.booleans(), with_bias=st.booleans())
def test_routed_graph_computed_fast_equals_the_reference_on_its_edges(name, data, sizes, heads, channels, shared,
                                                                      with_bias):
    pattern = ROUTED[name](data.draw)
    q, k, v = qkv(sum(sizes), heads, channels, seed=sum(sizes))
    if shared:  # Reformer's shared-QK attention
        k = q
    graph = AttentionGraph.build(pattern, lengths=sizes)
    def distance_bias(qi, ki):  # (..., H): node ids reach the bias, whatever the kernel's order
        return -0.1 * (qi - ki).abs().to(torch.float64)[..., None].expand(*torch.broadcast_shapes(qi.shape, ki.shape),
                                                                        heads)

    bias = distance_bias if with_bias else None
    fast = outputs_weights_grads(q, k, v, graph, bias=bias)
    assert (fast[0].kernel == "buckets") == (name != "topk")
    routed = ops.route(q, k, graph)
    assert_same_attention(fast, outputs_weights_grads(q, k, v, routed, backend="reference", bias=bias))


def test_a_group_graph_runs_on_every_kernel_that_takes_explicit_edges():
    q, k, v = qkv(30)
    routed = ops.route(q, k, AttentionGraph.build(LSH(4, seed=2), lengths=[12, 18]))
    assert isinstance(routed, GroupGraph) and "groups of LSH(buckets=4, seed=2)" in repr(routed)
    want = outputs_weights_grads(q, k, v, routed, backend="reference")
    for backend in ("buckets", "blocked", "dense", "sparse", "scatter"):
        assert_same_attention(outputs_weights_grads(q, k, v, routed, backend=backend), want, atol=1e-10)


def test_queries_whose_bucket_holds_no_key_get_zeros_on_every_kernel():
    _, _, v = qkv(12)
    d = torch.randn(2, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    length = torch.rand(12, 1, 1, generator=torch.Generator().manual_seed(6), dtype=torch.float64) + 0.5
    sign = torch.tensor([1.0] * 6 + [-1.0] * 6, dtype=torch.float64)[:, None, None]
    q = (sign * length * d).requires_grad_()  # h(-x) != h(x): queries 0..5 in one bucket, 6..11 in the other
    k = (-length * d).requires_grad_()  # every key in the bucket of queries 6..11
    graph = AttentionGraph.build(LSH(2), lengths=[12])
    routed = ops.route(q, k, graph)
    assert routed.edge_index[1].unique().tolist() == list(range(6, 12)) and routed.num_edges == 6 * 12
    fast = outputs_weights_grads(q, k, v, graph)
    assert fast[0].kernel == "buckets" and fast[0].out[:6].abs().sum() == 0
    assert_same_attention(fast, outputs_weights_grads(q, k, v, routed, backend="reference"))
    nothing = ops.attention(-k, k, v, graph, return_weights=True)  # no query meets a key: no group is laid out
    assert nothing.out.abs().sum() == 0 and nothing.weights[1].shape == (0, 2)


# 3. what each pattern chooses -------------------------------------------------------------------
def _keys_of(edge_index: torch.Tensor, n: int) -> list[set[int]]:
    keys = [set() for _ in range(n)]
    for j, i in edge_index.T.tolist():
        keys[i].add(j)
    return keys


def test_topk_chooses_the_k_keys_of_largest_summed_score_in_its_sequence():
    sizes, per_query = [9, 14], 4
    q, k, _ = qkv(sum(sizes), heads=3)
    edge_index = ops.route(q, k, AttentionGraph.build(TopK(per_query), lengths=sizes)).edge_index
    scores = torch.einsum("ihc,jhc->ij", q, k)  # summed over heads
    start = 0
    for size in sizes:
        block = scores[start:start + size, start:start + size]
        want = [{start + j for j in row.topk(per_query).indices.tolist()} for row in block]
        assert _keys_of(edge_index, sum(sizes))[start:start + size] == want
        start += size


def test_lsh_groups_are_a_partition_within_each_sequence_and_ignore_the_length_of_vectors():
    sizes = [11, 16]
    q, k, _ = qkv(sum(sizes), seed=3)
    graph = AttentionGraph.build(LSH(8), lengths=sizes)
    keys = _keys_of(ops.route(q, k, graph).edge_index, sum(sizes))
    for i, mine in enumerate(keys):
        same_seq = range(0, 11) if i < 11 else range(11, 27)
        assert mine <= set(same_seq)
        assert all(keys[j] in (mine, set()) or not (keys[j] & mine) for j in same_seq)  # equal or disjoint
    scaled = _keys_of(ops.route(3.0 * q, 0.5 * k, graph).edge_index, sum(sizes))
    assert scaled == keys  # an angular hash: only directions matter
    shared = _keys_of(ops.route(q, q, graph).edge_index, sum(sizes))
    assert all(i in mine for i, mine in enumerate(shared))  # shared QK: every node is in its own bucket


def test_kmeans_separates_two_well_separated_directions():
    gen = torch.Generator().manual_seed(0)
    side = torch.tensor([0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0])
    directions = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0]], dtype=torch.float64)
    x = (directions[side] + 0.05 * torch.randn(12, 4, generator=gen, dtype=torch.float64))[:, None, :]  # (N, 1, C)
    keys = _keys_of(ops.route(x, x, AttentionGraph.build(KMeans(2), lengths=[12])).edge_index, 12)
    for i in range(12):
        assert keys[i] == {j for j in range(12) if side[j] == side[i]}


# 4. batches, containment, layers and models -----------------------------------------------------
@pytest.mark.parametrize("pattern", [LSH(4), KMeans(3), TopK(3)], ids=repr)
def test_each_sequence_of_a_batch_is_routed_and_attended_as_if_alone(pattern):
    sizes = [5, 13, 8]
    q, k, v = qkv(sum(sizes))
    batched = ops.attention(q, k, v, AttentionGraph.build(pattern, lengths=sizes)).out
    start = 0
    for size in sizes:
        rows = slice(start, start + size)
        alone = ops.attention(q[rows], k[rows], v[rows], AttentionGraph.build(pattern, lengths=[size])).out
        torch.testing.assert_close(batched[rows], alone, atol=1e-12, rtol=0)
        start += size


@pytest.mark.parametrize("pattern", [LSH(4), KMeans(3), TopK(3)], ids=repr)
def test_a_non_finite_key_reaches_only_the_queries_routed_to_it(pattern):
    q, k, v = qkv(20)
    k = k.detach().clone()
    k[6, 1, 2] = float("nan")
    graph = AttentionGraph.build(pattern, lengths=[20])
    edge_index = ops.route(q, k, graph).edge_index
    out = ops.attention(q, k, v, graph).out
    reached = set(edge_index[1, edge_index[0] == 6].tolist())
    assert {i for i in range(20) if out[i].isnan().any()} == reached


def test_layer_returns_the_edges_built_in_that_forward_and_they_can_be_drawn():
    torch.manual_seed(0)
    layer = SelfAttentionConv(8, 8, heads=2).double()
    x = torch.randn(24, 8, dtype=torch.float64)
    out, (edge_index, alpha) = layer(x, TopK(5), return_attention_weights=True)
    assert edge_index.shape == (2, 24 * 5) and alpha.shape == (24 * 5, 2)
    dense = attention_to_dense(edge_index, alpha, 24)  # (H, N, N)
    torch.testing.assert_close(dense.sum(-1), torch.ones(2, 24, dtype=torch.float64))
    layer.backend = "reference"
    torch.testing.assert_close(layer(x, TopK(5)), out)
    seen = []  # under PyG's message-passing hooks the layer routes too, and gives the same answer
    handle = layer.register_message_forward_hook(lambda module, inputs, output: seen.append(inputs[0]["alpha"]))
    hooked, (hooked_edges, hooked_alpha) = layer(x, TopK(5), return_attention_weights=True)
    handle.remove()
    assert seen and torch.equal(hooked_edges, edge_index)
    torch.testing.assert_close(hooked, out)
    torch.testing.assert_close(hooked_alpha, alpha)


def test_model_layers_route_on_their_own_queries_and_learn_through_the_chosen_edges():
    torch.manual_seed(0)
    model = GraphTransformer(6, 16, 3, num_layers=2, heads=2, pattern=LSH(4))
    x, batch = torch.randn(30, 6), torch.tensor([0] * 12 + [1] * 18)
    out, weights = model(x, batch=batch, return_attention_weights=True)
    assert [w[0].shape[0] for w in weights] == [2, 2] and not torch.equal(weights[0][0], weights[1][0])
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters()
               if "lin_query" in n or "lin_key" in n)


# 5. text, errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern", [LSH(8, seed=3), KMeans(4, iterations=2), TopK(5)], ids=repr)
def test_routed_patterns_print_and_parse_by_value(pattern):
    assert parse_pattern(repr(pattern)) == pattern and hash(parse_pattern(repr(pattern))) == hash(pattern)


@pytest.mark.parametrize("make, error, match", [
    (lambda: LSH(3), ValueError, "1 or even"),
    (lambda: LSH(0), ValueError, "buckets must be a positive int"),
    (lambda: LSH(4, seed=-1), ValueError, "seed"),
    (lambda: KMeans(0), ValueError, "clusters"),
    (lambda: KMeans(2, iterations=1.5), TypeError, "iterations"),
    (lambda: TopK(0), ValueError, "k must be"),
    (lambda: Window(1) | LSH(2), TypeError, "does not combine"),
    (lambda: TopK(2) & Full(), TypeError, "does not combine"),
    (lambda: LSH(2).edge_index(5), TypeError, "data-dependent"),
    (lambda: KMeans(2).dense_mask(5), TypeError, "data-dependent"),
])
def test_bad_routed_patterns_raise_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_edge_features_need_explicit_edges_not_a_routed_pattern():
    q, k, v = qkv(6)
    with pytest.raises(ValueError, match="edge_kv"):
        ops.attention(q, k, v, TopK(2), edge_kv=torch.zeros(12, 2, 4, dtype=torch.float64))
