"""The fast kernels (dense, blocked) equal the oracle ``ops.reference`` in float64: outputs,
attention weights and gradients, over patterns, lengths, batches and block sizes; and the
dispatcher picks them when it should."""

from __future__ import annotations

import logging

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from kernel_support import call

from graphattn import ops
from graphattn.nn import SelfAttentionConv
from graphattn.ops import AttentionGraph, ScoreSpec
from graphattn.ops.band import Band
from graphattn.ops.dense import Dense
from graphattn.ops.stride import StridePermute
from graphattn.ops.tiles import Tiles
from graphattn.patterns import (
    Causal,
    Expander,
    Full,
    Global,
    GraphEdges,
    Random,
    SelfLoops,
    Stride,
    Window,
    bigbird,
    longformer,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def alibi(heads: int):
    slopes = torch.tensor([2.0 ** -(h + 1) for h in range(heads)], dtype=torch.float64)
    return lambda q_idx, k_idx: -(q_idx - k_idx).abs().to(torch.float64)[..., None] * slopes.to(q_idx.device)  # (..., H)


def qkv(n: int, heads: int, channels: int, seed: int = 0, device: str = "cpu"):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, heads, channels, generator=gen, dtype=torch.float64).to(device).requires_grad_()
            for _ in range(3)]


def assert_equals_reference(kernel, q, k, v, graph: AttentionGraph, spec: ScoreSpec, atol: float = 1e-10):
    """Outputs (fused path), outputs and weights (explicit path) and gradients of both paths."""
    ref_out, ref_alpha = ops.reference_attention(q, k, v, graph, spec, return_weights=True)
    probe = torch.randn(ref_out.shape, generator=torch.Generator().manual_seed(1), dtype=ref_out.dtype).to(ref_out.device)
    ref_grads = torch.autograd.grad((ref_out * probe).sum(), (q, k, v))
    for with_weights in (False, True):
        out, alpha = kernel(q, k, v, graph, spec, return_weights=with_weights)
        torch.testing.assert_close(out, ref_out, atol=atol, rtol=0)
        if with_weights:
            torch.testing.assert_close(alpha, ref_alpha, atol=atol, rtol=0)
        grads = torch.autograd.grad((out * probe).sum(), (q, k, v))
        for grad, ref in zip(grads, ref_grads):
            torch.testing.assert_close(grad, ref, atol=atol, rtol=0)


PATTERNS = {
    "window": lambda d: Window(d(st.integers(0, 9))),
    "window_lr": lambda d: Window(left=d(st.integers(0, 6)), right=d(st.integers(0, 6))),
    "causal": lambda d: Causal(),
    "full": lambda d: Full(),
    "stride": lambda d: Stride(d(st.integers(1, 5))),
    "stride_reach": lambda d: Stride(d(st.integers(1, 4)), reach=d(st.integers(0, 12))),
    "global": lambda d: Global(tuple(d(st.lists(st.integers(-2, 2), min_size=1, max_size=3)))),
    "random": lambda d: Random(d(st.integers(1, 2)), seed=d(st.integers(0, 3))),
    "longformer": lambda d: longformer(d(st.integers(0, 4)), (0, -1)),
    "longformer_stride": lambda d: longformer(d(st.integers(1, 3)), (1,), stride=d(st.integers(2, 3))),
    "bigbird": lambda d: bigbird(d(st.integers(0, 3)), (0,), 2, seed=d(st.integers(0, 3))),
    "causal_window": lambda d: Causal() & Window(d(st.integers(0, 5))),
    "window_random_random": lambda d: Window(1) | Random(1, seed=1) | Random(2, seed=2),
    "global_random": lambda d: Global((0,)) | Random(1) | SelfLoops(),
}


@st.composite
def cases(draw):
    pattern = PATTERNS[draw(st.sampled_from(sorted(PATTERNS)))](draw)
    sizes = draw(st.lists(st.integers(0, 23), min_size=1, max_size=3).filter(lambda s: sum(s) > 0))
    heads, channels = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    return pattern, sizes, heads, channels, draw(st.sampled_from([1, 3, 4, 8, 64])), draw(st.booleans())


