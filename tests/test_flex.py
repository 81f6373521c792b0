"""The flex kernel (FlexAttention) equals the oracle ``ops.reference``: outputs and attention
weights, with and without score biases, on batches, virtual nodes and mask-only patterns; its
BlockMask equals torch's ``create_block_mask`` and is built once per graph; the dispatcher
picks it on CUDA only. On CPU torch's FlexAttention runs forward only (float64, no_grad); on
CUDA the same cases run compiled, in float32, with gradients."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from kernel_support import call

from graphattn import ops
from graphattn.nn import ALiBi, RelativePositionBias, SelfAttentionConv
from graphattn.ops import AttentionGraph, ScoreSpec
from graphattn.ops.flex import FLEX_BLOCK, Flex, plan_flex
from graphattn.patterns import (
    Causal,
    Expander,
    Full,
    Global,
    Grid2D,
    Pattern,
    Random,
    SelfLoops,
    Stride,
    VirtualNodes,
    Window,
    batch_dense_mask,
    bigbird,
    longformer,
)

flex_attention_kernel = call(Flex())
flex_module = pytest.importorskip("torch.nn.attention.flex_attention", reason="FlexAttention needs torch >= 2.5")


@dataclass(frozen=True)
class StrictlyEarlier(Pattern):
    """A user's mask-only pattern: ``j < i``, so query 0 of every sequence has no key."""

    def mask(self, q_idx, k_idx, n):
        return k_idx < q_idx


CASES = [
    (Window(5), [200, 0, 77, 60]),  # partial tiles only, an empty sequence, a tile across sequences
    (Full(), [200, 40]),  # full tiles
    (Causal(), [260]),  # full, partial and empty tiles
    (Window(left=9, right=0) & Causal(), [129]),
    (Stride(3), [11, 140]),
    (Global((0, -1)), [150, 106]),
    (Random(2, seed=1), [64, 70]),
    (longformer(2, (0, -1), stride=3), [140, 9]),
    (bigbird(3, (0,), 2), [200, 33]),
    (Grid2D(1, width=12), [144]),
    (VirtualNodes(1) | Expander(2) | SelfLoops(), [20, 30]),
    (StrictlyEarlier(), [5, 131]),
]


def alibi(heads: int, device, dtype):
    slopes = torch.tensor([2.0 ** -(h + 1) for h in range(heads)], dtype=dtype, device=device)
    return lambda q_idx, k_idx: -(q_idx - k_idx).abs().to(dtype)[..., None] * slopes  # (..., H)


def qkv(n: int, heads: int, channels: int, device, dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, heads, channels, generator=gen, dtype=torch.float64).to(device, dtype) for _ in range(3)]


@pytest.mark.parametrize("with_bias", [False, True], ids=["plain", "alibi"])
@pytest.mark.parametrize(("pattern", "sizes"), CASES, ids=[repr(c[0]) for c in CASES])
def test_flex_equals_reference(device, pattern, sizes, with_bias):
    """CPU: float64 forward (torch has no CPU backward). CUDA: float32, compiled, and gradients."""
    dtype, atol = (torch.float64, 1e-10) if device == "cpu" else (torch.float32, 2e-5)
    graph = AttentionGraph.build(pattern, lengths=sizes).to(device)
    heads, channels = 2, 4 if device == "cpu" else 16
    spec = ScoreSpec(scale=channels**-0.5, bias=alibi(heads, device, dtype) if with_bias else None)
    q, k, v = qkv(graph.num_nodes, heads, channels, device, dtype)
    ref = [t.double().requires_grad_() for t in (q, k, v)]
    ref_out, ref_alpha = ops.reference_attention(*ref, graph, ScoreSpec(
        scale=spec.scale, bias=alibi(heads, device, torch.float64) if with_bias else None), return_weights=True)
    for with_weights in (False, True):
        with torch.no_grad():
            out, alpha = flex_attention_kernel(q, k, v, graph, spec, return_weights=with_weights)
        torch.testing.assert_close(out.double(), ref_out.detach(), atol=atol, rtol=0)
        if with_weights:
            torch.testing.assert_close(alpha.double(), ref_alpha.detach(), atol=atol, rtol=0)
    if device != "cpu":  # gradients where FlexAttention has a backward
        inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        out, _ = flex_attention_kernel(*inputs, graph, spec)
        probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(device)
        grads = torch.autograd.grad((out * probe).sum(), inputs)
        for grad, want in zip(grads, torch.autograd.grad((ref_out * probe.double()).sum(), ref)):
            torch.testing.assert_close(grad.double(), want, atol=10 * atol, rtol=0)


def test_a_query_without_keys_gets_zeros(device):
    graph = AttentionGraph.build(StrictlyEarlier(), lengths=[3, 200]).to(device)
    q, k, v = qkv(203, 2, 16, device, torch.float32)
    with torch.no_grad():
        out, alpha = flex_attention_kernel(q, k, v, graph, ScoreSpec(scale=0.25), return_weights=True)
    assert torch.equal(out[[0, 3]], torch.zeros(2, 2, 16, device=device))  # the first query of each sequence
    assert bool(torch.isfinite(out).all()) and bool(torch.isfinite(alpha).all())
    nobody = AttentionGraph.build(StrictlyEarlier(), lengths=[1, 1]).to(device)  # no key anywhere
    with torch.no_grad():
        out, alpha = flex_attention_kernel(q[:2], k[:2], v[:2], nobody, ScoreSpec(scale=0.25), return_weights=True)
    assert torch.equal(out, torch.zeros(2, 2, 16, device=device)) and alpha.shape == (0, 2)


