"""SelfAttentionConv: equals torch.nn.MultiheadAttention with copied weights, equals the
float64 oracle on every pattern and backend (outputs and gradients), and rejects bad input."""

from __future__ import annotations

import pytest
import torch
from kernel_support import SWEPT_BACKENDS
from torch import nn
from torch.func import functional_call
from torch_geometric.utils import to_dense_adj

from graphattn.nn import SelfAttentionConv
from graphattn.patterns import (
    Causal,
    Expander,
    Full,
    Global,
    GraphEdges,
    Random,
    SelfLoops,
    Stride,
    VirtualNodes,
    Window,
    bigbird,
    longformer,
)

#: Every backend the layer can be asked for, except the oracle it is checked against.
BACKENDS = [name for name in SWEPT_BACKENDS if name != "reference"]
#: Largest absolute errors seen in this module, for the report.
MAX_ERR = {"vs_mha_f32": 0.0, "vs_reference_f64": 0.0}


def close(actual, expected, *, atol: float, key: str) -> None:
    err = float((actual - expected).detach().abs().max()) if actual.numel() else 0.0
    MAX_ERR[key] = max(MAX_ERR[key], err)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def dense_weights(weights: tuple[torch.Tensor, torch.Tensor], n: int) -> torch.Tensor:
    """``(edge_index, alpha [E, H])`` -> ``[H, n_query, n_key]`` (duplicate edges summed)."""
    edge_index, alpha = weights
    return to_dense_adj(edge_index, edge_attr=alpha, max_num_nodes=n)[0].permute(2, 1, 0)  # [j, i, H] -> [H, i, j]


def mha_and_layer(embed: int, heads: int, bias: bool, seed: int = 0, backend: str = "auto"):
    torch.manual_seed(seed)
    mha = nn.MultiheadAttention(embed, heads, bias=bias, batch_first=True).eval()
    if bias:  # torch initialises these to zero; make them count
        with torch.no_grad():
            mha.in_proj_bias.normal_()
            mha.out_proj.bias.normal_()
    return mha, SelfAttentionConv.from_torch(mha, backend=backend).eval()


# 1. the dense twin: torch.nn.MultiheadAttention ----------------------------------------------


@pytest.mark.parametrize("n, embed, heads, bias", [
    (1, 8, 1, True), (7, 16, 4, True), (13, 12, 3, False), (32, 8, 8, True), (5, 6, 2, False),
])
def test_full_equals_multihead_attention(n, embed, heads, bias):
    mha, layer = mha_and_layer(embed, heads, bias)
    x = torch.randn(1, n, embed)
    with torch.no_grad():
        want, want_w = mha(x, x, x, need_weights=True, average_attn_weights=False)  # (1, n, E), (1, H, n, n)
        _, want_avg = mha(x, x, x, need_weights=True, average_attn_weights=True)  # (1, n, n)
        got, got_w = layer(x[0], Full(), return_attention_weights=True)
    close(got, want[0], atol=1e-5, key="vs_mha_f32")
    dense = dense_weights(got_w, n)
    close(dense, want_w[0], atol=1e-5, key="vs_mha_f32")
    close(dense.mean(0), want_avg[0], atol=1e-5, key="vs_mha_f32")


def test_padded_batch_equals_multihead_attention_with_key_padding_mask():
    embed, heads, lengths = 12, 3, [5, 1, 3, 5]
    mha, layer = mha_and_layer(embed, heads, True, seed=1)
    seqs = [torch.randn(length, embed) for length in lengths]
    padded = torch.randn(len(lengths), max(lengths), embed)  # padding holds garbage on purpose
    pad = torch.ones(len(lengths), max(lengths), dtype=torch.bool)  # True = ignore this key
    for b, s in enumerate(seqs):
        padded[b, : len(s)] = s
        pad[b, : len(s)] = False
    with torch.no_grad():
        want, want_w = mha(padded, padded, padded, key_padding_mask=pad, average_attn_weights=False)
        x = torch.cat(seqs)
        got, got_w = layer(x, Full(), lengths=torch.tensor(lengths), return_attention_weights=True)
        batch = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
        close(layer(x, Full(), batch=batch), got, atol=1e-6, key="vs_mha_f32")
    dense, start = dense_weights(got_w, x.size(0)), 0
    for b, length in enumerate(lengths):
        close(got[start : start + length], want[b, :length], atol=1e-5, key="vs_mha_f32")
        block = dense[:, start : start + length]
        close(block[:, :, start : start + length], want_w[b, :, :length, :length], atol=1e-5, key="vs_mha_f32")
        assert float(block.sum()) == pytest.approx(heads * length)  # no weight leaks to other sequences
        start += length


