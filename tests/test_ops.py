"""Kernels: every kernel equals the dense float64 oracle ``reference`` (outputs, weights,
gradients), and attention is invariant to edge order and equivariant to node relabelling."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphattn import ops
from graphattn.ops import AttentionGraph, ScoreSpec, reference_attention
from graphattn.patterns import (
    Causal,
    Expander,
    Full,
    Global,
    Random,
    SelfLoops,
    Stride,
    VirtualNodes,
    Window,
    batch_edge_index,
    bigbird,
    longformer,
)

#: Every registered fast kernel is pinned to the oracle (contract "same weights, same answer", docs/architecture.md).
KERNELS = [name for name in ops.KERNELS if name != "reference"]
#: The largest |kernel - reference| seen in this module (float64), for the report.
MAX_ERR = {"vs_reference_f64": 0.0}

PATTERNS = [
    Full(), Window(2), Window(left=3, right=0), Causal(), Stride(3), Stride(2, reach=4), Global((0, -1)),
    Random(2, seed=1), longformer(1, [0]), longformer(1, [0, -1], stride=3), bigbird(1, [0], 2, seed=3),
    Window(2) & Causal(), VirtualNodes(1) | Expander(2) | SelfLoops(),
]


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-10) -> None:
    err = float((actual - expected).detach().abs().max()) if actual.numel() else 0.0
    MAX_ERR["vs_reference_f64"] = max(MAX_ERR["vs_reference_f64"], err)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def qkv(n: int, heads: int = 2, channels: int = 3, seed: int = 0, grad: bool = False, device: str = "cpu"):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, heads, channels, generator=gen, dtype=torch.float64).to(device).requires_grad_(grad)
            for _ in range(3)]


def run(backend: str, *args, **kwargs) -> ops.AttentionOutput:
    """``ops.attention``, skipping (visibly) where a kernel declares a case unsupported."""
    try:
        return ops.attention(*args, backend=backend, return_weights=True, **kwargs)
    except NotImplementedError as err:
        pytest.skip(f"{backend}: {err}")


def messy_graph(n: int, seed: int = 0) -> torch.Tensor:
    """Random edges, then a copy of the first four (duplicates) and two self-loops at the end;
    node ``n - 1`` has no in-edges (an isolated query)."""
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(n, (2, 3 * n), generator=gen)
    ei = ei[:, ei[1] != n - 1]
    return torch.cat([ei, ei[:, :4], torch.tensor([[1, 2], [1, 2]])], dim=1)


def unique_graph(n: int, seed: int = 0) -> torch.Tensor:
    """``messy_graph`` without duplicates (edge features need one edge per pair), shuffled."""
    ei = messy_graph(n, seed)
    code = torch.unique(ei[1] * n + ei[0])
    order = torch.randperm(code.numel(), generator=torch.Generator().manual_seed(seed))
    return torch.stack([code % n, code // n])[:, order]


def alibi(heads: int):
    slopes = torch.tensor([2.0 ** -(h + 1) for h in range(heads)], dtype=torch.float64)
    return lambda q_idx, k_idx: -(q_idx - k_idx).abs().to(torch.float64)[..., None] * slopes.to(q_idx.device)  # (..., H)


def assert_matches_reference(backend, q, k, v, edges, **kwargs):
    res = run(backend, q, k, v, edges, **kwargs)
    ref = ops.attention(q, k, v, edges, backend="reference", return_weights=True, **kwargs)
    # a forced kernel runs itself or raises (run() skips then): it is never swapped
    assert res.kernel == backend or res.backend == backend in ops.GROUPS
    close(res.out, ref.out)
    assert torch.equal(res.weights[0].cpu(), ref.weights[0].cpu())
    close(res.weights[1], ref.weights[1])
    return res, ref


# 1. every kernel equals the reference ---------------------------------------------------------


@pytest.mark.parametrize("backend", KERNELS)
@pytest.mark.parametrize("pattern", PATTERNS, ids=repr)
def test_kernel_equals_reference_on_patterns(device, backend, pattern):
    n = 11
    q, k, v = qkv(n, device=device)
    res, _ = assert_matches_reference(backend, q, k, v, pattern)
    assert torch.equal(res.weights[0].cpu(), pattern.edge_index(n))


@pytest.mark.parametrize("backend", KERNELS)
def test_kernel_equals_reference_on_batches(device, backend):
    sizes = torch.tensor([5, 0, 1, 8])
    q, k, v = qkv(14, device=device)
    for pattern in (Full(), Window(1), bigbird(1, [0], 1), Causal() | Global((-1,))):
        res, _ = assert_matches_reference(backend, q, k, v, pattern, sizes=sizes)
        assert torch.equal(res.weights[0].cpu(), batch_edge_index(pattern, sizes))
        # the pattern and its edge_index are the same graph
        close(run(backend, q, k, v, res.weights[0]).out, res.out)


@pytest.mark.parametrize("backend", KERNELS)
@pytest.mark.parametrize("score", ["dot", "additive"])
def test_kernel_equals_reference_on_messy_edge_index(device, backend, score):
    """Duplicates (each copy a message), self-loops, an isolated query, arbitrary edge order."""
    n, heads, channels = 9, 3, 4
    q, k, v = qkv(n, heads, channels, device=device)
    att = torch.randn(heads, channels, dtype=torch.float64).to(device) if score == "additive" else None
    ei = messy_graph(n).to(device)
    res, _ = assert_matches_reference(backend, q, k, v, ei, score=score, att=att)
    assert torch.equal(res.out[n - 1], torch.zeros(heads, channels, dtype=torch.float64, device=device))
    # a doubled edge weighs as two messages: its weight equals its twin's
    first, twin = 0, ei.size(1) - 6  # ei[:, :4] was appended before the two self-loops
    assert torch.equal(ei[:, first], ei[:, twin])
    close(res.weights[1][first], res.weights[1][twin])


@pytest.mark.parametrize("backend", KERNELS)
def test_kernel_equals_reference_with_bias_scale_and_edge_features(backend):
    n, heads, channels = 8, 2, 3
    q, k, v = qkv(n, heads, channels)
    ei = unique_graph(n)
    edge_kv = torch.randn(ei.size(1), heads, channels, dtype=torch.float64)
    att = torch.randn(heads, channels, dtype=torch.float64)
    assert_matches_reference(backend, q, k, v, ei, bias=alibi(heads))
    assert_matches_reference(backend, q, k, v, ei, scale=0.37)
    assert_matches_reference(backend, q, k, v, ei, edge_kv=edge_kv)
    assert_matches_reference(backend, q, k, v, ei, edge_kv=edge_kv, bias=alibi(heads), score="additive", att=att)
    assert_matches_reference(backend, q, k, v, Window(2) | Global((0,)), bias=alibi(heads))


def test_reference_by_hand():
    """The oracle itself, on a case small enough to compute by hand."""
    q = torch.tensor([[[1.0]], [[0.0]], [[2.0]]], dtype=torch.float64)  # (N=3, H=1, C=1)
    k = torch.tensor([[[0.0]], [[1.0]], [[-1.0]]], dtype=torch.float64)
    v = torch.tensor([[[10.0]], [[20.0]], [[30.0]]], dtype=torch.float64)
    ei = torch.tensor([[0, 1, 1], [0, 0, 1]])  # query 0 <- keys 0, 1; query 1 <- key 1; query 2 isolated
    out, alpha = reference_attention(q, k, v, AttentionGraph.build(ei, 3), ScoreSpec(scale=1.0),
                                     return_weights=True)
    a = torch.softmax(torch.tensor([0.0, 1.0], dtype=torch.float64), 0)
    torch.testing.assert_close(alpha[:, 0], torch.cat([a, torch.ones(1, dtype=torch.float64)]))
    want = torch.stack([10 * a[0] + 20 * a[1], torch.tensor(20.0).double(), torch.tensor(0.0).double()])
    torch.testing.assert_close(out[:, 0, 0], want)
    counts = AttentionGraph.build(torch.tensor([[1, 1, 0], [0, 0, 2]]), 3).plan(ops.KERNELS["reference"])
    assert counts.tolist() == [[0, 2, 0], [0, 0, 0], [1, 0, 0]]


# 2. gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["reference", *KERNELS])
@pytest.mark.parametrize("case", ["pattern", "messy", "additive", "bias", "edge_kv"])
def test_gradcheck(backend, case):
    n, heads, channels = 5, 2, 2
    q, k, v = qkv(n, heads, channels, grad=True)
    ei = messy_graph(n, seed=1)
    extra: dict = {}
    inputs = [q, k, v]
    if case == "pattern":
        ei = longformer(1, [-1])
    elif case == "additive":
        extra["att"] = torch.randn(heads, channels, dtype=torch.float64, requires_grad=True)
        inputs.append(extra["att"])
    elif case == "bias":
        table = torch.randn(n, n, heads, dtype=torch.float64, requires_grad=True)
        inputs.append(table)
    elif case == "edge_kv":
        ei = unique_graph(n, seed=1)
        inputs.append(torch.randn(ei.size(1), heads, channels, dtype=torch.float64, requires_grad=True))

    def fn(*tensors):
        kwargs = {}
        if case == "additive":
            kwargs = {"score": "additive", "att": tensors[3]}
        elif case == "bias":
            kwargs = {"bias": lambda qi, kj: tensors[3][qi, kj]}
        elif case == "edge_kv":
            kwargs = {"edge_kv": tensors[3]}
        res = run(backend, *tensors[:3], ei, **kwargs)
        return res.out, res.weights[1]

    # fast_mode (random projections) where a kernel's tiny-input overhead makes full mode slow;
    # the gradients are also compared with the oracle's below
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=backend not in ("reference", "scatter"))
    if backend != "reference":  # and the same gradients as the oracle
        def ref(*tensors):
            return ops.attention(*tensors[:3], ei, backend="reference", **(
                {"score": "additive", "att": tensors[3]} if case == "additive" else
                {"bias": lambda qi, kj: tensors[3][qi, kj]} if case == "bias" else
                {"edge_kv": tensors[3]} if case == "edge_kv" else {})).out
        w = torch.randn(n, heads, channels, dtype=torch.float64)
        for got, want in zip(torch.autograd.grad((fn(*inputs)[0] * w).sum(), inputs),
                             torch.autograd.grad((ref(*inputs) * w).sum(), inputs)):
            close(got, want)


# 3. invariances, property tests over random graphs -------------------------------------------


@st.composite
def graphs(draw):
    """A random multigraph: isolated nodes, self-loops, duplicate edges, any edge order."""
    n = draw(st.integers(1, 10))
    num_edges = draw(st.integers(0, 30))
    src = draw(st.lists(st.integers(0, n - 1), min_size=num_edges, max_size=num_edges))
    dst = draw(st.lists(st.integers(0, n - 1), min_size=num_edges, max_size=num_edges))
    heads, channels = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    return n, torch.tensor([src, dst], dtype=torch.long).view(2, num_edges), heads, channels, seed


@pytest.mark.parametrize("backend", ops.KERNELS)
@settings(max_examples=25, deadline=None)
@given(graph=graphs(), data=st.data())
def test_edge_order_and_node_ids_do_not_matter(backend, graph, data):
    n, ei, heads, channels, seed = graph
    q, k, v = qkv(n, heads, channels, seed=seed)
    base = run(backend, q, k, v, ei)
    alpha = base.weights[1]
    # weights of each query sum to 1 (0 for a query without in-edges)
    totals = torch.zeros(n, heads, dtype=torch.float64).index_add_(0, ei[1], alpha)
    has_edges = torch.bincount(ei[1], minlength=n) > 0
    close(totals, has_edges[:, None].double().expand(n, heads))
    assert torch.equal(base.out[~has_edges], torch.zeros_like(base.out[~has_edges]))
    assert bool((alpha >= 0).all())
    if backend != "reference":
        ref = ops.attention(q, k, v, ei, backend="reference", return_weights=True)
        close(base.out, ref.out)
        close(alpha, ref.weights[1])
    # shuffling the columns of edge_index: same output, weights permuted along
    perm = torch.tensor(data.draw(st.permutations(range(ei.size(1)))), dtype=torch.long)
    shuffled = run(backend, q, k, v, ei[:, perm])
    close(shuffled.out, base.out)
    close(shuffled.weights[1], alpha[perm])
    # relabelling nodes: new node a is old node relabel[a]; the output is permuted likewise
    relabel = torch.tensor(data.draw(st.permutations(range(n))), dtype=torch.long)
    new_id = torch.empty_like(relabel)
    new_id[relabel] = torch.arange(n)
    moved = run(backend, q[relabel], k[relabel], v[relabel], new_id[ei])
    close(moved.out, base.out[relabel])
    close(moved.weights[1], alpha)


@pytest.mark.parametrize("backend", ops.KERNELS)
def test_node_permutation_on_a_pattern_graph(backend):
    """A pattern's graph relabelled through a permutation gives the permuted output."""
    n = 10
    q, k, v = qkv(n)
    ei = bigbird(1, [0], 2).edge_index(n)
    base = run(backend, q, k, v, ei).out
    relabel = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    new_id = torch.empty_like(relabel)
    new_id[relabel] = torch.arange(n)
    close(run(backend, q[relabel], k[relabel], v[relabel], new_id[ei]).out, base[relabel])


