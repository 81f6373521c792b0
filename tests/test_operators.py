"""Attention operators: Linformer (low rank) and linear attention (elementwise feature maps,
Performer's positive random features) equal their dense twins in float64, Linformer with
identity compression is Full(), Performer approaches softmax attention as its features grow."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from graphattn import GraphTransformer, ops
from graphattn.models import GraphGPS
from graphattn.nn import (
    GPSConv,
    LinearAttention,
    Linformer,
    PositiveRandomFeatures,
    RelativePositionBias,
    RotaryEncoding,
    SelfAttentionConv,
    performer,
)
from graphattn.ops import AttentionGraph
from graphattn.patterns import Full, VirtualNodes, Window

SIZES = [3, 16, 1, 9]


def qkv(n: int, heads: int = 2, channels: int = 4, seed: int = 0, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    return [(scale * torch.randn(n, heads, channels, generator=gen, dtype=torch.float64)).requires_grad_()
            for _ in range(3)]


def grads(out, inputs):
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    return torch.autograd.grad((out * probe).sum(), inputs)


def make_identity(op: Linformer) -> None:
    """``E = F = I`` (after the layer's construction, which resets the modules it is given)."""
    with torch.no_grad():
        op.key_mix.copy_(torch.eye(op.rank, op.max_length))
        op.value_mix.copy_(torch.eye(op.rank, op.max_length))


# 1. Linformer -------------------------------------------------------------------------------------
def test_linformer_with_identity_compression_and_rank_n_is_full_outputs_weights_and_gradients():
    torch.manual_seed(0)
    full = SelfAttentionConv(8, 8, heads=2).double()
    low = SelfAttentionConv(8, 8, heads=2, operator=Linformer(max(SIZES), max(SIZES))).double()
    low.load_state_dict(full.state_dict(), strict=False)
    make_identity(low.operator)
    x = torch.randn(sum(SIZES), 8, dtype=torch.float64, requires_grad=True)
    graph = AttentionGraph.build(Full(), lengths=SIZES)
    want, (edges, alpha) = full(x, graph, return_attention_weights=True)
    got, (summary_edges, summary_alpha) = low(x, graph, return_attention_weights=True)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    weights = dict(low.named_parameters())
    for g, w in zip(grads(got, (x, *(weights[name] for name, _ in full.named_parameters()))),
                    grads(want, (x, *full.parameters()))):
        torch.testing.assert_close(g, w, atol=1e-12, rtol=0)
    # summary r of sequence s is node s * rank + r; with E = I it stands for node ptr[s] + r
    rank, ptr = max(SIZES), graph.layout.ptr
    as_nodes = ptr[summary_edges[0] // rank] + summary_edges[0] % rank
    assert summary_edges.size(1) == edges.size(1) == sum(s * s for s in SIZES)
    order = torch.argsort(summary_edges[1] * 1000 + as_nodes)
    assert torch.equal(torch.stack([as_nodes, summary_edges[1]])[:, order], edges)  # Full() is sorted by query, key
    torch.testing.assert_close(summary_alpha[order], alpha, atol=1e-12, rtol=0)


def test_linformer_equals_its_dense_twin_per_sequence_with_dropout_off_and_on():
    torch.manual_seed(0)
    op = Linformer(5, 20, share_kv=False).double()
    q, k, v = qkv(sum(SIZES))
    graph = AttentionGraph.build(Full(), lengths=SIZES)
    out, (edges, alpha) = op(q, k, v, graph, return_weights=True)
    start = 0
    for s, size in enumerate(SIZES):
        rows = slice(start, start + size)
        k_sum = torch.einsum("rl,lhc->rhc", op.key_mix[:, :size], k[rows])  # (rank, H, C)
        v_sum = torch.einsum("rl,lhc->rhc", op.value_mix[:, :size], v[rows])
        probs = torch.softmax(torch.einsum("ihc,rhc->ihr", q[rows], k_sum) / 2.0, dim=-1)  # sqrt(C) = 2
        torch.testing.assert_close(out[rows], torch.einsum("ihr,rhc->ihc", probs, v_sum), atol=1e-12, rtol=0)
        mine = (edges[1] >= start) & (edges[1] < start + size)
        assert torch.equal(edges[0, mine].unique(), s * 5 + torch.arange(5))
        torch.testing.assert_close(alpha[mine].view(size, 5, 2), probs.transpose(1, 2), atol=1e-12, rtol=0)
        start += size
    fused, _ = op(q, k, v, graph)
    torch.testing.assert_close(fused, out, atol=1e-12, rtol=0)
    dropped, _ = op(q, k, v, graph, dropout=0.5)
    assert not torch.allclose(dropped, out)


def test_linformer_summaries_that_mix_nothing_are_no_nodes():
    op = Linformer(4, 6).double()
    with torch.no_grad():
        op.key_mix.zero_()
        op.value_mix.zero_()
        op.key_mix[0, 0] = op.value_mix[0, 0] = 1.0  # summary 0 holds node 0; summary 1 holds node 5 only
        op.key_mix[1, 5] = op.value_mix[1, 5] = 1.0
    q, k, v = qkv(8)
    out, (edges, _) = op(q, k, v, AttentionGraph.build(Full(), lengths=[2, 6]), return_weights=True)
    assert edges[0, edges[1] < 2].unique().tolist() == [0]  # the short sequence has one summary
    assert edges[0, edges[1] >= 2].unique().tolist() == [4, 5]  # the long one two (ids 4 + r)
    torch.testing.assert_close(out[:2], v[0:1].detach().expand(2, -1, -1), atol=1e-12, rtol=0)


# 2. linear attention ------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [SIZES, [sum(SIZES)]], ids=["batch", "one sequence"])
@pytest.mark.parametrize("name, fn", [("elu", lambda x: F.elu(x) + 1), ("relu", F.relu), ("sigmoid", torch.sigmoid)])
def test_linear_attention_equals_its_dense_twin_per_sequence(name, fn, sizes):
    q, k, v = qkv(sum(sizes))
    out, weights = LinearAttention(name)(q, k, v, AttentionGraph.build(Full(), lengths=sizes))
    assert weights is None
    want, start = [], 0
    for size in sizes:
        rows = slice(start, start + size)
        kernel = torch.einsum("ihm,jhm->hij", fn(q[rows]), fn(k[rows]))  # (H, L, L): phi(q_i) . phi(k_j)
        den = kernel.sum(-1, keepdim=True)
        want.append(torch.einsum("hij,jhc->ihc", kernel / torch.where(den > 0, den, 1), v[rows]))
        start += size
    want = torch.cat(want)
    torch.testing.assert_close(out, want, atol=1e-12, rtol=0)
    for g, w in zip(grads(out, (q, k, v)), grads(want, (q, k, v))):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=0)


def test_performer_approaches_softmax_attention_as_features_grow():
    """Measured (8 seeds, float64, N = 64 in two sequences, H = 2, C = 8, q and k of std 0.5):
    mean |error| 0.038 at 16 features, 0.014 at 256, 0.0037 at 4096 (about 0.23 / sqrt(m));
    the seeds below are 4 of them. With std 1 the estimator's variance, exp(|q + k|^2 / sqrt(C))
    per feature, is far larger: 0.07 at 4096 features."""
    q, k, v = qkv(64, channels=8, scale=0.5)
    v = v / 0.5
    graph = AttentionGraph.build(Full(), lengths=[24, 40])
    softmax = ops.attention(q, k, v, graph, backend="reference").out
    errors = {}
    for features in (16, 256, 4096):
        runs = []
        for seed in range(4):
            torch.manual_seed(seed)
            runs.append((performer(features)(q, k, v, graph)[0] - softmax).abs().mean().item())
        errors[features] = sum(runs) / len(runs)
        assert max(runs) < {16: 0.07, 256: 0.025, 4096: 0.006}[features], (features, runs)
    assert errors[16] > 2 * errors[256] > 4 * errors[4096]


def test_random_features_are_kept_in_the_state_and_redrawn_on_request():
    torch.manual_seed(0)
    op = performer(32, redraw_interval=2).eval()
    q, k, v = qkv(10)
    graph = AttentionGraph.build(Full(), lengths=[10])
    first = op(q, k, v, graph)[0]
    clone = performer(32)
    clone.load_state_dict(op.state_dict())
    torch.testing.assert_close(clone(q, k, v, graph)[0], first)  # same seed, same features
    for _ in range(3):  # never while evaluating
        torch.testing.assert_close(op(q, k, v, graph)[0], first)
    op.train()
    for _ in range(2):  # two training forwards on the first draw, the third on a new one
        torch.testing.assert_close(op(q, k, v, graph)[0], first)
    assert not torch.allclose(op(q, k, v, graph)[0], first)
    copies = [copy.deepcopy(op) for _ in range(2)]
    for c in copies:
        c.reset_parameters()
    assert copies[0].feature_map.seed != copies[1].feature_map.seed


# 3. batches, layers, models, errors -----------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: Linformer(4, 16), lambda: LinearAttention("elu"), lambda: performer(16)],
                         ids=["linformer", "linear", "performer"])