@pytest.mark.parametrize("pattern", [Causal(), Window(1), Window(left=2, right=0), longformer(1, [0]),
                                     bigbird(1, [-1], 2, seed=4), Stride(3) & Causal()], ids=repr)
def test_pattern_equals_multihead_attention_with_attn_mask(pattern):
    """Any pattern (every query with a key) is MHA with ``attn_mask = ~pattern.dense_mask(n)``."""
    n, embed, heads = 11, 16, 4
    mha, layer = mha_and_layer(embed, heads, True, seed=2)
    x = torch.randn(1, n, embed)
    attn_mask = ~pattern.dense_mask(n)  # True = not allowed, as MHA takes it
    if isinstance(pattern, Causal):
        assert torch.equal(attn_mask, torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1))
    with torch.no_grad():
        want, want_w = mha(x, x, x, attn_mask=attn_mask, average_attn_weights=False)
        got, got_w = layer(x[0], pattern, return_attention_weights=True)
    close(got, want[0], atol=1e-5, key="vs_mha_f32")
    close(dense_weights(got_w, n), want_w[0], atol=1e-5, key="vs_mha_f32")


def test_from_torch_rejects_what_it_cannot_copy():
    with pytest.raises(TypeError, match="mha must be a torch.nn.MultiheadAttention"):
        SelfAttentionConv.from_torch(nn.Linear(4, 4))
    with pytest.raises(ValueError, match="kdim and vdim"):
        SelfAttentionConv.from_torch(nn.MultiheadAttention(4, 2, kdim=3, vdim=3))
    with pytest.raises(ValueError, match="add_bias_kv"):
        SelfAttentionConv.from_torch(nn.MultiheadAttention(4, 2, add_bias_kv=True))


# 2. the oracle: ops.reference in float64, outputs and gradients -------------------------------


def graph_edges(n: int) -> torch.Tensor:
    """Random edges with a duplicate, a self-loop and an isolated query (node 0)."""
    ei = torch.randint(n, (2, 3 * n), generator=torch.Generator().manual_seed(n))
    ei = ei[:, ei[1] != 0]
    return torch.cat([ei, ei[:, :1], torch.tensor([[2], [2]])], dim=1)


CASES = {
    "full": (Full(), {}),
    "window": (Window(2), {}),
    "window_causal": (Window(left=3, right=0), {}),
    "causal": (Causal(), {}),
    "stride": (Stride(2, reach=4), {}),
    "global": (Global((0, -1)), {}),
    "random": (Random(2, seed=1), {}),
    "longformer_stride": (longformer(1, [0], stride=3), {}),
    "bigbird": (bigbird(1, [0], 2), {}),
    "batch": (bigbird(1, [0], 1) | Causal(), {"lengths": torch.tensor([4, 0, 1, 7])}),
    "batch_full": (Full(), {"batch": torch.tensor([0] * 5 + [1] * 7)}),
    "exphormer": (GraphEdges(graph_edges(11), num_nodes=11) | SelfLoops() | VirtualNodes(1) | Expander(2), {}),
    "edge_index": (graph_edges(12), {}),
}


