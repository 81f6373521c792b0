"""GPSConv: equals PyG's GPSConv with copied weights; its global attention runs along any pattern,
batched graphs each on their own; GraphGPS builds the attention graph once for every layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric.nn import GINEConv
from torch_geometric.nn import GPSConv as PyGGPSConv

from graphattn import AttentionGraph
from graphattn.models import GraphGPS
from graphattn.nn import GPSConv
from graphattn.patterns import Expander, Full, VirtualNodes, Window, bigbird

pytestmark = pytest.mark.usefixtures("one_thread")


def batch_of_graphs(sizes=(5, 9, 7), edges_per_node: int = 2, edge_dim: int = 3, seed: int = 0):
    """``(x, edge_index, edge_attr, batch)`` of random graphs, each with its own edges."""
    gen = torch.Generator().manual_seed(seed)
    parts, start = [], 0
    for n in sizes:
        parts.append(torch.randint(0, n, (2, edges_per_node * n), generator=gen) + start)
        start += n
    edge_index = torch.cat(parts, dim=1)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return (torch.randn(start, 16, generator=gen, dtype=torch.double), edge_index,
            torch.randn(edge_index.size(1), edge_dim, generator=gen, dtype=torch.double), batch)


def gine(channels: int = 16, edge_dim: int = 3) -> GINEConv:
    return GINEConv(nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, channels)),
                    edge_dim=edge_dim)


@pytest.mark.parametrize("train", [False, True])
def test_from_pyg_equals_pyg_gpsconv_outputs_and_gradients(train):
    torch.manual_seed(0)
    pyg = PyGGPSConv(16, gine(), heads=4, dropout=0.0).double().train(train)
    with torch.no_grad():  # torch initialises the attention biases to zero; make them count
        pyg.attn.in_proj_bias.normal_()
        pyg.attn.out_proj.bias.normal_()
    ours = GPSConv.from_pyg(pyg).train(train)
    x, edge_index, edge_attr, batch = batch_of_graphs()
    x.requires_grad_(True)
    expected = pyg(x, edge_index, batch, edge_attr=edge_attr)
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), x)
    out = ours(x, edge_index, batch, edge_attr=edge_attr)
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(grad, grad_expected, atol=1e-10, rtol=0)
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(ours.parameters(), pyg.parameters()))  # copied


def test_from_pyg_keeps_the_weights_and_changes_who_attends():
    torch.manual_seed(0)
    pyg = PyGGPSConv(16, gine(), heads=2).double().eval()
    x, edge_index, edge_attr, batch = batch_of_graphs()
    full = GPSConv.from_pyg(pyg).eval()(x, edge_index, batch, edge_attr=edge_attr)
    window = GPSConv.from_pyg(pyg, pattern=Window(1)).eval()(x, edge_index, batch, edge_attr=edge_attr)
    assert float((full - window).detach().abs().max()) > 1e-3


def attention_only(pattern) -> GPSConv:
    return GPSConv(16, None, heads=2, pattern=pattern, norm=None).double().eval()


@pytest.mark.parametrize("pattern", [Full(), Window(1), bigbird(1, [0], 2, seed=3), VirtualNodes(2) | Expander(2)])
def test_global_branch_is_attention_along_the_pattern_on_each_graph(pattern):
    torch.manual_seed(0)
    layer = attention_only(pattern)
    x, edge_index, _, batch = batch_of_graphs()
    out = layer(x, edge_index, batch)
    # the definition, x + Attn(x) then the MLP's residual, with the pattern laid on the batch
    graph = AttentionGraph.build(pattern, x.size(0), batch=batch)
    rows = graph.with_virtual(x, layer.virtual) if layer.virtual is not None else x
    h = x + graph.real(layer.attn(rows, graph))
    torch.testing.assert_close(out, h + layer.mlp(h), atol=1e-12, rtol=0)
    # batched graphs are independent: each graph alone gives its rows of the batch
    for g in range(3):
        rows = (batch == g).nonzero().flatten()
        alone = layer(x[rows], torch.empty(2, 0, dtype=torch.long))  # no local conv: its edges are unused
        torch.testing.assert_close(alone, out[rows], atol=1e-12, rtol=0)


def test_gpsconv_rejects_an_attention_graph_that_does_not_fit():
    layer = attention_only(VirtualNodes(1))
    x, edge_index, _, batch = batch_of_graphs()
    with pytest.raises(ValueError, match="attention must lay 1 virtual node"):
        layer(x, edge_index, batch, attention=AttentionGraph.build(Full(), x.size(0), batch=batch))
    with pytest.raises(TypeError, match="attention must be an AttentionGraph"):
        layer(x, edge_index, batch, attention=Full())
    with pytest.raises(TypeError, match="gps must be a torch_geometric.nn.GPSConv"):
        GPSConv.from_pyg(layer)


def test_graph_gps_prepares_the_attention_graph_once_and_equals_a_given_one(monkeypatch):
    torch.manual_seed(0)
    model = GraphGPS(16, 16, 2, num_layers=3, heads=2, pattern="VirtualNodes(1) | Expander(2)", edge_dim=3,
                     pe_dim=4).double().eval()
    x, edge_index, edge_attr, batch = batch_of_graphs()
    pe = torch.randn(x.size(0), 4, dtype=torch.double)
    builds = []
    real_build = AttentionGraph.build.__func__
    monkeypatch.setattr(AttentionGraph, "build", classmethod(  # count new graphs: a prepared one comes back as it is
        lambda cls, edges, *a, **k: builds.append(not isinstance(edges, AttentionGraph)) or real_build(cls, edges, *a, **k)))
    out = model(x, edge_index, edge_attr, batch, pe=pe)
    assert out.shape == (3, 2) and sum(builds) == 1
    graph = AttentionGraph.build(model.pattern, x.size(0), batch=batch)
    torch.testing.assert_close(model(x, edge_index, edge_attr, batch, pe=pe, attention=graph), out, atol=0, rtol=0)
    with pytest.raises(ValueError, match="pe of shape"):
        model(x, edge_index, edge_attr, batch)


def test_without_a_pattern_a_block_is_the_local_layer_with_residual_norm_and_feed_forward():
    torch.manual_seed(0)
    layer = GPSConv(16, gine(), dropout=0.3, attn_type=None).double().eval()
    assert layer.attn is None and layer.norm2 is None
    x, edge_index, edge_attr, batch = batch_of_graphs()
    h = layer.norm1(x + layer.conv(x, edge_index, edge_attr=edge_attr))
    expected = layer.norm3(h + layer.mlp(h))
    torch.testing.assert_close(layer(x, edge_index, batch, edge_attr=edge_attr), expected)
    with pytest.raises(ValueError, match="conv and attn_type cannot both be None"):
        GPSConv(16, None, attn_type=None)


@pytest.mark.parametrize("local", ["gine", "gatedgcn", "gcn"])
def test_graph_gps_local_layers_read_what_they_should(local):
    from torch_geometric.nn import GCNConv, GINEConv, ResGatedGraphConv

    torch.manual_seed(0)
    edge_dim = None if local == "gcn" else 3
    model = GraphGPS(16, 16, 2, num_layers=2, heads=2, pattern=None, edge_dim=edge_dim, local=local).double().eval()
    kind = {"gine": GINEConv, "gatedgcn": ResGatedGraphConv, "gcn": GCNConv}[local]
    assert all(isinstance(layer.conv, kind) and layer.attn is None for layer in model.layers)
    x, edge_index, edge_attr, batch = batch_of_graphs()
    out = model(x, edge_index, edge_attr if edge_dim else None, batch)
    assert out.shape == (3, 2) and torch.isfinite(out).all()
    if edge_dim:  # the bond features change the answer
        changed = model(x, edge_index, edge_attr + 1, batch)
        assert not torch.allclose(out, changed)
        with pytest.raises(ValueError, match="edge_attr is required"):
            model(x, edge_index, None, batch)
    else:
        with pytest.raises(ValueError, match="reads no edge features"):
            model(x, edge_index, edge_attr, batch)
        with pytest.raises(ValueError, match="local='gcn' reads no edge features"):
            GraphGPS(16, 16, 2, edge_dim=3, local="gcn")


def test_graph_gps_takes_embedding_modules_for_atoms_and_bonds():
    from graphattn.nn import CategoricalEncoder

    torch.manual_seed(0)
    model = GraphGPS(CategoricalEncoder([5, 3], 16), 16, 1, num_layers=2, heads=2, pattern="Full()",
                     edge_dim=CategoricalEncoder([4], 16), local="gatedgcn").eval()
    _, edge_index, _, batch = batch_of_graphs()
    n = batch.numel()
    x = torch.stack([torch.randint(0, 5, (n,)), torch.randint(0, 3, (n,))], dim=1)
    bonds = torch.randint(0, 4, (edge_index.size(1),))
    out = model(x, edge_index, bonds, batch)
    assert out.shape == (3, 1)
    assert model.layers[0].conv.edge_dim == 16  # the bond embedding arrives at the model's width
    # permuting the graphs of the batch permutes the predictions: one molecule's answer is its own
    perm = torch.tensor([2, 0, 1])
    sizes = torch.bincount(batch)
    starts = torch.cumsum(sizes, 0) - sizes
    order = torch.cat([torch.arange(starts[g], starts[g] + sizes[g]) for g in perm.tolist()])
    where = torch.empty_like(order)
    where[order] = torch.arange(n)
    out_perm = model(x[order], where[edge_index], bonds, torch.repeat_interleave(torch.arange(3), sizes[perm]))
    torch.testing.assert_close(out_perm, out[perm], atol=1e-5, rtol=1e-5)
