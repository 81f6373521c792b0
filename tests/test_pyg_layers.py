"""graphattn.nn.GATConv, GATv2Conv and TransformerConv equal PyG's layers: the same seed gives the same
weights (and ``state_dict``), and the same weights give PyG's outputs, attention weights (in PyG's
formats) and gradients on random graphs, every adjacency form, bipartite inputs, edge features,
``size=``, lazy inputs and attention dropout; their propagate twins feed PyG's explainers."""

from __future__ import annotations

import pytest
import torch
import torch_geometric.nn as pyg_nn
from hypothesis import given, settings
from hypothesis import strategies as st
from pyg_support import LAYERS, forms, twins
from torch_geometric.data import HeteroData
from torch_geometric.explain import AttentionExplainer, Explainer, GNNExplainer
from torch_geometric.typing import SparseTensor

import graphattn.nn as ga_nn

pytestmark = pytest.mark.usefixtures("one_thread")

#: Options each layer draws from, beyond heads / concat / edge_dim.
OPTIONS = {
    "GATConv": {"add_self_loops": [True, False], "residual": [False, True], "negative_slope": [0.2, 0.5],
                "fill_value": ["mean", 0.5, "max"], "bias": [True, False]},
    "GATv2Conv": {"add_self_loops": [True, False], "residual": [False, True], "share_weights": [False, True],
                  "fill_value": ["mean", "add"], "bias": [True, False]},
    "TransformerConv": {"beta": [False, True], "root_weight": [True, False], "bias": [True, False]},
}


@st.composite
def layer_cases(draw):
    name = draw(st.sampled_from(LAYERS))
    bipartite = draw(st.booleans()) and not (name == "GATv2Conv" and draw(st.booleans()))
    n_src = draw(st.integers(1, 12))
    n_dst = draw(st.integers(1, 12)) if bipartite else n_src
    e = draw(st.integers(0, 40))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 10_000)))
    ei = torch.stack([torch.randint(n_src, (e,), generator=gen), torch.randint(n_dst, (e,), generator=gen)])
    if e and draw(st.booleans()):
        ei = torch.cat([ei, ei[:, : draw(st.integers(1, e))]], dim=1)  # duplicate edges
    options = {key: draw(st.sampled_from(values)) for key, values in OPTIONS[name].items()}
    options.update(heads=draw(st.integers(1, 3)), concat=draw(st.booleans()), edge_dim=draw(st.sampled_from([None, 3])))
    x_src = torch.randn(n_src, 5, generator=gen, dtype=torch.float64)
    x_dst = torch.randn(n_dst, 4, generator=gen, dtype=torch.float64) if bipartite else None
    edge_attr = torch.randn(ei.size(1), 3, generator=gen, dtype=torch.float64) if options["edge_dim"] else None
    return name, options, x_src, x_dst, ei, edge_attr