def forced(layer, *args, **kwargs):
    """``layer(*args, **kwargs)``, skipping the test where its forced backend says it cannot run the case."""
    try:
        return layer(*args, **kwargs)
    except NotImplementedError as err:
        pytest.skip(f"{layer.backend}: {err}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("score", ["dot", "additive"])
def test_layer_equals_reference(case, backend, score):
    edges, kwargs = CASES[case]
    torch.manual_seed(0)
    layer = SelfAttentionConv(6, 8, heads=2, score=score, backend=backend).double()
    oracle = SelfAttentionConv(6, 8, heads=2, score=score, backend="reference").double()
    oracle.load_state_dict(layer.state_dict())
    x = torch.randn(12, 6, dtype=torch.float64, requires_grad=True)
    got, got_w = forced(layer, x, edges, return_attention_weights=True, **kwargs)
    want, want_w = oracle(x, edges, return_attention_weights=True, **kwargs)
    close(got, want, atol=1e-10, key="vs_reference_f64")
    assert torch.equal(got_w[0], want_w[0])
    close(got_w[1], want_w[1], atol=1e-10, key="vs_reference_f64")
    w = torch.randn_like(got)
    grads = torch.autograd.grad((got * w).sum(), [x, *layer.parameters()])
    oracle_grads = torch.autograd.grad((want * w).sum(), [x, *oracle.parameters()])
    for g, o in zip(grads, oracle_grads):
        close(g, o, atol=1e-10, key="vs_reference_f64")


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_with_edge_features_equals_reference(backend):
    n = 9
    ei = graph_edges(n)
    ei = torch.stack([torch.unique(ei[1] * n + ei[0]) % n, torch.unique(ei[1] * n + ei[0]) // n])  # no duplicates
    edge_attr = torch.randn(ei.size(1), 3, dtype=torch.float64)
    torch.manual_seed(1)
    layer = SelfAttentionConv(5, 6, heads=3, edge_dim=3, backend=backend).double()
    oracle = SelfAttentionConv(5, 6, heads=3, edge_dim=3, backend="reference").double()
    oracle.load_state_dict(layer.state_dict())
    x = torch.randn(n, 5, dtype=torch.float64, requires_grad=True)
    got, want = forced(layer, x, ei, edge_attr=edge_attr), oracle(x, ei, edge_attr=edge_attr)
    close(got, want, atol=1e-10, key="vs_reference_f64")
    for g, o in zip(torch.autograd.grad(got.sum(), [x, *layer.parameters()]),
                    torch.autograd.grad(want.sum(), [x, *oracle.parameters()])):
        close(g, o, atol=1e-10, key="vs_reference_f64")


@pytest.mark.parametrize("backend", SWEPT_BACKENDS)
def test_gradcheck_tiny_layer(backend):
    torch.manual_seed(0)
    layer = SelfAttentionConv(3, 4, heads=2, backend=backend).double()
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    ei = torch.tensor([[0, 1, 1, 1, 3, 4, 2], [1, 1, 2, 2, 3, 3, 4]])  # query 0 isolated, (1, 2) doubled

    def fn(x, *p):
        return functional_call(layer, dict(zip(names, p)), (x, ei))

    forced(layer, x, ei)
    assert torch.autograd.gradcheck(fn, (x, *params))
    assert torch.autograd.gradcheck(lambda x: layer(x, longformer(1, [-1])), (x,))


@pytest.mark.parametrize("backend", SWEPT_BACKENDS)
def test_isolated_query_outputs_the_output_bias_without_nan(backend):
    layer = SelfAttentionConv(4, 4, heads=2, backend=backend)
    x = torch.randn(4, 4, requires_grad=True)
    ei = torch.tensor([[0, 1, 2], [1, 2, 3]])  # node 0 has no in-neighbour
    out, (_, alpha) = forced(layer, x, ei, return_attention_weights=True)
    assert torch.equal(out[0], layer.lin_out.bias)
    assert not out.isnan().any() and not alpha.isnan().any()
    out.sum().backward()
    assert not x.grad.isnan().any()
    assert all(not p.grad.isnan().any() for p in layer.parameters())


@pytest.mark.parametrize("backend", SWEPT_BACKENDS)
def test_empty_graph(backend):
    layer = SelfAttentionConv(4, 6, heads=3, backend=backend)
    x = torch.randn(0, 4)
    for edges in (Full(), Window(2), longformer(1, [0]), torch.empty(2, 0, dtype=torch.long)):
        try:
            out, (ei, alpha) = layer(x, edges, return_attention_weights=True)
        except NotImplementedError:  # a forced kernel that cannot run this graph says so
            continue
        assert out.shape == (0, 6) and ei.shape == (2, 0) and alpha.shape == (0, 3)


def test_dropout_only_in_training():
    layer = SelfAttentionConv(4, 4, heads=2, dropout=0.5)
    x = torch.randn(10, 4)
    layer.eval()
    assert torch.equal(layer(x, Full()), layer(x, Full()))
    layer.train()
    torch.manual_seed(0)
    assert not torch.allclose(layer(x, Full()), layer.eval()(x, Full()))


# 3. projections: shared, none, no W_o; sparse inputs ----------------------------------------


def test_shared_projection_equals_separate_projections_with_one_matrix():
    torch.manual_seed(0)
    shared = SelfAttentionConv(6, 8, heads=2, projection="shared").double()
    separate = SelfAttentionConv(6, 8, heads=2).double()
    with torch.no_grad():
        for lin in (separate.lin_query, separate.lin_key, separate.lin_value):
            lin.load_state_dict(shared.lin_query.state_dict())
        separate.lin_out.load_state_dict(shared.lin_out.state_dict())
    x = torch.randn(12, 6, dtype=torch.float64)
    for edges in (Window(2), graph_edges(12)):
        close(shared(x, edges), separate(x, edges), atol=1e-12, key="vs_reference_f64")
    assert shared.lin_key is None and shared.lin_value is None
    assert sum(p.numel() for p in shared.parameters()) == (6 * 8 + 8) + (8 * 8 + 8)  # W and W_o


@pytest.mark.parametrize("backend", BACKENDS)
def test_projection_none_without_output_attends_with_the_input_itself(backend):
    torch.manual_seed(0)
    layer = SelfAttentionConv(8, 8, heads=2, projection="none", project_out=False, backend=backend).double()
    assert not list(layer.parameters())
    x = torch.randn(10, 8, dtype=torch.float64)
    q = x.view(10, 2, 4)
    mask = Window(1).dense_mask(10)
    scores = torch.einsum("ihc,jhc->hij", q, q) / 2.0  # sqrt(C) = 2
    alpha = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    want = torch.einsum("hij,jhc->ihc", alpha, q).reshape(10, 8)
    close(forced(layer, x, Window(1)), want, atol=1e-12, key="vs_reference_f64")


def test_project_out_false_returns_the_concatenated_heads():
    torch.manual_seed(0)
    with_out = SelfAttentionConv(6, 8, heads=2).double()
    without = SelfAttentionConv(6, 8, heads=2, project_out=False).double()
    without.load_state_dict({k: v for k, v in with_out.state_dict().items() if not k.startswith("lin_out")})
    with torch.no_grad():
        with_out.lin_out.weight.copy_(torch.eye(8))
        with_out.lin_out.bias.zero_()
    x = torch.randn(9, 6, dtype=torch.float64)
    assert without.lin_out is None
    close(without(x, Causal()), with_out(x, Causal()), atol=1e-12, key="vs_reference_f64")


@pytest.mark.parametrize("layout", ["coo", "csr"])
@pytest.mark.parametrize("projection", ["separate", "shared"])
def test_sparse_features_equal_dense_features_with_gradients(layout, projection):
    torch.manual_seed(0)
    layer = SelfAttentionConv(20, 8, heads=2, projection=projection).double()
    x = torch.randn(11, 20, dtype=torch.float64) * (torch.rand(11, 20) < 0.2)  # bag-of-words-like
    sparse = x.to_sparse() if layout == "coo" else x.to_sparse_csr()
    got, want = layer(sparse, graph_edges(11)), layer(x, graph_edges(11))
    close(got, want, atol=1e-12, key="vs_reference_f64")
    w = torch.randn_like(want)
    for g, o in zip(torch.autograd.grad((got * w).sum(), list(layer.parameters())),
                    torch.autograd.grad((want * w).sum(), list(layer.parameters()))):
        close(g, o, atol=1e-12, key="vs_reference_f64")


# 4. bad input: the right error, naming the argument ------------------------------------------


def layer_call(**overrides):
    def call():
        layer = SelfAttentionConv(4, 4, heads=2, **overrides.pop("init", {}))
        args = {"x": torch.randn(5, 4), "edges": Window(1), **overrides}
        return layer(args.pop("x"), args.pop("edges"), **args)
    return call


BAD = {
    "edge_index_shape": (layer_call(edges=torch.zeros(3, 4, dtype=torch.long)), ValueError, "edges must have shape"),
    "edge_index_1d": (layer_call(edges=torch.zeros(4, dtype=torch.long)), ValueError, "edges must have shape"),
    "edge_index_float": (layer_call(edges=torch.zeros(2, 4)), TypeError, "edges must be an integer"),
    "edge_index_negative": (layer_call(edges=torch.tensor([[0, -1], [1, 1]])), ValueError, "edges has a negative"),
    "edge_index_too_big": (layer_call(edges=torch.tensor([[0, 5], [1, 1]])), ValueError, "edges has node id 5"),
    "edges_list": (layer_call(edges=[[0], [1]]), TypeError, "edges must be"),
    "x_1d": (layer_call(x=torch.randn(4)), ValueError, "x must have shape"),
    "x_3d": (layer_call(x=torch.randn(1, 5, 4)), ValueError, "x must have shape"),
    "x_width": (layer_call(x=torch.randn(5, 3)), ValueError, r"x must have shape \[N, 4\]"),
    "x_int": (layer_call(x=torch.ones(5, 4, dtype=torch.long)), TypeError, "x must be a floating-point"),
    "x_nan": (layer_call(x=torch.tensor([[float("nan")] * 4] * 5)), ValueError, "x contains NaN"),
    "x_list": (layer_call(x=[[0.0] * 4] * 5), TypeError, "x must be a torch.Tensor"),
    "heads_divide": (lambda: SelfAttentionConv(4, 6, heads=4), ValueError, "heads"),
    "heads_zero": (lambda: SelfAttentionConv(4, 4, heads=0), ValueError, "heads must be a positive int"),
    "window_negative": (lambda: Window(-1), ValueError, "radius must be an int >= 0"),
    "window_left_negative": (lambda: Window(left=-2, right=1), ValueError, "left must be an int >= 0"),
    "window_both": (lambda: Window(2, left=1), ValueError, "radius or left/right"),
    "stride_zero": (lambda: Stride(0), ValueError, "stride must be a positive int"),
    "stride_reach": (lambda: Stride(2, reach=-1), ValueError, "reach must be an int >= 0"),
    "global_range": (layer_call(edges=Global((5,))), ValueError, "Global nodes must lie in"),
    "global_negative_range": (layer_call(edges=Global((-6,))), ValueError, "Global nodes must lie in"),
    "global_type": (lambda: Global((0.5,)), TypeError, "Global nodes must be ints"),
    "random_too_many": (layer_call(edges=Random(6)), ValueError, "per_query=6"),
    "lengths_sum": (layer_call(lengths=torch.tensor([2, 2])), ValueError, "lengths must sum to the number of nodes 5"),
    "lengths_and_batch": (layer_call(lengths=[5], batch=torch.zeros(5, dtype=torch.long)), ValueError, "batch or lengths"),
    "batch_length": (layer_call(batch=torch.zeros(4, dtype=torch.long)), ValueError, "batch must have one entry per node"),
    "score": (lambda: SelfAttentionConv(4, 4, score="cosine"), ValueError, "score must be one of"),
    "backend": (lambda: SelfAttentionConv(4, 4, backend="magic"), ValueError, "backend must be one of"),
    "dropout": (lambda: SelfAttentionConv(4, 4, dropout=1.5), ValueError, "dropout must be in"),
    "edge_attr_missing": (layer_call(init={"edge_dim": 3}, edges=torch.tensor([[0], [1]])), ValueError, "edge_attr of shape"),
    "edge_attr_shape": (layer_call(init={"edge_dim": 3}, edges=torch.tensor([[0], [1]]), edge_attr=torch.randn(2, 3)),
                        ValueError, "edge_attr must have shape"),
    "edge_attr_width": (layer_call(init={"edge_dim": 3}, edges=torch.tensor([[0], [1]]), edge_attr=torch.randn(1, 2)),
                        ValueError, "edge_attr must have shape"),
    "edge_attr_pattern": (layer_call(init={"edge_dim": 3}, edge_attr=torch.randn(13, 3)), ValueError,
                          "edge_attr needs an explicit edge_index"),
    "edge_attr_unexpected": (layer_call(edges=torch.tensor([[0], [1]]), edge_attr=torch.randn(1, 3)), ValueError, "edge_dim"),
    "projection": (lambda: SelfAttentionConv(4, 4, projection="tied"), ValueError, "projection must be one of"),
    "projection_none_width": (lambda: SelfAttentionConv(4, 8, projection="none"), ValueError, "in_channels .4. must equal"),
    "project_out_type": (lambda: SelfAttentionConv(4, 4, project_out=1), TypeError, "project_out must be a bool"),
    "x_sparse_none": (layer_call(init={"projection": "none"}, x=torch.eye(5, 4).to_sparse()), ValueError, "sparse x needs"),
    "x_sparse_nan": (layer_call(x=torch.eye(5, 4).mul(float("nan")).to_sparse_csr()), ValueError, "x contains NaN"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_raises_naming_the_argument(case):
    call, error, words = BAD[case]
    with pytest.raises(error, match=words):
        call()


# 5. torch.compile ----------------------------------------------------------------------------


@pytest.mark.slow  # 30-90 s of compilation on two CPU cores
def test_compiled_layer_equals_eager():
    torch.manual_seed(0)
    layer = SelfAttentionConv(8, 8, heads=2).eval()
    compiled = torch.compile(layer)
    x = torch.randn(6, 8)
    with torch.no_grad():
        for edges in (Full(), Window(1)):
            torch.testing.assert_close(compiled(x, edges), layer(x, edges), atol=1e-5, rtol=0)