def test_each_sequence_of_a_batch_is_attended_as_if_alone(make):
    torch.manual_seed(0)
    op = make().double()
    q, k, v = qkv(sum(SIZES))
    batched = op(q, k, v, AttentionGraph.build(Full(), lengths=SIZES))[0]
    start = 0
    for size in SIZES:
        rows = slice(start, start + size)
        alone = op(q[rows], k[rows], v[rows], AttentionGraph.build(Full(), lengths=[size]))[0]
        torch.testing.assert_close(batched[rows], alone, atol=1e-12, rtol=0)
        start += size


def test_operators_in_models_each_layer_owns_its_copy_and_learns():
    torch.manual_seed(0)
    model = GraphTransformer(6, 16, 3, num_layers=2, heads=2, pattern=Full(), operator=Linformer(4, 32))
    mixes = [block.attn.operator.key_mix for block in model.blocks]
    assert mixes[0] is not mixes[1] and not torch.equal(mixes[0], mixes[1])
    x, batch = torch.randn(30, 6), torch.tensor([0] * 12 + [1] * 18)
    model(x, batch=batch).square().sum().backward()
    assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in mixes)
    gps = GraphGPS(6, 16, 3, num_layers=2, heads=2, operator=performer(16))
    edge_index = torch.tensor([[0, 1, 2, 13], [1, 2, 3, 14]])
    assert gps(x, edge_index, batch=batch).shape == (2, 3)
    with_virtual = GraphTransformer(6, 16, 3, heads=2, pattern=VirtualNodes(2) | Full(), operator=LinearAttention())
    assert with_virtual(x, batch=batch).shape == (30, 3)
    rotary = GraphTransformer(6, 16, 3, heads=2, pattern=Full(), operator=performer(8), position=RotaryEncoding(8))
    assert rotary(x, batch=batch).shape == (30, 3)
    assert GPSConv(16, None, 2, operator=LinearAttention())(torch.randn(5, 16), None).shape == (5, 16)


