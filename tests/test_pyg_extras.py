"""pattern= on the drop-ins: PyG's edges (after the layer's self-loop rule) together with the pattern's,
laid on each graph of batch; virtual nodes are learned input rows whose outputs are dropped."""

from __future__ import annotations

import pytest
import torch
from pyg_support import LAYERS
from torch_geometric.utils import add_self_loops, remove_self_loops

import graphattn.nn as ga_nn
from graphattn import AttentionGraph
from graphattn.patterns import Expander, Global, VirtualNodes

pytestmark = pytest.mark.usefixtures("one_thread")


def batch_of_graphs(sizes=(6, 9), seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    parts, start = [], 0
    for n in sizes:
        parts.append(torch.randint(n, (2, 2 * n), generator=gen) + start)
        start += n
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return torch.randn(start, 5, generator=gen, dtype=torch.float64), torch.cat(parts, dim=1), batch


def own_edges(name: str, edge_index: torch.Tensor, n: int) -> torch.Tensor:
    """PyG's edges after the layer's self-loop rule."""
    return edge_index if name == "TransformerConv" else add_self_loops(remove_self_loops(edge_index)[0], num_nodes=n)[0]


@pytest.mark.parametrize("pattern", [Expander(2), VirtualNodes(1), VirtualNodes(2) | Global((0,))])
@pytest.mark.parametrize("name", LAYERS)
def test_the_layer_attends_along_its_edges_and_the_patterns_on_each_graph(name, pattern):
    torch.manual_seed(0)
    layer = getattr(ga_nn, name)(5, 4, heads=2, pattern=pattern).double().eval()
    plain = getattr(ga_nn, name)(5, 4, heads=2).double().eval()
    plain.load_state_dict({k: v for k, v in layer.state_dict().items() if k != "virtual"})
    x, edge_index, batch = batch_of_graphs()
    out, (attended, alpha) = layer(x, edge_index, batch=batch, return_attention_weights=True)
    # the definition: the virtual rows inserted, the union of edges, the real rows kept
    laid = AttentionGraph.build(pattern, x.size(0), batch=batch)
    union = torch.cat([laid.real_index[own_edges(name, edge_index, x.size(0))], laid.edge_index], dim=1)
    rows = laid.with_virtual(x, layer.virtual) if pattern.extra_nodes else x
    want, (_, want_alpha) = plain(rows, AttentionGraph.build(union, laid.num_nodes), return_attention_weights=True)
    torch.testing.assert_close(out, laid.real(want), atol=1e-12, rtol=0)
    assert torch.equal(attended, union)
    torch.testing.assert_close(alpha, want_alpha, atol=1e-12, rtol=0)
    # each graph of the batch on its own gives its rows
    first = batch == 0
    alone = layer(x[first], edge_index[:, edge_index[0] < first.sum()], batch=batch[first])
    torch.testing.assert_close(alone, out[first], atol=1e-12, rtol=0)
    assert ("virtual" in dict(layer.named_parameters())) == bool(pattern.extra_nodes)


def test_the_patterns_edges_carry_zero_edge_features():
    torch.manual_seed(0)
    layer = ga_nn.GATConv(5, 4, heads=2, edge_dim=3, pattern=Expander(2)).double()
    x, edge_index, _ = batch_of_graphs(sizes=(8,))
    attr = torch.randn(edge_index.size(1), 3, dtype=torch.double)
    out = layer(x, edge_index, attr)
    plain = ga_nn.GATConv(5, 4, heads=2, edge_dim=3, add_self_loops=False).double()
    plain.load_state_dict(layer.state_dict())
    looped, looped_attr = add_self_loops(*remove_self_loops(edge_index, attr), fill_value="mean", num_nodes=8)
    pattern_edges = AttentionGraph.build(Expander(2), 8).edge_index
    union = torch.cat([looped, pattern_edges], dim=1)
    union_attr = torch.cat([looped_attr, torch.zeros(pattern_edges.size(1), 3, dtype=torch.double)])
    torch.testing.assert_close(out, plain(x, union, union_attr), atol=1e-12, rtol=0)


def test_patterns_need_one_node_set_and_batch_needs_a_pattern():
    layer = ga_nn.GATConv((5, 3), 4, pattern=Expander(2))
    with pytest.raises(ValueError, match="pattern= needs one node set"):
        layer((torch.randn(4, 5), torch.randn(3, 3)), torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="batch= lays a pattern"):
        ga_nn.GATConv(5, 4)(torch.randn(4, 5), torch.tensor([[0], [1]]), batch=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="fixed int in_channels"):
        ga_nn.TransformerConv(-1, 4, pattern=VirtualNodes(1))
    with pytest.raises(TypeError, match="pattern must be a Pattern"):
        ga_nn.GATv2Conv(5, 4, pattern=3)
