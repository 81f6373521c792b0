"""Half precision is a first-class dtype: float16 / bfloat16 inputs give the float32 answer (on the
same rounded inputs) to half-precision tolerance on every kernel, in the inputs' dtype; positions
and distances never round in the model's dtype; a bias of another dtype is cast, never upcasts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_support import SWEPT_KERNELS

from graphattn import AttentionGraph, ops
from graphattn.nn import ALiBi, RelativePositionBias, RotaryEncoding
from graphattn.patterns import Full, Pattern, Stride, Window, bigbird, longformer

SETTINGS = settings(max_examples=40, deadline=None)
HALF = [torch.float16, torch.bfloat16]


class EvenBand(Pattern):
    def mask(self, q_idx, k_idx, n):
        d = k_idx - q_idx
        return (d.abs() <= 5) & (d % 2 == 0)


PATTERNS = {"full": Full(), "window": Window(4), "stride": Stride(3), "longformer": longformer(3, (0,)),
            "bigbird": bigbird(2, (0,), 2), "tiles": EvenBand()}


def tolerance(dtype: torch.dtype, ref: torch.Tensor) -> float:
    """A few units in the last place of the largest value: what rounding the output alone costs."""
    return 4 * torch.finfo(dtype).eps * max(float(ref.abs().max()), 1.0)


@SETTINGS
@given(dtype=st.sampled_from(HALF), name=st.sampled_from(sorted(PATTERNS) + ["edges"]),
       lengths=st.lists(st.integers(3, 90), min_size=1, max_size=3), spread=st.sampled_from([1.0, 4.0]),
       with_bias=st.booleans(), seed=st.integers(0, 999))
def test_half_inputs_give_the_float32_answer_on_every_kernel(dtype, name, lengths, spread, with_bias, seed):
    n, heads = sum(lengths), 2
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n, heads, 8, generator=gen).mul(spread).to(dtype) for _ in range(3))
    if name == "edges":
        edges, sizes = torch.randint(n, (2, 4 * n), generator=gen), None
    else:
        edges, sizes = PATTERNS[name], torch.tensor(lengths)
    slopes = torch.tensor([0.5, 0.25], dtype=torch.float64)  # a float64 bias: cast, never upcasting the output
    bias = (lambda i, j: -(i - j).abs().double()[..., None] * slopes) if with_bias else None
    ref = ops.attention(q.double(), k.double(), v.double(), edges, sizes=sizes, bias=bias, backend="reference",
                        return_weights=True)
    for backend in SWEPT_KERNELS:
        try:
            got = ops.attention(q, k, v, edges, sizes=sizes, bias=bias, backend=backend, return_weights=True)
        except NotImplementedError:
            continue
        assert got.out.dtype == dtype and got.weights[1].dtype == dtype, backend
        torch.testing.assert_close(got.out.double(), ref.out, atol=tolerance(dtype, ref.out), rtol=0, msg=backend)
        torch.testing.assert_close(got.weights[1].double(), ref.weights[1], atol=tolerance(dtype, ref.weights[1]),
                                   rtol=0, msg=backend)


@pytest.mark.parametrize("dtype", HALF)
def test_half_gradients_are_the_float32_gradients(dtype):
    n = 200
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(n, 2, 8, generator=gen).to(dtype) for _ in range(3)]
    for edges in (Window(3), Full(), torch.randint(n, (2, 800), generator=gen)):
        ref = [t.double().requires_grad_() for t in base]
        want = torch.autograd.grad(ops.attention(*ref, edges, backend="reference").out.square().sum(), ref)
        inputs = [t.clone().requires_grad_() for t in base]
        got = torch.autograd.grad(ops.attention(*inputs, edges).out.float().square().sum(), inputs)
        for g, w in zip(got, want):
            assert g.dtype == dtype
            torch.testing.assert_close(g.double(), w, atol=8 * tolerance(dtype, w), rtol=0)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("encoding", [lambda: ALiBi(2), lambda: RelativePositionBias(2, max_distance=1000),
                                      lambda: RotaryEncoding(8)], ids=["alibi", "t5", "rope"])
def test_positions_past_256_keep_their_distances_in_a_half_precision_model(dtype, encoding):
    """bfloat16 has 8 significant bits: 300 and 301 are one number there. Distances must not be."""
    enc = encoding()
    for p in enc.parameters():
        torch.nn.init.normal_(p)
    pos = torch.arange(600)
    graph = AttentionGraph.build(Full(), 600)
    q = torch.randn(600, 2, 8)
    rounded = q.to(dtype)
    half_q, half_k, half_bias = enc.prepare(graph)(rounded, rounded)
    full_q, full_k, full_bias = enc(rounded.float(), rounded.float(), pos)
    i, j = torch.tensor([300, 301, 599]), torch.tensor([301, 300, 297])
    if half_bias is not None:
        torch.testing.assert_close(half_bias(i, j).float(), full_bias(i, j).float())
        assert half_bias(i, j).dtype in (torch.float32, torch.float64)  # distances were not rounded to the model's dtype
    else:  # rotary: the angles and the rotation in float32, the rotated q, k rounded once
        assert half_q.dtype == dtype
        torch.testing.assert_close(half_q, full_q.to(dtype), atol=0, rtol=0)