def _graph(pattern, sizes) -> AttentionGraph:
    try:  # Random(k) needs k <= n, Global(g) needs g in range
        return AttentionGraph.build(pattern, lengths=sizes)
    except ValueError:
        assume(False)


@SETTINGS
@given(cases())
def test_blocked_equals_reference(device, case):
    pattern, sizes, heads, channels, block, with_bias = case
    graph = _graph(pattern, sizes).to(device)
    spec = ScoreSpec(scale=channels**-0.5, bias=alibi(heads) if with_bias else None)

    band = Band(block)
    kernels = [band, Tiles(block)]
    stride = StridePermute(Dense(), band)
    if not stride.unsupported(graph, spec):
        kernels.append(stride)
    for kernel in kernels:
        assert_equals_reference(call(kernel), *qkv(sum(sizes), heads, channels, device=device), graph, spec)


@SETTINGS
@given(cases())
def test_dense_equals_reference(device, case):
    pattern, sizes, heads, channels, _, with_bias = case
    graph = _graph(pattern, sizes).to(device)
    spec = ScoreSpec(scale=0.7, bias=alibi(heads) if with_bias else None)
    assert_equals_reference(call(Dense()), *qkv(sum(sizes), heads, channels, device=device), graph, spec)


@SETTINGS
@given(n=st.integers(1, 12), extra=st.integers(0, 30), seed=st.integers(0, 100))
def test_dense_on_edge_index_with_duplicates_and_isolated_queries(device, n, extra, seed):
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(n, (2, extra), generator=gen)
    ei = torch.cat([ei[:, ei[1] != 0], ei[:, :3]], dim=1)  # node 0 isolated; some duplicates
    graph = AttentionGraph.build(ei, n).to(device)
    assert_equals_reference(call(Dense()), *qkv(n, 2, 3, seed, device), graph, ScoreSpec(scale=0.5, bias=alibi(2)))


def test_lengths_not_a_multiple_of_the_block_and_global_rows_in_batches(device):
    sizes = [70, 4, 0, 133]
    for pattern in (longformer(5, (0, 3, -1)), bigbird(4, (2,), 3), Window(left=9, right=2) | Global((-1,))):
        graph = AttentionGraph.build(pattern, lengths=sizes).to(device)
        assert_equals_reference(call(Band(16)), *qkv(sum(sizes), 2, 4, device=device), graph, ScoreSpec(scale=0.4, bias=alibi(2)),
                                atol=1e-9)


@pytest.mark.parametrize("backend", ["dense", "blocked"])
def test_dropout_only_while_training(backend):
    q, k, v = (t.detach() for t in qkv(50, 2, 4))
    plain = ops.attention(q, k, v, longformer(3, (0,)), backend=backend).out
    evaluating = ops.attention(q, k, v, longformer(3, (0,)), dropout=0.5, training=False, backend=backend)
    torch.testing.assert_close(evaluating.out, plain, atol=1e-12, rtol=0)
    torch.manual_seed(0)
    training = ops.attention(q, k, v, longformer(3, (0,)), dropout=0.5, training=True, backend=backend)
    assert training.backend == backend and torch.isfinite(training.out).all()
    assert not torch.allclose(training.out, plain)


def test_blocked_memory_is_linear_in_n():
    """200k nodes: a dense mask would be 40 GB; the blocked kernel needs a few MB."""
    n = 200_000
    q = torch.randn(n, 1, 4)
    res = ops.attention(q, q, q, Window(3) | Global((0,)), backend="auto")
    assert res.backend == "blocked" and res.out.shape == (n, 1, 4)
    head = ops.attention(q[:50], q[:50], q[:50], Window(3) | Global((0,)), backend="reference").out
    torch.testing.assert_close(res.out[1:46], head[1:46], atol=1e-5, rtol=1e-5)  # rows whose keys lie in [0, 50)