@settings(max_examples=40, deadline=None)
@given(layer_cases())
def test_equals_pyg_outputs_attention_weights_and_gradients_on_random_graphs(case):
    name, options, x_src, x_dst, ei, edge_attr = case
    in_channels = (5, 4) if x_dst is not None else 5
    ours, theirs = twins(name, in_channels, 6, **options)
    ours, theirs = ours.double(), theirs.double()
    x = (x_src, x_dst) if x_dst is not None else x_src
    try:
        theirs(x, ei, edge_attr)
    except (RuntimeError, IndexError, ValueError) as err:  # e.g. bipartite self-loops filled past N_dst
        with pytest.raises(type(err)):
            ours(x, ei, edge_attr)
        return
    results = []
    for layer in (theirs, ours):
        xs = x_src.clone().requires_grad_(True)
        xd = x_dst.clone().requires_grad_(True) if x_dst is not None else None
        x = (xs, xd) if x_dst is not None else xs
        out, (edge_index, alpha) = layer(x, ei, edge_attr, return_attention_weights=True)
        probe = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        leaves = [xs] + ([xd] if xd is not None else []) + list(layer.parameters())
        grads = torch.autograd.grad((out * probe).sum() + alpha.square().sum(), leaves, allow_unused=True)
        results.append((out, edge_index, alpha, grads))
    (want, want_index, want_alpha, want_grads), (out, edge_index, alpha, grads) = results
    torch.testing.assert_close(out, want, atol=1e-10, rtol=0)
    assert torch.equal(edge_index, want_index)
    torch.testing.assert_close(alpha, want_alpha, atol=1e-10, rtol=0)
    for got, expected in zip(grads, want_grads):
        if expected is None:
            assert got is None or not got.abs().sum()
        else:
            torch.testing.assert_close(got, expected, atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", LAYERS)
def test_the_same_seed_gives_pyg_weights_and_a_pyg_state_dict_loads(name):
    ours, theirs = twins(name, 8, 4, heads=2, edge_dim=3)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (key, mine), (_, pyg) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert torch.equal(mine, pyg), key
    other = getattr(pyg_nn, name)(8, 4, heads=2, edge_dim=3)
    ours.load_state_dict(other.state_dict())  # strict: every name matches
    assert repr(ours) == repr(theirs) == f"{name}(8, 4, heads=2)"


def _compare_weights(name: str, got: object, want: object) -> None:
    """PyG's attention weights, whatever their format."""
    if isinstance(want, SparseTensor):
        assert isinstance(got, SparseTensor)
        for a, b in zip(got.coo(), want.coo()):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
        return
    (adj, alpha), (want_adj, want_alpha) = got, want
    torch.testing.assert_close(alpha, want_alpha, atol=1e-10, rtol=0)
    assert adj.layout == want_adj.layout and adj.shape == want_adj.shape
    if adj.layout == torch.strided:
        assert torch.equal(adj, want_adj)
    else:
        torch.testing.assert_close(adj.to_dense(), want_adj.to_dense(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("bipartite", [False, True])
@pytest.mark.parametrize("name", LAYERS)
def test_every_adjacency_form_gives_pyg_outputs_and_pyg_weight_formats(name, bipartite):
    n_src, n_dst = (7, 4) if bipartite else (7, 7)
    gen = torch.Generator().manual_seed(1)
    ei = torch.stack([torch.randint(n_src, (20,), generator=gen), torch.randint(n_dst, (20,), generator=gen)])
    ei = torch.unique(ei, dim=1).contiguous()  # the sparse forms merge duplicates
    ours, theirs = twins(name, (5, 3) if bipartite else 5, 4, heads=2)
    ours, theirs = ours.double(), theirs.double()
    x_src = torch.randn(n_src, 5, generator=gen, dtype=torch.float64)
    x = (x_src, torch.randn(n_dst, 3, generator=gen, dtype=torch.float64)) if bipartite else x_src
    for form, adj in forms(ei, n_src, n_dst).items():
        try:
            want, want_w = theirs(x, adj, return_attention_weights=True)
        except (ValueError, RuntimeError):  # PyG's layers refuse an uncoalesced COO or a CSC adj_t here and there
            assert form in ("torch COO adj_t", "torch CSC adj_t")
            continue
        got, got_w = ours(x, adj, return_attention_weights=True)
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0, msg=form)
        _compare_weights(name, got_w, want_w)


def test_gat_bipartite_without_destination_features_and_size():
    ours, theirs = twins("GATConv", (5, 3), 4, heads=2)
    x_src, ei = torch.randn(6, 5), torch.tensor([[0, 1, 2, 5, 4], [0, 0, 1, 1, 2]])
    for size in [(6, 3), None]:
        torch.testing.assert_close(ours((x_src, None), ei, size=size), theirs((x_src, None), ei, size=size))
    with pytest.raises(ValueError, match="size says 6 source and 2 destination nodes"):
        ours((x_src, torch.randn(3, 3)), ei, size=(6, 2))


@pytest.mark.parametrize("name", LAYERS)
def test_attention_dropout_draws_what_pyg_draws(name):
    ours, theirs = twins(name, 6, 4, heads=2, dropout=0.5)
    x, ei = torch.randn(10, 6), torch.randint(10, (2, 40), generator=torch.Generator().manual_seed(2))
    outs = []
    for layer in (ours.train(), theirs.train()):
        torch.manual_seed(7)
        outs.append(layer(x, ei, return_attention_weights=True))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1][1], outs[1][1][1])  # GAT: after dropout, TransformerConv: before
    assert not torch.equal(outs[0][0], ours.eval()(x, ei))


@pytest.mark.parametrize("name", LAYERS)
def test_lazy_in_channels_are_set_on_the_first_call_as_pyg_sets_them(name):
    ours, theirs = twins(name, -1, 4, heads=2)
    x, ei = torch.randn(9, 7), torch.randint(9, (2, 30), generator=torch.Generator().manual_seed(3))
    torch.manual_seed(4)
    want = theirs(x, ei)
    torch.manual_seed(4)
    torch.testing.assert_close(ours(x, ei), want)


