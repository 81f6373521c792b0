"""torch.compile(fullgraph=True): the layer on the dense, blocked and explicit-graph kernels, and
models given a prepared AttentionGraph, compile without a graph break and equal eager."""

from __future__ import annotations

import pytest
import torch

from graphattn import AttentionGraph, ops
from graphattn.models import GraphGPS, GraphTransformer
from graphattn.nn import SelfAttentionConv
from graphattn.patterns import Full, Window

pytestmark = pytest.mark.usefixtures("one_thread")


def compiled_equals_eager(module: torch.nn.Module, *args, **kwargs) -> None:
    torch._dynamo.reset()
    eager = module(*args, **kwargs)  # also fills the graph's caches (plan, masks, CSR) outside the compiled code
    compiled = torch.compile(module, fullgraph=True)  # any graph break raises
    torch.testing.assert_close(compiled(*args, **kwargs), eager, atol=1e-5, rtol=1e-5)


def layer_case(kernel: str) -> tuple[SelfAttentionConv, torch.Tensor, AttentionGraph]:
    torch.manual_seed(0)
    if kernel == "dense":
        n, graph = 6, AttentionGraph.build(Full(), 6)
    elif kernel == "blocked":
        n, graph = 256, AttentionGraph.build(Window(4), 256)
    else:  # a sparse real graph
        n = 200
        graph = AttentionGraph.build(torch.randint(0, n, (2, 800), generator=torch.Generator().manual_seed(0)), n)
    assert ops.choose_backend(graph) == ("sparse" if kernel == "explicit" else kernel)
    return SelfAttentionConv(8, 8, heads=2).eval(), torch.randn(n, 8), graph


@pytest.mark.parametrize("kernel", ["dense", "blocked", "explicit"])  # 10-14 s each on two busy CPU cores
@torch.no_grad()
def test_fullgraph_layer(kernel):
    compiled_equals_eager(*layer_case(kernel))


@torch.no_grad()
def test_fullgraph_graph_transformer_given_a_prepared_graph():
    torch.manual_seed(0)
    model = GraphTransformer(8, 16, 3, num_layers=2, heads=2, pooling="mean").eval()
    batch = torch.tensor([0] * 12 + [1] * 18)
    compiled_equals_eager(model, torch.randn(30, 8), AttentionGraph.build(Full(), 30, batch=batch))


@pytest.mark.slow  # about 21 s of compilation on two busy CPU cores
@torch.no_grad()
def test_fullgraph_graph_gps_given_a_prepared_graph():
    torch.manual_seed(0)
    model = GraphGPS(8, 16, 3, num_layers=2, heads=2, edge_dim=4, pe_dim=5).eval()
    batch = torch.tensor([0] * 12 + [1] * 18)
    edge_index = torch.cat([torch.randint(0, 12, (2, 20)), torch.randint(12, 30, (2, 30))], dim=1)
    graph = AttentionGraph.build(Full(), 30, batch=batch)
    compiled_equals_eager(model, torch.randn(30, 8), edge_index, torch.randn(50, 4), batch, pe=torch.randn(30, 5),
                          attention=graph)