@pytest.mark.parametrize("call, error, match", [
    (lambda: SelfAttentionConv(8, 8, 2, operator=performer(8))(torch.randn(4, 8), Full(), return_attention_weights=True),
     ValueError, "kernelised attention has no per-edge weights"),
    (lambda: SelfAttentionConv(8, 8, 2, operator=LinearAttention(), dropout=0.1), ValueError, "no attention weights to drop"),
    (lambda: SelfAttentionConv(8, 8, 2, operator=Linformer(2, 8), score="additive"), ValueError, "score must be 'dot'"),
    (lambda: SelfAttentionConv(8, 8, 2, operator=Linformer(2, 8), edge_dim=3), ValueError, "edge_dim must be None"),
    (lambda: SelfAttentionConv(8, 8, 2, operator="performer"), TypeError, "operator must be an nn.Module"),
    (lambda: SelfAttentionConv(8, 8, 2, operator=Linformer(2, 8))(torch.randn(4, 8), Window(1)),
     ValueError, "edges must be Full"),
    (lambda: SelfAttentionConv(8, 8, 2, operator=LinearAttention())(torch.randn(4, 8), torch.tensor([[0], [1]])),
     ValueError, "edges must be Full"),
    (lambda: SelfAttentionConv(8, 8, 2, operator=Linformer(2, 8))(torch.randn(9, 8), Full()),
     ValueError, "a sequence has 9 nodes but Linformer\\(max_length=8\\)"),
    (lambda: SelfAttentionConv(8, 8, 2, operator=LinearAttention(), position=RelativePositionBias(2, 4))(
        torch.randn(4, 8), Full()), ValueError, "no scores to add a position bias"),
    (lambda: SelfAttentionConv(8, 8, 2, operator=LinearAttention())((torch.randn(4, 8), torch.randn(2, 8)),
                                                                     torch.tensor([[0], [1]])), ValueError, "operator"),
    (lambda: LinearAttention("tanh"), ValueError, "feature_map must be one of"),
    (lambda: Linformer(0, 8), ValueError, "rank"),
    (lambda: PositiveRandomFeatures(16, redraw_interval=0), ValueError, "redraw_interval"),
])
def test_bad_operator_use_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
