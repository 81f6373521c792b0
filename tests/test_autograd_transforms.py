"""Autograd and transforms: double backward works or is refused naming the kernels that support
it; torch.func grad / vmap run (auto moves off the custom ops, which have no functorch rules); a
graph first used under inference_mode trains later; meta tensors infer shapes."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, vmap

from graphattn import AttentionGraph, ops
from graphattn.models import GraphTransformer
from graphattn.nn import RelativePositionBias, RotaryEncoding, SelfAttentionConv
from graphattn.patterns import Full, Stride, Window, longformer

N = 40
GRAPHS = {"window": lambda: Window(2), "stride": lambda: Stride(3), "full": lambda: Full(),
          "edges": lambda: torch.randint(N, (2, 160), generator=torch.Generator().manual_seed(0))}


def qkv(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(N, 2, 4, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3)]


def hvp(backend: str, edges) -> tuple[torch.Tensor, ...]:
    """A Hessian-vector product: d/d(q, k, v) of <d out^2 / dq, 1>."""
    q, k, v = qkv()
    out = ops.attention(q, k, v, edges, backend=backend).out
    g, = torch.autograd.grad(out.square().sum(), q, create_graph=True)
    return torch.autograd.grad(g.sum(), (q, k, v))


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_double_backward_works_or_names_the_kernels_that_have_it(name):
    edges = GRAPHS[name]()
    want = hvp("reference", edges)
    worked = []
    for backend in ops.KERNELS:
        try:
            got = hvp(backend, edges)
        except NotImplementedError as err:
            if "cannot run this call" in str(err):  # a forced kernel that cannot run this graph at all
                continue
            assert "double backward" in str(err) and "backend='scatter' or 'reference'" in str(err), (backend, err)
            continue
        worked.append(backend)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, atol=1e-9, rtol=0, msg=backend)
    assert {"scatter", "reference"} <= set(worked)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_torch_func_grad_and_vmap_run_with_auto(name):
    edges = GRAPHS[name]()
    q, k, v = (t.detach() for t in qkv(1))
    graph = AttentionGraph.build(edges, N)

    def loss(q, backend="auto"):
        return ops.attention(q, k, v, graph, backend=backend).out.square().sum()

    torch.testing.assert_close(grad(loss)(q), grad(lambda q: loss(q, "reference"))(q), atol=1e-10, rtol=0)
    batch = torch.randn(3, *q.shape, dtype=q.dtype)
    got = vmap(lambda q: ops.attention(q, k, v, graph).out)(batch)
    want = torch.stack([ops.attention(b, k, v, graph, backend="reference").out for b in batch])
    torch.testing.assert_close(got, want, atol=1e-10, rtol=0)
    if name == "edges":  # the sparse kernel, forced, says why it cannot run under a transform
        with pytest.raises(NotImplementedError, match="sparse: a torch.func transform"):
            grad(lambda q: loss(q, "sparse"))(q)


@pytest.mark.parametrize("edges", [Window(2), Full(), longformer(2, (0,)), Stride(3), "edges"], ids=repr)
@pytest.mark.parametrize("position", [None, RotaryEncoding(4), RelativePositionBias(2)], ids=repr)
def test_a_graph_first_used_under_inference_mode_trains_later(edges, position):
    if edges == "edges":
        edges = torch.randint(N, (2, 160), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = GraphTransformer(4, 8, 2, num_layers=2, heads=2, position=position).eval()  # no dropout: equal outputs
    x = torch.randn(N, 4)
    with torch.inference_mode():
        graph = AttentionGraph.build(edges, N)
        first = model(x, graph)
    out = model(x, graph)  # every plan, memo and layout tensor was made usable for autograd
    out.sum().backward()
    torch.testing.assert_close(out.detach(), first)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_meta_tensors_infer_shapes_and_meta_edges_are_refused():
    conv = SelfAttentionConv(8, 16, heads=2).to("meta")
    x = torch.empty(50, 8, device="meta")
    assert conv(x, Window(2)).shape == (50, 16)
    out, (ei, alpha) = conv(x, longformer(2, (0,)), return_attention_weights=True)
    assert out.is_meta and alpha.shape == (ei.size(1), 2)
    graph = AttentionGraph.build(torch.randint(50, (2, 200)), 50).to("meta")
    assert conv(x, graph).shape == (50, 16)
    model = GraphTransformer(8, 16, 3, pattern=Window(2), pooling="mean").to("meta")
    assert model(x).shape == (1, 3)
    with pytest.raises(ValueError, match="meta tensor: it holds no node ids"):
        conv(x, torch.zeros(2, 10, dtype=torch.long, device="meta"))