# 4. the dispatcher ----------------------------------------------------------------------------


def test_dispatch_names_the_backend_and_can_be_forced():
    q, k, v = qkv(6)
    res = ops.attention(q, k, v, Window(1))
    assert res.kernel in ops.KERNELS and res.backend == ops.KERNELS[res.kernel].backend
    for name in ops.KERNELS:
        if name in ("stride", "buckets"):  # Window(1) is neither a lone stride nor buckets: the kernel says so
            with pytest.raises(NotImplementedError, match="not a lone Stride|not a graph of groups"):
                ops.attention(q, k, v, Window(1), backend=name)
            continue
        assert ops.attention(q, k, v, Window(1), backend=name).kernel == name
    assert ops.attention(q, k, v, Window(1), backend="blocked").backend == "blocked"
    assert ops.attention(q, k, v, Full(), return_weights=False).weights is None


def test_dropout_only_while_training_and_weights_before_dropout():
    q, k, v = qkv(12)
    ei = Full().edge_index(12)
    plain = ops.attention(q, k, v, Full(), return_weights=True)
    evaluated = ops.attention(q, k, v, Full(), dropout=0.5, training=False, return_weights=True)
    close(evaluated.out, plain.out)
    torch.manual_seed(0)
    trained = ops.attention(q, k, v, ei, dropout=0.5, training=True, backend="scatter", return_weights=True)
    close(trained.weights[1], plain.weights[1])
    assert not torch.allclose(trained.out, plain.out)