@pytest.mark.parametrize(("edges", "n", "expected"), [
    (Full(), 1000, "dense"),
    (Window(128), 16384, "blocked"),
    (longformer(128, (0, 1)), 16384, "blocked"),
    (bigbird(64, (0,), 3), 16384, "blocked"),
    (Stride(8), 4096, "blocked"),
    (Window(128), 200, "dense"),
    (Causal(), 2048, "dense"),
    (Expander(4) | Window(2), 5000, "sparse"),
    (GraphEdges(torch.tensor([[0, 1], [1, 2]]), 3), 3, "dense"),
])
def test_choose_backend(edges, n, expected):
    assert ops.choose_backend(edges, num_nodes=n) == expected
    assert ops.choose_backend(edges, ScoreSpec(score="additive", att=torch.ones(1, 1)), num_nodes=n) == "scatter"


def test_sparse_edge_index_goes_to_sparse_and_dense_graph_to_dense():
    assert ops.choose_backend(Window(2).edge_index(5000), num_nodes=5000) == "sparse"
    assert ops.choose_backend(Full().edge_index(64), num_nodes=64) == "dense"


def test_a_forced_kernel_that_cannot_run_raises_with_its_reasons_and_what_auto_runs():
    q, k, v = (t.detach() for t in qkv(20, 2, 3))
    edges = Window(1).edge_index(20)
    with pytest.raises(NotImplementedError) as err:
        ops.attention(q, k, v, edges, backend="blocked", return_weights=True)
    for kernel in ("stride", "band", "tiles"):  # every kernel of the group gives its own reason
        assert f"{kernel}: an explicit edge_index (no pattern to tile)" in str(err.value)
    assert "backend='auto' runs 'dense'" in str(err.value)
    assert ops.choose_backend(edges, num_nodes=20) == "dense"
    with pytest.raises(NotImplementedError, match="additive scores.*backend='auto' runs 'scatter'"):
        ops.attention(q, k, v, Window(1), score="additive", att=torch.ones(2, 3, dtype=torch.float64), backend="dense")
    with pytest.raises(NotImplementedError, match="not a lone Stride"):
        ops.attention(q, k, v, Window(1), backend="stride")
    # and what auto runs instead equals the oracle
    res = ops.attention(q, k, v, Window(1), score="additive", att=torch.ones(2, 3, dtype=torch.float64), return_weights=True)
    ref = ops.attention(q, k, v, Window(1), score="additive", att=torch.ones(2, 3, dtype=torch.float64), backend="reference",
                        return_weights=True)
    assert res.kernel == "scatter"
    torch.testing.assert_close(res.out, ref.out)
    torch.testing.assert_close(res.weights[1], ref.weights[1])


def test_layer_logs_its_backend_and_equals_the_reference_layer(caplog):
    torch.manual_seed(0)
    layer = SelfAttentionConv(8, 8, heads=2).double()
    x = torch.randn(300, 8, dtype=torch.float64)
    with caplog.at_level(logging.DEBUG, logger="graphattn.ops.dispatch"):
        out = layer(x, longformer(4, (0,)), lengths=torch.tensor([100, 200]))
    assert "auto runs 'band'; skipped stride (" in caplog.text  # the choice, with why the earlier kernel was skipped
    layer.backend = "reference"
    torch.testing.assert_close(out, layer(x, longformer(4, (0,)), lengths=torch.tensor([100, 200])))


@pytest.mark.parametrize("pattern", [Random(0), Global(()), Random(0) | Global(())])
def test_patterns_without_any_key_give_zeros_on_every_backend(pattern):
    q = torch.randn(70, 2, 4)
    for backend in ("auto", "blocked", "dense", "sparse", "scatter", "reference"):
        res = ops.attention(q, q, q, pattern, backend=backend, return_weights=True)
        assert res.out.abs().sum() == 0 and res.weights[1].shape == (0, 2), backend


@pytest.mark.parametrize("make", [lambda: Window(2**63), lambda: Stride(1, reach=2**63), lambda: Window(left=2**40),
                                  lambda: Random(2, seed=2**70)])
def test_reaches_past_int64_arithmetic_are_refused(make):
    with pytest.raises(ValueError, match="must be <="):
        make()
