"""SelfAttentionConv among PyG's tools: the propagate path equals the fast kernels, explainers see
real messages and the layer's own attention, bipartite / lazy inputs and to_hetero, every
adjacency format, Sequential's positional edge_attr, a repr that shows the settings."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data, HeteroData
from torch_geometric.explain import AttentionExplainer, Explainer, GNNExplainer
from torch_geometric.nn import Sequential, to_hetero
from torch_geometric.transforms import ToSparseTensor

from graphattn import AttentionGraph, ops
from graphattn.nn import SelfAttentionConv
from graphattn.patterns import Full, Window

pytestmark = pytest.mark.usefixtures("one_thread")


def graph(n: int = 12, e: int = 40, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (2, e), generator=gen)


# 1. one layer, two paths ---------------------------------------------------------------------


@pytest.mark.parametrize("edges, init", [
    ("edge_index", {}),                                   # auto picks a fast kernel
    ("edge_index", {"backend": "dense"}),
    ("edge_index", {"edge_dim": 3}),
    ("edge_index", {"score": "additive"}),
    ("window", {}),                                       # a pattern: its edges through propagate
])
def test_propagate_path_equals_fast_kernels_with_gradients(edges, init):
    torch.manual_seed(0)
    layer = SelfAttentionConv(6, 8, heads=2, **init).double()
    x = torch.randn(12, 6, dtype=torch.double, requires_grad=True)
    edges = graph() if edges == "edge_index" else Window(2)
    edge_attr = torch.randn(40, 3, dtype=torch.double) if "edge_dim" in init else None
    fast, (ei_fast, alpha_fast) = layer(x, edges, edge_attr, return_attention_weights=True)
    (grad_fast,) = torch.autograd.grad(fast.square().sum(), x)
    seen = []
    handle = layer.register_message_forward_hook(lambda module, inputs, out: seen.append(inputs[0]["alpha"]))
    slow, (ei_slow, alpha_slow) = layer(x, edges, edge_attr, return_attention_weights=True)
    (grad_slow,) = torch.autograd.grad(slow.square().sum(), x)
    handle.remove()
    assert len(seen) == 1, "the hook must see message() once"
    torch.testing.assert_close(slow, fast, atol=1e-12, rtol=0)
    torch.testing.assert_close(grad_slow, grad_fast, atol=1e-12, rtol=0)
    assert torch.equal(ei_slow, ei_fast)
    torch.testing.assert_close(alpha_slow, alpha_fast, atol=1e-12, rtol=0)
    torch.testing.assert_close(seen[0], alpha_fast, atol=1e-12, rtol=0)  # message() gets the layer's alpha


# 2. explainers on a trained model ------------------------------------------------------------


class TwoLayers(torch.nn.Module):
    def __init__(self, heads: int = 2):
        super().__init__()
        self.conv1 = SelfAttentionConv(5, 16, heads)
        self.conv2 = SelfAttentionConv(16, 3, 1)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x, edge_index)), edge_index)


def trained(model: torch.nn.Module, x: torch.Tensor, edge_index: torch.Tensor, y: torch.Tensor) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(model(x, edge_index), y)
        loss.backward()
        opt.step()
    return float(loss.detach())


@pytest.fixture(scope="module")
def node_task():
    torch.manual_seed(0)
    n = 30
    x = torch.randn(n, 5)
    edge_index = torch.cat([graph(n, 90, seed=1), torch.arange(n).repeat(2, 1)], dim=1)  # with self-loops
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    model = TwoLayers()
    loss = trained(model, x, edge_index, y)
    return model.eval(), x, edge_index, y, loss


def test_gnn_explainer_masks_real_messages(node_task):
    model, x, edge_index, _, loss = node_task
    assert loss < 0.5  # the model has learnt something worth explaining
    explainer = Explainer(model, GNNExplainer(epochs=30), explanation_type="model", edge_mask_type="object",
                          node_mask_type=None,
                          model_config=dict(mode="multiclass_classification", task_level="node", return_type="raw"))
    index = 3
    explanation = explainer(x, edge_index, index=index)
    mask = explanation.edge_mask
    assert mask.shape == (edge_index.size(1),) and bool(torch.isfinite(mask).all())
    # exactly the messages that reach node 3 in two layers carry gradients (PyG zeroes the rest):
    # edges into node 3, and edges into its in-neighbours
    src, dst = edge_index
    reach = (dst == index) | torch.isin(dst, src[dst == index])
    assert torch.equal(mask > 0, reach)
    assert float(mask[reach].std()) > 0.01  # trained: not one constant mask
    assert not model.conv1.explain  # the explainer switched explain mode off again


def test_attention_explainer_collects_the_layers_own_attention(node_task):
    model, x, edge_index, _, _ = node_task
    model, x = copy.deepcopy(model).double(), x.double()  # float64: kernels agree to 1e-12 (float32: 1e-5)
    explainer = Explainer(model, AttentionExplainer(reduce="max"), explanation_type="model", edge_mask_type="object",
                          model_config=dict(mode="multiclass_classification", task_level="node", return_type="raw"))
    mask = explainer(x, edge_index).edge_mask  # every node explained: no hop mask
    with torch.no_grad():
        h, (ei1, a1) = model.conv1(x, edge_index, return_attention_weights=True)
        _, (ei2, a2) = model.conv2(F.relu(h), edge_index, return_attention_weights=True)
    assert torch.equal(ei1, edge_index) and torch.equal(ei2, edge_index)
    expected = torch.cat([a1, a2], dim=1).max(dim=1).values  # max over heads and layers
    torch.testing.assert_close(mask, expected, atol=1e-12, rtol=0)


# 3. bipartite, lazy, heterogeneous -----------------------------------------------------------


def test_bipartite_equals_attention_on_the_joined_graph():
    torch.manual_seed(0)
    layer = SelfAttentionConv((5, 3), 8, heads=2, edge_dim=2).double()
    x_src, x_dst = torch.randn(7, 5, dtype=torch.double), torch.randn(4, 3, dtype=torch.double)
    edge_index = torch.unique(torch.stack([torch.randint(0, 7, (15,)), torch.randint(0, 4, (15,))]), dim=1)
    e = edge_index.size(1)  # the oracle takes edge features on distinct edges
    edge_attr = torch.randn(e, 2, dtype=torch.double)
    out, (ei, alpha) = layer((x_src, x_dst), edge_index, edge_attr, return_attention_weights=True)
    assert out.shape == (4, 8) and torch.equal(ei, edge_index)
    # the oracle: sources then destinations as one node set, queries only on the destinations
    q = F.pad(layer.lin_query(x_dst), (0, 0, 7, 0)).view(11, 2, 4)
    k, v = (F.pad(lin(x_src), (0, 0, 0, 4)).view(11, 2, 4) for lin in (layer.lin_key, layer.lin_value))
    joined = edge_index + torch.tensor([[0], [7]])
    edge_kv = layer.lin_edge(edge_attr).view(e, 2, 4)
    res = ops.attention(q, k, v, joined, edge_kv=edge_kv, backend="reference", return_weights=True)
    torch.testing.assert_close(out, layer.lin_out(res.out[7:].reshape(4, 8)), atol=1e-12, rtol=0)
    torch.testing.assert_close(alpha, res.weights[1], atol=1e-12, rtol=0)


def test_lazy_in_channels_are_set_on_the_first_call():
    layer = SelfAttentionConv(-1, 8, heads=2)
    out = layer((torch.randn(6, 5), torch.randn(3, 2)), torch.tensor([[0, 5, 2], [0, 1, 2]]))
    assert out.shape == (3, 8)
    assert layer.lin_key.weight.shape == (8, 5) and layer.lin_query.weight.shape == (8, 2)


def hetero_data(seed: int = 0) -> HeteroData:
    gen = torch.Generator().manual_seed(seed)
    data = HeteroData()
    data["paper"].x = torch.randn(20, 6, generator=gen)
    data["author"].x = torch.randn(9, 4, generator=gen)
    data["paper"].y = (data["paper"].x[:, 0] > 0).long()
    writes = torch.stack([torch.randint(0, 9, (30,), generator=gen), torch.randint(0, 20, (30,), generator=gen)])
    data["author", "writes", "paper"].edge_index = writes
    data["paper", "written_by", "author"].edge_index = writes.flip(0)
    data["paper", "cites", "paper"].edge_index = torch.cat([torch.randint(0, 20, (2, 40), generator=gen),
                                                            torch.arange(20).repeat(2, 1)], dim=1)
    return data


class Homogeneous(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = SelfAttentionConv(-1, 16, heads=2)
        self.conv2 = SelfAttentionConv(-1, 2)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).relu(), edge_index)


def test_to_hetero_runs_and_trains():
    torch.manual_seed(0)
    data = hetero_data()
    model = to_hetero(Homogeneous(), data.metadata(), aggr="sum")
    with torch.no_grad():  # lazy shapes are set here
        out = model(data.x_dict, data.edge_index_dict)
    assert out["paper"].shape == (20, 2) and out["author"].shape == (9, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = F.cross_entropy(model(data.x_dict, data.edge_index_dict)["paper"], data["paper"].y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


# 4. every adjacency, PyG's argument conventions ----------------------------------------------


def test_every_adjacency_gives_one_answer():
    from torch_geometric import EdgeIndex

    torch.manual_seed(0)
    layer = SelfAttentionConv(4, 8, heads=2).double()
    n, edge_index = 12, torch.unique(graph(), dim=1).contiguous()  # adjacency matrices merge duplicates
    x = torch.randn(n, 4, dtype=torch.double)
    expected = layer(x, edge_index)
    data = ToSparseTensor()(Data(x=x, edge_index=edge_index, num_nodes=n))  # PyG's adj_t: rows are queries
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(edge_index.size(1)), (n, n), check_invariants=True)
    for adjacency in (EdgeIndex(edge_index, sparse_size=(n, n)), data.adj_t, adj_t, adj_t.to_sparse_csr(),
                      AttentionGraph.build(data.adj_t)):
        torch.testing.assert_close(layer(x, adjacency), expected, atol=1e-12, rtol=0)


def test_sequential_passes_edge_attr_positionally():
    torch.manual_seed(0)
    conv1, conv2 = SelfAttentionConv(4, 8, 2, edge_dim=3), SelfAttentionConv(8, 2, edge_dim=3)
    model = Sequential("x, edge_index, edge_attr", [
        (conv1, "x, edge_index, edge_attr -> x"), torch.nn.ReLU(), (conv2, "x, edge_index, edge_attr -> x")])
    x, edge_index, edge_attr = torch.randn(12, 4), graph(), torch.randn(40, 3)
    expected = conv2(conv1(x, edge_index, edge_attr).relu(), edge_index, edge_attr=edge_attr)
    torch.testing.assert_close(model(x, edge_index, edge_attr), expected)


def test_repr_shows_every_setting_that_is_not_the_default():
    assert repr(SelfAttentionConv(4, 8, 2)) == "SelfAttentionConv(4, 8, heads=2)"
    layer = SelfAttentionConv((4, 3), 8, 2, score="additive", dropout=0.1, bias=False, edge_dim=5, backend="scatter",
                              project_out=False)
    assert repr(layer) == ("SelfAttentionConv((4, 3), 8, heads=2, score='additive', dropout=0.1, bias=False, "
                           "edge_dim=5, backend='scatter', project_out=False)")
    assert "projection='shared'" in repr(SelfAttentionConv(4, 8, projection="shared"))


BAD = {
    "in_channels": (lambda: SelfAttentionConv(0, 8), ValueError, "in_channels must be a positive int, -1"),
    "in_channels_triple": (lambda: SelfAttentionConv((4, 4, 4), 8), ValueError, "in_channels must be"),
    "shared_two_widths": (lambda: SelfAttentionConv((4, 3), 8, projection="shared"), ValueError, "one width"),
    "x_triple": (lambda: SelfAttentionConv(4, 8)((torch.randn(2, 4),) * 3, graph(2, 2)), ValueError, "pair"),
    "bipartite_pattern": (lambda: SelfAttentionConv(4, 8)((torch.randn(3, 4), torch.randn(2, 4)), Full()),
                          TypeError, "bipartite x needs an edge_index"),
    "bipartite_batch": (lambda: SelfAttentionConv(4, 8)((torch.randn(3, 4), torch.randn(2, 4)), graph(2, 2),
                                                       batch=torch.zeros(2, dtype=torch.long)), ValueError, "batch"),
    "bipartite_range": (lambda: SelfAttentionConv(4, 8)((torch.randn(3, 4), torch.randn(2, 4)),
                                                       torch.tensor([[0], [2]])), ValueError, r"edges\[1\] has node id 2"),
    "x_dst_width": (lambda: SelfAttentionConv((4, 3), 8)((torch.randn(3, 4), torch.randn(2, 4)), graph(2, 2)),
                    ValueError, r"x_dst must have shape \[N, 3\]"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_raises_naming_the_argument(case):
    call, error, words = BAD[case]
    with pytest.raises(error, match=words):
        call()
