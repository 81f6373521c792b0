"""LocalGlobalNetwork: local message passing beside linear global attention, for node classification."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GCNConv, SAGEConv
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import subgraph, to_torch_csr_tensor

from graphattn.datasets.synthetic import sbm_graph
from graphattn.models import LocalGlobalNetwork
from graphattn.nn import Linformer, performer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def graph():
    return sbm_graph(300, num_classes=4, num_features=16, degree=8, seed=1)


def test_permuting_the_nodes_permutes_the_predictions(graph):
    torch.manual_seed(0)
    model = LocalGlobalNetwork(16, 16, 4, heads=2, operator=performer(32)).double().eval()
    x = graph.x.double()
    perm = torch.randperm(graph.num_nodes)
    inverse = torch.empty_like(perm).index_copy_(0, perm, torch.arange(graph.num_nodes))
    permuted = model(x[perm], inverse[graph.edge_index])
    torch.testing.assert_close(permuted, model(x, graph.edge_index)[perm], atol=1e-10, rtol=0)


def test_graphs_of_a_batch_are_predicted_as_if_alone(graph):
    torch.manual_seed(0)
    model = LocalGlobalNetwork(16, 16, 4, heads=2).eval()
    first, second = sbm_graph(40, 4, 16, seed=2), sbm_graph(60, 4, 16, seed=3)
    x = torch.cat([first.x, second.x])
    edge_index = torch.cat([first.edge_index, second.edge_index + 40], dim=1)
    batch = torch.tensor([0] * 40 + [1] * 60)
    both = model(x, edge_index, batch=batch)
    torch.testing.assert_close(both[:40], model(first.x, first.edge_index), atol=1e-5, rtol=0)
    torch.testing.assert_close(both[40:], model(second.x, second.edge_index), atol=1e-5, rtol=0)
    assert not torch.allclose(model(x, edge_index)[:40], both[:40], atol=1e-4)  # one graph: attention mixes them


def test_the_global_branch_learns_beside_the_local_one_and_runs_on_mini_batches(graph):
    torch.manual_seed(0)
    model = LocalGlobalNetwork(16, 32, 4, heads=2, dropout=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(graph.x, graph.edge_index)[graph.train_mask], graph.y[graph.train_mask])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is not None for p in model.attns.parameters())
    model.eval()
    accuracy = (model(graph.x, graph.edge_index).argmax(1) == graph.y)[graph.test_mask].float().mean()
    assert accuracy > 0.85  # 4 classes: chance is 0.25 (0.96 measured)
    nodes = torch.randperm(graph.num_nodes)[:100]  # a random node batch and its induced edges
    edge_index, _ = subgraph(nodes, graph.edge_index, relabel_nodes=True, num_nodes=graph.num_nodes)
    assert model(graph.x[nodes], edge_index).shape == (100, 4)


def test_local_only_twin_and_other_parts():
    local_only = LocalGlobalNetwork(16, 16, 4, global_branch=False)
    assert local_only.attns is None and "operator=None" in repr(local_only)
    sage = LocalGlobalNetwork(16, 16, 4, local=SAGEConv(16, 16), operator=Linformer(4, 64))
    assert isinstance(sage.locals[1], SAGEConv) and sage.locals[0] is not sage.locals[1]
    assert sage(torch.randn(50, 16), torch.randint(50, (2, 100))).shape == (50, 4)


def test_the_default_gcn_as_one_sparse_product_equals_pygs_gcnconv_on_every_adjacency(graph):
    torch.manual_seed(0)
    model = LocalGlobalNetwork(16, 16, 4, heads=2).double().eval()  # GCNConv(normalize=False) on \hat A
    pyg = LocalGlobalNetwork(16, 16, 4, heads=2, local=GCNConv(16, 16)).double().eval()  # gather / scatter
    pyg.load_state_dict(model.state_dict())
    x, edge_index = graph.x.double(), graph.edge_index
    expected = pyg(x, edge_index)
    torch.testing.assert_close(model(x, edge_index), expected, atol=1e-12, rtol=0)
    ones = torch.ones(edge_index.size(1), dtype=torch.float64)
    adjacencies = [to_torch_csr_tensor(edge_index.flip(0), ones, size=graph.num_nodes)]  # row i: i's in-neighbours
    if SparseTensor is not None and hasattr(SparseTensor, "from_edge_index"):
        adjacencies.append(SparseTensor.from_edge_index(edge_index, sparse_sizes=(graph.num_nodes,) * 2).t())
    for adjacency in adjacencies:
        torch.testing.assert_close(model(x, adjacency), expected, atol=1e-12, rtol=0)


def test_global_layers_keeps_the_global_branch_in_the_first_layers_only(graph):
    torch.manual_seed(0)
    every = LocalGlobalNetwork(16, 16, 4, num_layers=3, heads=2).double().eval()
    first = LocalGlobalNetwork(16, 16, 4, num_layers=3, heads=2, global_layers=1).double().eval()
    assert len(first.attns) == 1 and "global_layers=1" in repr(first) and "global_layers" not in repr(every)
    first.load_state_dict(every.state_dict(), strict=False)  # the same weights but for the dropped branches
    with torch.no_grad():
        for attn in every.attns[1:]:
            attn.lin_out.weight.zero_()
            attn.lin_out.bias.zero_()
    x = graph.x.double()
    torch.testing.assert_close(first(x, graph.edge_index), every(x, graph.edge_index), atol=1e-12, rtol=0)


@pytest.mark.parametrize("make, error, match", [
    (lambda: LocalGlobalNetwork(16, 16, 4, num_layers=2, global_layers=3), ValueError, "global_layers must be at most"),
    (lambda: LocalGlobalNetwork(16, 16, 4, global_layers=0), ValueError, "global_layers"),
    (lambda: LocalGlobalNetwork(16, 16, 4, global_branch=False, global_layers=1), ValueError, "global branch"),
    (lambda: LocalGlobalNetwork(16, 16, 4, local="gcn"), TypeError, "local must be an nn.Module"),
    (lambda: LocalGlobalNetwork(16, 16, 4, operator="performer"), TypeError, "operator must be an nn.Module"),
    (lambda: LocalGlobalNetwork(16, 16, 4, dropout=1.0), ValueError, "dropout"),
    (lambda: LocalGlobalNetwork(16, 16, 4, heads=3), ValueError, "heads"),
    (lambda: LocalGlobalNetwork(16, 16, 4)(torch.randn(5, 8), torch.zeros(2, 0, dtype=torch.long)), ValueError,
     "x must have shape"),
    (lambda: LocalGlobalNetwork(16, 16, 4)(torch.randn(5, 16), torch.tensor([[0, 7], [1, 2]])), ValueError,
     "edge_index has node id 7 but there are only 5 nodes"),
    (lambda: LocalGlobalNetwork(16, 16, 4)(torch.randn(5, 16), torch.tensor([[0, 1], [1, -1]])), ValueError,
     "edge_index has a negative node id"),
    (lambda: LocalGlobalNetwork(16, 16, 4)(torch.randn(5, 16), torch.tensor([[0.0, 1.0], [1.0, 2.0]])), TypeError,
     "edge_index must be an integer tensor"),
    (lambda: LocalGlobalNetwork(16, 16, 4)(torch.randn(5, 16), torch.tensor([0, 1, 2])), ValueError,
     "edge_index must have shape"),
])
def test_bad_arguments_raise_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()
