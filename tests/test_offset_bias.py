"""Offset biases (ALiBi, T5 relative bias on 1-D integer positions) on the fused kernels: the
fast path (cached index tiles, Toeplitz dense layout, mask folded in) equals the plain
``bias(q_idx, k_idx)`` path in float64, outputs and gradients, on every position case."""

from __future__ import annotations

import pytest
import torch

from graphattn import ops
from graphattn.nn import ALiBi, RelativePositionBias, SelfAttentionConv
from graphattn.ops import AttentionGraph, OffsetBias
from graphattn.patterns import Causal, Full, Pattern, Stride, VirtualNodes, Window, bigbird, longformer, positions

F64 = torch.float64
TOL = dict(rtol=1e-9, atol=1e-10)  # the same float64 values, summed in the same order or nearly


class Band(Pattern):
    """A user's pattern that states only its predicate (the generic tile path)."""

    def mask(self, q_idx, k_idx, n):
        return (q_idx - k_idx).abs() <= 3


PATTERNS = [Full(), Window(3), Causal(), Stride(3, reach=6), longformer(2, (0,)), bigbird(2, (0,), 2, seed=1), Band()]
BIASES = {
    "alibi": lambda: ALiBi(4),
    "relative-clamped": lambda: RelativePositionBias(4, num_buckets=8, max_distance=5),
    "relative-causal": lambda: RelativePositionBias(4, num_buckets=6, max_distance=9, bidirectional=False),
    "relative-t5": lambda: RelativePositionBias(4),
}
#: default positions; the graph's own given positions; positions equal to the default but another tensor
POSITIONS = ["default", "graph", "foreign"]


def encoding(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    enc = BIASES[name]().to(F64)
    for p in enc.parameters():
        torch.nn.init.normal_(p)
    return enc


def graph_and_pos(pattern: Pattern, sizes: torch.Tensor, case: str) -> tuple[AttentionGraph, torch.Tensor]:
    if case == "graph":
        graph = AttentionGraph.build(pattern, lengths=sizes, pos=positions(sizes) * 3 + 1)
        return graph, graph.node_positions()
    graph = AttentionGraph.build(pattern, lengths=sizes)
    return graph, (graph.node_positions() if case == "default" else positions(graph.sizes).clone())


@pytest.mark.parametrize("case", POSITIONS)
@pytest.mark.parametrize("sizes", [[70], [5, 8, 70]], ids=str)
@pytest.mark.parametrize("name", BIASES)
@pytest.mark.parametrize("pattern", PATTERNS, ids=repr)
def test_offset_bias_equals_the_plain_bias_outputs_and_gradients(pattern, name, sizes, case):
    enc = encoding(name)
    graph, pos = graph_and_pos(pattern, torch.tensor(sizes), case)
    n = graph.num_nodes
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(n, 4, 3, dtype=F64, generator=gen, requires_grad=True) for _ in range(3))
    leaves = [q, k, v, *enc.parameters()]
    seed = torch.randn(n, 4, 3, dtype=F64, generator=gen)
    for backend in ("dense", "blocked"):
        want = ops.attention(q, k, v, graph, bias=enc(q, k, pos)[2].fn, backend=backend)
        want_grads = torch.autograd.grad((want.out * seed).sum(), leaves, allow_unused=True)
        for _ in range(2):  # the second call reads the index tiles cached on the graph
            bias = enc(q, k, pos)[2]
            assert isinstance(bias, OffsetBias)
            got = ops.attention(q, k, v, graph, bias=bias, backend=backend)
            torch.testing.assert_close(got.out, want.out, **TOL, msg=backend)
            grads = torch.autograd.grad((got.out * seed).sum(), leaves, allow_unused=True)
            for g, w in zip(grads, want_grads):
                torch.testing.assert_close(g, w, **TOL, msg=backend)