@pytest.mark.parametrize("call, error, words", [
    (lambda q, k, v: ops.attention(q[0], k, v, Full()), ValueError, "q must be a float tensor of shape"),
    (lambda q, k, v: ops.attention(q.long(), k, v, Full()), ValueError, "q must be a float tensor"),
    (lambda q, k, v: ops.attention(q, k[:, :, :2], v, Full()), ValueError, "q and k must have the same shape"),
    (lambda q, k, v: ops.attention(q, k, v[:3], Full()), ValueError, "v must be"),
    (lambda q, k, v: ops.attention(q, k, v, Full(), score="cosine"), ValueError, "score must be one of"),
    (lambda q, k, v: ops.attention(q, k, v, Full(), score="additive"), ValueError, "att must be"),
    (lambda q, k, v: ops.attention(q, k, v, Full(), backend="magic"), ValueError, "backend must be one of"),
    (lambda q, k, v: ops.attention(q, k, v, Full(), dropout=1.0), ValueError, "dropout"),
    (lambda q, k, v: ops.attention(q, k, v, Full(), sizes=[2, 2]), ValueError, "lengths must sum"),
    (lambda q, k, v: ops.attention(q, k, v, Full(), edge_kv=torch.zeros(36, 2, 3)), ValueError, "edge_kv"),
    (lambda q, k, v: ops.attention(q, k, v, Full().edge_index(6), edge_kv=torch.zeros(5, 2, 3)), ValueError, "edge_kv must be"),
    (lambda q, k, v: ops.attention(q, k, v, [[0], [1]]), TypeError, "edges must be a Pattern"),
    (lambda q, k, v: ops.attention(q, k, v, torch.tensor([[0], [6]])), ValueError, "edges has node id 6"),
    (lambda q, k, v: ops.attention(q, k, v, Random(7)), ValueError, "per_query=7"),
])
def test_bad_input(call, error, words):
    with pytest.raises(error, match=words):
        call(*qkv(6))


def test_empty_graph():
    q, k, v = qkv(0)
    for backend in ops.KERNELS:
        for edges in (Full(), Window(2) | Global((0,)), torch.empty(2, 0, dtype=torch.long)):
            res = run(backend, q, k, v, edges)
            assert res.out.shape == (0, 2, 3) and res.weights[1].shape == (0, 2)
    q, k, v = qkv(4)
    res = ops.attention(q, k, v, torch.empty(2, 0, dtype=torch.long), return_weights=True)
    assert torch.equal(res.out, torch.zeros(4, 2, 3, dtype=torch.float64))