def test_one_dimensional_edge_weights_with_edge_dim_one():
    ours, theirs = twins("GATConv", 6, 4, heads=2, edge_dim=1, fill_value=0.5)
    x, ei = torch.randn(8, 6), torch.randint(8, (2, 25), generator=torch.Generator().manual_seed(5))
    weight = torch.rand(25)
    torch.testing.assert_close(ours(x, ei, weight), theirs(x, ei, weight))
    torch.testing.assert_close(ours(x, ei, weight), ours(x, ei, weight[:, None]))


def test_gat_with_edge_features_on_a_sparse_tensor_refuses_self_loops_as_pyg_does():
    conv = ga_nn.GATConv(6, 4, edge_dim=2)
    adj = SparseTensor.from_edge_index(torch.tensor([[0, 1], [1, 0]]), torch.randn(2, 2), (2, 2)).t()
    with pytest.raises(NotImplementedError, match="add_self_loops"):
        conv(torch.randn(2, 6), adj)


def test_transformer_reads_edge_features_from_a_sparse_tensor():
    ours, theirs = twins("TransformerConv", 6, 4, heads=2, edge_dim=3)
    ei = torch.tensor([[0, 1, 2, 3, 3], [1, 0, 1, 2, 0]])
    attr = torch.randn(5, 3)
    adj = SparseTensor.from_edge_index(ei, attr, sparse_sizes=(4, 4)).t()
    x = torch.randn(4, 6)
    torch.testing.assert_close(ours(x, adj), theirs(x, adj))
    torch.testing.assert_close(ours(x, adj), ours(x, ei, attr))


@pytest.mark.parametrize("algorithm", [AttentionExplainer, lambda: GNNExplainer(epochs=20)])
@pytest.mark.parametrize("name", LAYERS)
def test_pyg_explainers_see_what_they_see_on_pyg(name, algorithm):
    masks = []
    gen = torch.Generator().manual_seed(6)
    x, ei = torch.randn(10, 5, generator=gen), torch.randint(10, (2, 30), generator=gen)
    for layer in twins(name, 5, 4, heads=2):
        model = pyg_nn.Sequential("x, edge_index", [(layer, "x, edge_index -> x")])
        explainer = Explainer(model, algorithm(), explanation_type="model", edge_mask_type="object",
                              model_config=dict(mode="regression", task_level="node", return_type="raw"))
        torch.manual_seed(9)  # GNNExplainer's mask starts random
        masks.append(explainer(x, ei, index=3).edge_mask)
    torch.testing.assert_close(masks[0], masks[1])
    assert masks[0].abs().sum() > 0


def hetero_data() -> HeteroData:
    gen = torch.Generator().manual_seed(8)
    data = HeteroData()
    data["paper"].x, data["author"].x = torch.randn(12, 6, generator=gen), torch.randn(7, 3, generator=gen)
    writes = torch.stack([torch.randint(7, (20,), generator=gen), torch.randint(12, (20,), generator=gen)])
    data["author", "writes", "paper"].edge_index = writes
    data["paper", "rev_writes", "author"].edge_index = writes.flip(0)
    data["paper", "cites", "paper"].edge_index = torch.randint(12, (2, 30), generator=gen)
    return data


@pytest.mark.parametrize("name", LAYERS)
def test_to_hetero_and_hetero_conv_give_pyg_outputs(name):
    data = hetero_data()
    options = {} if name == "TransformerConv" else {"add_self_loops": False}  # bipartite types: no self-loops
    outs = []
    for nn in (ga_nn, pyg_nn):
        conv = getattr(nn, name)
        torch.manual_seed(0)
        model = pyg_nn.Sequential("x, edge_index", [(conv((-1, -1), 4, heads=2, **options), "x, edge_index -> x"),
                                                    torch.nn.ReLU()])
        model = pyg_nn.to_hetero(model, data.metadata(), aggr="sum")
        hetero = pyg_nn.HeteroConv({et: conv((-1, -1), 4, heads=2, **options) for et in data.edge_types}, aggr="sum")
        outs.append((model(data.x_dict, data.edge_index_dict), hetero(data.x_dict, data.edge_index_dict)))
    for ours, theirs in zip(*outs):
        for node_type in ours:
            torch.testing.assert_close(ours[node_type], theirs[node_type])