@pytest.mark.parametrize("case", POSITIONS)
def test_the_index_tiles_are_cached_only_on_the_graphs_own_positions(case):
    enc = encoding("relative-clamped")
    graph, pos = graph_and_pos(Window(3), torch.tensor([5, 8, 70]), case)
    q = torch.randn(graph.num_nodes, 4, 3, dtype=F64)
    res = ops.attention(q, q, q, graph, bias=enc(q, q, pos)[2], backend="blocked")
    memo = graph.plan(ops.KERNELS[res.kernel]).memo  # the index tiles live in the plan of the kernel that ran
    cached = [key for key in memo if key[0] == "offset_index"]
    assert bool(cached) == (case != "foreign")


@pytest.mark.parametrize("pattern, shared", [(Window(3), True), (longformer(2, (0,)), False)], ids=repr)
def test_a_band_on_default_positions_keeps_one_blocks_index(pattern, shared):
    # Every block of a band sees the same offsets k - q, so one block's index serves all; global
    # key columns differ per block, so a Longformer tile keeps its full index.
    graph, pos = graph_and_pos(pattern, torch.tensor([400]), "default")  # 7 blocks of 64: the middle one is inner
    q = torch.randn(graph.num_nodes, 4, 3, dtype=F64)
    assert ops.attention(q, q, q, graph, bias=encoding("alibi")(q, q, pos)[2], backend="blocked").kernel == "band"
    (index, _, mask), = [v for key, v in graph.plan(ops.KERNELS["band"]).memo.items()
                         if key[0] == "offset_index" and key[1] == "band"]
    assert (index.size(0) == 1 and mask is not None) == shared


@pytest.mark.parametrize("name", BIASES)
@pytest.mark.parametrize("pattern", [Full(), Window(3), VirtualNodes(1) | Window(2), Band()], ids=repr)
def test_layer_on_a_prepared_graph_equals_reference_twice_with_table_gradients(pattern, name):
    torch.manual_seed(0)
    convs = {b: SelfAttentionConv(6, 8, 4, position=encoding(name), backend=b).to(F64) for b in ("auto", "reference")}
    convs["auto"].load_state_dict(convs["reference"].state_dict())
    graph = AttentionGraph.build(pattern, lengths=torch.tensor([5, 70]))
    x = torch.randn(graph.num_nodes, 6, dtype=F64)
    want = convs["reference"](x, graph)
    want_grads = torch.autograd.grad(want.square().sum(), list(convs["reference"].parameters()))
    for _ in range(2):
        got = convs["auto"](x, graph)
        torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-8)
        grads = torch.autograd.grad(got.square().sum(), list(convs["auto"].parameters()))
        for g, w in zip(grads, want_grads):
            torch.testing.assert_close(g, w, rtol=1e-7, atol=1e-8)


def test_a_custom_bias_and_fractional_or_2d_positions_keep_the_plain_path():
    q = torch.randn(10, 2, 3, dtype=F64)
    assert not isinstance(ALiBi(2)(q, q, torch.arange(10) * 0.5)[2], OffsetBias)
    assert not isinstance(ALiBi(2)(q, q, torch.randn(10, 2))[2], OffsetBias)
    assert not isinstance(RelativePositionBias(2, dims=2)(q, q, torch.arange(20).view(10, 2))[2], OffsetBias)
    assert isinstance(RelativePositionBias(2)(q, q, torch.arange(10) * 0.5)[2], OffsetBias)  # positions are rounded


def test_a_bad_offset_bias_is_refused_by_name():
    q = torch.randn(10, 2, 3, dtype=F64)
    bias = ALiBi(2).to(F64)(q, q, torch.arange(10))[2]
    with pytest.raises(ValueError, match=r"OffsetBias.pos must be a long tensor of shape \[N\] = \[10\]"):
        ops.attention(q, q, q, Full(), bias=OffsetBias(bias.fn, torch.arange(9), bias.table))
    wrong = OffsetBias(bias.fn, torch.arange(10), lambda reach: torch.zeros(2, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"OffsetBias.table\(9\) must have shape \[H, 19\]"):
        ops.attention(q, q, q, Full(), bias=wrong, backend="dense")
