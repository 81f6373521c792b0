"""graphattn.nn.GPSConv equals PyG's GPSConv: the same seed gives the same weights and ``state_dict``,
and the same answer and gradients for ``attn_type="multihead"`` (on graphattn's kernels) and
``"performer"``; beyond PyG, ``attn_type`` takes any pattern."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric.nn import GINConv
from torch_geometric.nn import GPSConv as PyGGPSConv

from graphattn import AttentionGraph
from graphattn.nn import GPSConv
from graphattn.nn.pyg import GraphMultiheadAttention
from graphattn.patterns import Expander, Full, VirtualNodes

pytestmark = pytest.mark.usefixtures("one_thread")


def gin(channels: int = 16) -> GINConv:
    return GINConv(nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, channels)))


def batch_of_graphs(sizes=(5, 9, 7), seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    parts, start = [], 0
    for n in sizes:
        parts.append(torch.randint(0, n, (2, 2 * n), generator=gen) + start)
        start += n
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return torch.randn(start, 16, generator=gen, dtype=torch.float64), torch.cat(parts, dim=1), batch


def twins(**kwargs) -> tuple[GPSConv, PyGGPSConv]:
    layers = []
    for cls in (GPSConv, PyGGPSConv):
        torch.manual_seed(0)
        layers.append(cls(16, gin(), heads=4, **kwargs).double())
    return layers[0], layers[1]


@pytest.mark.parametrize("norm", [None, "batch_norm", "layer_norm", "graph_norm"])
@pytest.mark.parametrize("with_batch", [True, False])
def test_multihead_equals_pyg_outputs_and_gradients_from_the_same_seed(norm, with_batch):
    ours, theirs = twins(norm=norm, attn_kwargs={"dropout": 0.0})
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (key, mine), (_, pyg) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert torch.equal(mine, pyg), key
    x, edge_index, batch = batch_of_graphs()
    batch = batch if with_batch else None
    results = []
    for layer in (ours.eval(), theirs.eval()):
        xs = x.clone().requires_grad_(True)
        out = layer(xs, edge_index, batch)
        results.append((out, torch.autograd.grad(out.square().sum(), [xs, *layer.parameters()])))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-10, rtol=0)
    for got, want in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(got, want, atol=1e-9, rtol=0)
    assert repr(ours) == repr(theirs)


def test_a_pyg_state_dict_loads_and_the_layer_then_answers_as_pyg():
    _, theirs = twins()
    torch.manual_seed(5)
    ours = GPSConv(16, gin(), heads=4).double()
    ours.load_state_dict(theirs.state_dict())
    x, edge_index, batch = batch_of_graphs(seed=1)
    torch.testing.assert_close(ours.eval()(x, edge_index, batch), theirs.eval()(x, edge_index, batch))


def test_performer_is_pyg_performer():
    ours, theirs = twins(attn_type="performer")
    x, edge_index, batch = batch_of_graphs(seed=2)
    torch.testing.assert_close(ours.eval()(x, edge_index, batch), theirs.eval()(x, edge_index, batch))
    assert repr(ours).endswith("attn_type=performer)")
    with pytest.raises(ValueError, match="needs a pattern"):
        ours(x, edge_index, batch, attention=AttentionGraph.build(Full(), x.size(0), batch=batch))


def test_attn_type_takes_a_pattern_or_its_text():
    layer = GPSConv(16, gin(), heads=2, attn_type="VirtualNodes(1) | Expander(2)")
    assert layer.pattern == VirtualNodes(1) | Expander(2) and layer.virtual.shape == (1, 16)
    assert repr(layer).endswith("attn_type=VirtualNodes(count=1) | Expander(degree=2, seed=0))")
    x, edge_index, batch = batch_of_graphs()
    assert layer(x.float(), edge_index, batch).shape == (21, 16)
    same = GPSConv(16, gin(), heads=2, pattern=VirtualNodes(1) | Expander(2))
    assert same.pattern == layer.pattern
    with pytest.raises(ValueError, match="attn_type must be one of .'multihead', 'performer'. or a pattern"):
        GPSConv(16, None, attn_type="bigbirb")
    with pytest.raises(ValueError, match="give the pattern once"):
        GPSConv(16, None, attn_type="performer", pattern=Full())
    with pytest.raises(ValueError, match="add_bias_kv"):
        GPSConv(16, None, attn_kwargs={"add_bias_kv": True})


def test_graph_multihead_attention_is_torchs_module_when_called_as_one():
    torch.manual_seed(0)
    attn = GraphMultiheadAttention(8, 2).eval()
    x = torch.randn(3, 5, 8)
    want = nn.MultiheadAttention.forward(attn, x, x, x, need_weights=False)[0]
    torch.testing.assert_close(attn(x, x, x, need_weights=False)[0], want)
    flat = x.reshape(15, 8)
    graph = AttentionGraph.build(Full(), 15, batch=torch.arange(3).repeat_interleave(5))
    torch.testing.assert_close(attn(flat, graph), want.reshape(15, 8), atol=1e-6, rtol=0)
