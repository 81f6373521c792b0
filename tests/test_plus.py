"""GNNPlus: without attention it is Luo et al.'s tuned GCN written out by hand; with attention it holds
that GCN (an attention branch that outputs zero gives the same answer); nodes permute with the graph;
GCN's prepared adjacency equals PyG's own normalisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.nn import GCNConv
from torch_geometric.utils import to_undirected

from graphattn import AttentionGraph
from graphattn.models import GNNPlus
from graphattn.models.plus import gcn_adjacency
from graphattn.patterns import Expander, GraphEdges, SelfLoops, VirtualNodes

pytestmark = pytest.mark.usefixtures("one_thread")


def graph(n: int = 12, seed: int = 0, features: int = 6):
    gen = torch.Generator().manual_seed(seed)
    edge_index = to_undirected(torch.randint(0, n, (2, 2 * n), generator=gen), num_nodes=n)
    return torch.randn(n, features, generator=gen, dtype=torch.double), edge_index


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 30), edges=st.integers(0, 80), seed=st.integers(0, 1000))
def test_gcn_adjacency_gives_pyg_gcnconv_with_its_own_normalisation(n, edges, seed):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, edges), generator=gen)  # directed, self-loops and duplicates allowed
    x = torch.randn(n, 5, generator=gen, dtype=torch.double)
    theirs = GCNConv(5, 4).double()
    ours = GCNConv(5, 4, normalize=False).double()
    ours.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(ours(x, gcn_adjacency(edge_index, n, dtype=torch.double)), theirs(x, edge_index))


def test_without_attention_each_layer_is_luo_et_al_s_formula():
    torch.manual_seed(0)
    model = GNNPlus(6, 8, 3, num_layers=2, local="gcn", dropout=0.5).double().eval()
    x, edge_index = graph()
    h = model.lin_in(x)
    for conv, skip, norm in zip(model.convs, model.skips, model.norms):
        reference = GCNConv(8, 8).double()  # PyG's GCN with its own normalisation and the same weights
        reference.lin.weight.data.copy_(conv.lin.weight.data)
        reference.bias.data.copy_(conv.bias.data)
        h = F.relu(norm(reference(h, edge_index) + skip(h)))  # eval: no dropout
    torch.testing.assert_close(model(x, edge_index), model.lin_out(h))


def test_with_attention_it_holds_the_tuned_gcn():
    """An attention branch whose output projection is zero adds nothing: the model is then gcn+."""
    torch.manual_seed(0)
    x, edge_index = graph()
    pattern = GraphEdges(edge_index, 12) | SelfLoops() | VirtualNodes(1) | Expander(2, seed=0)
    plus = GNNPlus(6, 8, 3, num_layers=2, heads=2, pattern=pattern).double().eval()
    tuned = GNNPlus(6, 8, 3, num_layers=2, heads=2).double().eval()
    tuned.load_state_dict({k: v for k, v in plus.state_dict().items() if not k.startswith(("attns.", "virtual."))})
    attention = AttentionGraph.build(pattern, 12)
    assert not torch.allclose(plus(x, edge_index, attention=attention), tuned(x, edge_index))
    for attn in plus.attns:
        attn.lin_out.weight.data.zero_()
        if attn.lin_out.bias is not None:
            attn.lin_out.bias.data.zero_()
    torch.testing.assert_close(plus(x, edge_index, attention=attention), tuned(x, edge_index))


@pytest.mark.parametrize("local", ["gcn", "gat", None])
def test_permuting_the_nodes_permutes_the_predictions(local):
    torch.manual_seed(0)
    x, edge_index = graph(n=10, seed=3)
    model = GNNPlus(6, 8, 4, num_layers=2, heads=2, pattern="VirtualNodes(1)", local=local, norm="batch_norm")
    model = model.double().eval()
    perm = torch.randperm(10)
    where = torch.empty_like(perm)
    where[perm] = torch.arange(10)

    def run(x, edge_index):
        pattern = GraphEdges(edge_index, 10) | SelfLoops() | VirtualNodes(1)
        return model(x, edge_index, attention=AttentionGraph.build(pattern, 10))

    torch.testing.assert_close(run(x[perm], where[edge_index]), run(x, edge_index)[perm])


def test_sparse_features_give_the_dense_answer():
    torch.manual_seed(0)
    x, edge_index = graph()
    x = x * (torch.rand_like(x) < 0.2)
    model = GNNPlus(6, 8, 3).double().eval()
    torch.testing.assert_close(model(x.to_sparse_csr(), edge_index), model(x, edge_index))


def test_bad_arguments_are_refused_by_name():
    x, edge_index = graph()
    with pytest.raises(ValueError, match="local must be one of"):
        GNNPlus(6, 8, 3, local="sage")
    with pytest.raises(ValueError, match="norm must be one of"):
        GNNPlus(6, 8, 3, norm="group")
    with pytest.raises(ValueError, match="local and pattern cannot both be None"):
        GNNPlus(6, 8, 3, local=None)
    with pytest.raises(ValueError, match=r"heads \(3\) must divide hidden_channels \(8\)"):
        GNNPlus(6, 8, 3, heads=3)
    with pytest.raises(ValueError, match="attention .* is required"):
        GNNPlus(6, 8, 3, pattern="VirtualNodes(1)").double()(x, edge_index)
    with pytest.raises(ValueError, match="attention was given but the model has no attention"):
        GNNPlus(6, 8, 3).double()(x, edge_index, attention=AttentionGraph.build(SelfLoops(), 12))