@pytest.mark.parametrize(("pattern", "sizes"), [(Window(5), [300, 0, 77, 150]), (Full(), [300, 40]),
                                                (bigbird(3, (0,), 2), [200, 33]), (Causal(), [129, 127])])
def test_block_mask_equals_create_block_mask(pattern, sizes):
    graph = AttentionGraph.build(pattern, lengths=sizes)
    plan = plan_flex(graph, FLEX_BLOCK)
    mine = plan.block_mask
    # the padded layout's mask from the pattern's dense mask, laid by slot (padding rows attend to nothing)
    n = plan.node.numel()
    dense = torch.zeros(n, n, dtype=torch.bool)
    dense[plan.slot[:, None], plan.slot[None, :]] = batch_dense_mask(pattern, torch.tensor(sizes))
    mask = lambda q, k: dense[q, k]  # noqa: E731
    theirs = flex_module.create_block_mask(lambda b, h, q, k: mask(q, k), 1, 1, n, n, device="cpu")
    for name in ("kv_num_blocks", "full_kv_num_blocks"):
        assert torch.equal(getattr(mine, name), getattr(theirs, name)), name
    assert torch.equal(mine.to_dense(), theirs.to_dense())
    # and the tile bits reproduce the pattern's mask on every pair
    idx = torch.arange(n)
    bits = mine.mask_mod(0, 0, idx[:, None], idx[None, :])
    assert torch.equal(bits, mask(idx[:, None], idx[None, :]))


def test_block_mask_is_built_once_per_graph_and_sparse(monkeypatch):
    import graphattn.ops.flex as flex

    calls = []
    monkeypatch.setattr(flex, "plan_flex", lambda *a: calls.append(a) or plan_flex(*a))
    graph = AttentionGraph.build(Window(128), num_nodes=1024)
    q, k, v = qkv(1024, 1, 8, "cpu", torch.float32)
    with torch.no_grad():
        for _ in range(2):
            ops.attention(q, k, v, graph, backend="flex")
    assert len(calls) == 1
    plan = graph.plan(ops.KERNELS["flex"])
    per_row = plan.block_mask.kv_num_blocks + plan.block_mask.full_kv_num_blocks  # key blocks per query block
    assert int(per_row.max()) == 3 and int(per_row.min()) == 2  # of 8: the band's own blocks only


def test_cpu_autograd_is_refused_with_its_reason_and_runs_without_grad():
    q, k, v = (t.requires_grad_() for t in qkv(20, 2, 4, "cpu", torch.float64))
    with pytest.raises(NotImplementedError, match="a backward on CPU.*torch.no_grad"):
        ops.attention(q, k, v, Window(2), backend="flex")
    assert ops.attention(q, k, v, Window(2)).kernel != "flex"  # auto never picks it on CPU
    with torch.no_grad():
        assert ops.attention(q, k, v, Window(2), backend="flex").backend == "flex"


def test_what_flex_cannot_compute_is_refused_with_its_reason():
    q, k, v = qkv(20, 2, 3, "cpu", torch.float64)
    with torch.no_grad():
        with pytest.raises(NotImplementedError, match="flex: an explicit edge_index"):
            ops.attention(q, k, v, Window(1).edge_index(20), backend="flex")
        with pytest.raises(NotImplementedError, match="flex: dropout"):
            ops.attention(q, k, v, Window(1), dropout=0.2, training=True, backend="flex")


@pytest.mark.parametrize(("edges", "n", "cuda", "cpu"), [
    (Window(128), 16384, "flex", "blocked"),
    (longformer(128, (0, 1)), 16384, "flex", "blocked"),
    (bigbird(64, (0,), 3), 16384, "flex", "blocked"),
    (Full(), 1000, "dense", "dense"),
    (Expander(4) | Window(2), 5000, None, None),  # a graph pattern: never flex
])
def test_auto_prefers_flex_on_cuda_for_sequence_patterns_only(edges, n, cuda, cpu):
    on_cuda = ops.choose_backend(edges, device="cuda", num_nodes=n)
    on_cpu = ops.choose_backend(edges, device="cpu", num_nodes=n)
    if cuda is None:
        assert "flex" not in (on_cuda, on_cpu)
    else:
        assert (on_cuda, on_cpu) == (cuda, cpu)
    training = ScoreSpec(scale=1.0, dropout=0.1, training=True)
    assert ops.choose_backend(edges, training, device="cuda", num_nodes=n) != "flex"  # flex has no dropout


@pytest.mark.parametrize("position", [ALiBi(2), RelativePositionBias(2, num_buckets=8, max_distance=16)], ids=repr)
def test_layer_with_score_encodings_equals_reference(device, position):
    """Score encodings as ``score_mod`` inside the fused kernel, through the layer."""
    torch.manual_seed(0)
    dtype = torch.float64 if device == "cpu" else torch.float32
    layer = SelfAttentionConv(32, 32, heads=2, position=position).to(device, dtype)
    x = torch.randn(300, 32, device=device, dtype=dtype)
    lengths = torch.tensor([180, 120])
    layer.backend = "reference"
    want = layer(x, longformer(6, (0,)), lengths=lengths)
    layer.backend = "flex"
    with torch.no_grad():
        got = layer(x, longformer(6, (0,)), lengths=lengths)
    torch.testing.assert_close(got, want.detach(), atol=1e-10 if device == "cpu" else 1e-4, rtol=0)
