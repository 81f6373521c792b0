"""On an EdgeIndex (prepared on the first, eager call and kept on it), the layers ask the device for no
value in forward and backward, and torch.compile(fullgraph=True) traces them without a graph break and
equals eager; torch.jit.script compiles TransformerConv's signatures as PyG's does (its forward stays
Python: the same numbers as eager)."""

from __future__ import annotations

from typing import Optional

import pytest
import torch
from kernel_support import SyncCounter
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.typing import Adj, SparseTensor

from graphattn.nn import GATConv, GATv2Conv, SelfAttentionConv, TransformerConv

pytestmark = pytest.mark.usefixtures("one_thread")

LAYERS = {
    "SelfAttentionConv": lambda: SelfAttentionConv(8, 8, heads=2, root_weight=True, add_self_loops=True),
    "TransformerConv": lambda: TransformerConv(8, 4, heads=2, beta=True),
    "GATConv": lambda: GATConv(8, 4, heads=2, dropout=0.2),
    "GATv2Conv": lambda: GATv2Conv(8, 4, heads=2, residual=True),
}


def case(name: str, seed: int = 0) -> tuple[torch.nn.Module, Tensor, EdgeIndex]:
    torch.manual_seed(seed)
    n = 60
    edge_index = EdgeIndex(torch.randint(n, (2, 240)), sparse_size=(n, n))
    return LAYERS[name](), torch.randn(n, 8, requires_grad=True), edge_index


@pytest.mark.parametrize("name", LAYERS)
def test_forward_and_backward_on_an_edge_index_make_no_host_round_trip(name):
    layer, x, edge_index = case(name)
    layer(x, edge_index).sum().backward()  # the first call prepares the graph: that may sync, once
    with SyncCounter() as counter:
        layer(x, edge_index).sum().backward()
    assert counter.calls == [], counter.calls


def compiled_equals_eager(name: str) -> None:
    layer, x, edge_index = case(name)
    layer.eval()
    torch._dynamo.reset()
    want = layer(x, edge_index)  # fills the EdgeIndex's preparation outside the compiled code
    (want_grad,) = torch.autograd.grad(want.square().sum(), x)
    explanation = torch._dynamo.explain(layer)(x, edge_index)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    got = torch.compile(layer, fullgraph=True)(x, edge_index)
    (grad,) = torch.autograd.grad(got.square().sum(), x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad, want_grad, atol=1e-4, rtol=1e-4)


def test_fullgraph_gat_on_an_edge_index():  # about 10 s of compilation on two busy CPU cores
    compiled_equals_eager("GATConv")


@pytest.mark.slow  # 10-20 s of compilation each on two busy CPU cores
@pytest.mark.parametrize("name", ["SelfAttentionConv", "TransformerConv", "GATv2Conv"])
def test_fullgraph_on_an_edge_index(name):
    compiled_equals_eager(name)


class Plain(torch.nn.Module):
    def __init__(self, conv: torch.nn.Module):
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor, edge_index: Adj, edge_attr: Optional[Tensor] = None) -> Tensor:  # noqa: UP045
        return self.conv(x, edge_index, edge_attr)


class SparseWeights(torch.nn.Module):
    def __init__(self, conv: torch.nn.Module):
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor, edge_index: SparseTensor) -> tuple[Tensor, SparseTensor]:
        return self.conv(x, edge_index, return_attention_weights=True)


def test_torchscript_compiles_transformer_conv_and_runs_its_own_forward():
    torch.manual_seed(0)
    conv = TransformerConv(8, 4, heads=2, edge_dim=3).eval()
    x, ei, attr = torch.randn(10, 8), torch.randint(10, (2, 30)), torch.randn(30, 3)
    scripted = torch.jit.script(Plain(conv))
    assert torch.equal(scripted(x, ei, attr), conv(x, ei, attr))
    adj = SparseTensor.from_edge_index(torch.unique(ei, dim=1), sparse_sizes=(10, 10)).t()
    plain = TransformerConv(8, 4, heads=2).eval()
    out, weights = torch.jit.script(SparseWeights(plain))(x, adj)
    want, want_weights = plain(x, adj, return_attention_weights=True)
    assert torch.equal(out, want) and torch.equal(weights.storage.value(), want_weights.storage.value())
    assert {n for n, _ in scripted.named_parameters()} == {f"conv.{n}" for n, _ in conv.named_parameters()}


def test_torchscript_compiles_self_attention_conv():
    torch.manual_seed(0)
    conv = SelfAttentionConv(8, 8, heads=2, edge_dim=3, root_weight=True).eval()
    x, ei, attr = torch.randn(10, 8), torch.randint(10, (2, 30)), torch.randn(30, 3)
    assert torch.equal(torch.jit.script(Plain(conv))(x, ei, attr), conv(x, ei, attr))
