"""SelfAttentionConv's own path and PyG's input conventions: root_weight and add_self_loops, size=,
(x, None), every adjacency form for bipartite inputs, 1-D edge weights and a SparseTensor's values;
and a bipartite heterogeneous model that needs the self path learns with it."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from pyg_support import forms
from torch_geometric.data import HeteroData
from torch_geometric.nn import to_hetero
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import add_self_loops, remove_self_loops

from graphattn.nn import SelfAttentionConv
from graphattn.patterns import Global, SelfLoops

pytestmark = pytest.mark.usefixtures("one_thread")


def edges(n_src: int, n_dst: int, e: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(n_src, (e,), generator=gen), torch.randint(n_dst, (e,), generator=gen)])


def test_root_weight_adds_the_skip_of_the_destination_features():
    torch.manual_seed(0)
    layer = SelfAttentionConv((5, 3), 8, heads=2, root_weight=True).double()
    plain = SelfAttentionConv((5, 3), 8, heads=2).double()
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if not k.startswith("lin_skip")})
    x = (torch.randn(7, 5, dtype=torch.double), torch.randn(4, 3, dtype=torch.double))
    ei = edges(7, 4, 15)
    torch.testing.assert_close(layer(x, ei), plain(x, ei) + layer.lin_skip(x[1]), atol=1e-12, rtol=0)
    assert "root_weight=True" in repr(layer)


def test_add_self_loops_replaces_self_loops_by_one_per_node():
    torch.manual_seed(0)
    layer = SelfAttentionConv(4, 8, heads=2, add_self_loops=True, edge_dim=2).double()
    x, ei = torch.randn(9, 4, dtype=torch.double), torch.cat([edges(9, 9, 30), torch.tensor([[2, 2], [2, 2]])], 1)
    attr = torch.randn(ei.size(1), 2, dtype=torch.double)
    out, (looped, alpha) = layer(x, ei, attr, return_attention_weights=True)
    kept = ei[0] != ei[1]
    want_index = add_self_loops(remove_self_loops(ei)[0], num_nodes=9)[0]
    assert torch.equal(looped, want_index)
    layer.add_self_loops = False
    want_attr = torch.cat([attr[kept], torch.zeros(9, 2, dtype=torch.double)])  # loops carry zero features
    torch.testing.assert_close(out, layer(x, want_index, want_attr), atol=1e-12, rtol=0)
    looped = SelfAttentionConv(4, 8, heads=2, add_self_loops=True)  # a pattern gets | SelfLoops()
    plain = copy.deepcopy(looped)
    plain.add_self_loops = False
    xf = x.float()
    torch.testing.assert_close(looped(xf, Global((0,))), plain(xf, Global((0,)) | SelfLoops()))
    assert not torch.allclose(looped(xf, Global((0,))), plain(xf, Global((0,))))


def test_destinations_default_to_the_first_sources_and_size_tells_how_many():
    torch.manual_seed(0)
    layer = SelfAttentionConv(5, 8, heads=2, root_weight=True)
    x, ei = torch.randn(7, 5), edges(7, 3, 12)
    torch.testing.assert_close(layer((x, None), ei, size=(7, 3)), layer((x, x[:3]), ei))
    with pytest.raises(ValueError, match="size says 7 source and 2 destination nodes"):
        layer((x, x[:3]), ei, size=(7, 2))
    with pytest.raises(ValueError, match="size must be a pair"):
        layer(x, edges(7, 7, 5), size=7)


def test_bipartite_inputs_take_every_adjacency_form():
    torch.manual_seed(0)
    layer = SelfAttentionConv((5, 3), 8, heads=2, root_weight=True).double()
    x = (torch.randn(7, 5, dtype=torch.double), torch.randn(4, 3, dtype=torch.double))
    ei = torch.unique(edges(7, 4, 18), dim=1).contiguous()
    want, (_, want_alpha) = layer(x, ei, return_attention_weights=True)
    for form, adj in forms(ei, 7, 4).items():
        got, (order, alpha) = layer(x, adj, return_attention_weights=True)
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0, msg=form)
        dense = torch.zeros(4, 7, 2, dtype=torch.double).index_put_((order[1], order[0]), alpha)
        torch.testing.assert_close(dense[ei[1], ei[0]], want_alpha, atol=1e-12, rtol=0, msg=form)


def test_one_dimensional_edge_weights_and_a_sparse_tensors_values_are_edge_features():
    torch.manual_seed(0)
    layer = SelfAttentionConv(4, 8, heads=2, edge_dim=1)
    x, ei = torch.randn(6, 4), torch.unique(edges(6, 6, 14), dim=1)
    weight = torch.rand(ei.size(1))
    want = layer(x, ei, weight[:, None])
    torch.testing.assert_close(layer(x, ei, weight), want)
    torch.testing.assert_close(layer(x, SparseTensor.from_edge_index(ei, weight, (6, 6)).t()), want)


class TwoLayers(torch.nn.Module):
    def __init__(self, **options):
        super().__init__()
        self.conv1 = SelfAttentionConv(-1, 16, heads=2, **options)
        self.conv2 = SelfAttentionConv(-1, 2, **options)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).relu(), edge_index)


@pytest.mark.parametrize("options, learns", [({}, False), ({"root_weight": True}, True)])
def test_a_heterogeneous_model_keeps_each_nodes_own_features_only_with_the_self_path(options, learns):
    torch.manual_seed(0)
    data = HeteroData()
    data["paper"].x = torch.randn(60, 4)
    data["paper"].y = (data["paper"].x[:, 0] > 0).long()  # a paper's label is in its own features only
    data["author"].x = torch.randn(30, 4)
    writes = edges(30, 60, 120, seed=1)
    data["author", "writes", "paper"].edge_index = writes
    data["paper", "rev_writes", "author"].edge_index = writes.flip(0)
    model = to_hetero(TwoLayers(**options), data.metadata(), aggr="sum")
    with torch.no_grad():
        model(data.x_dict, data.edge_index_dict)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(model(data.x_dict, data.edge_index_dict)["paper"], data["paper"].y)
        loss.backward()
        opt.step()
    accuracy = float((model(data.x_dict, data.edge_index_dict)["paper"].argmax(1) == data["paper"].y).float().mean())
    assert (accuracy > 0.95) == learns, accuracy
