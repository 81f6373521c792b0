"""GraphAttentionNetwork: the dot-product GAT written by hand, sparse inputs, virtual nodes, a task."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data
from torch_geometric.utils import add_self_loops, to_dense_adj

from graphattn.models import GraphAttentionNetwork, GraphTransformer
from graphattn.patterns import Full, GraphEdges, SelfLoops, VirtualNodes, Window

pytestmark = pytest.mark.usefixtures("one_thread")


def _ring(n: int) -> torch.Tensor:
    src = torch.arange(n)
    ei = torch.stack([src, (src + 1) % n])
    ei = torch.cat([ei, torch.tensor([[0], [n // 2]])], dim=1)
    return torch.cat([ei, ei.flip(0)], dim=1)


def _attend(z: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    """Dense dot-product attention with q = k = v = z, per head; ``mask[i, j]``: i attends to j."""
    n, width = z.shape
    q = z.view(n, heads, width // heads)
    scores = torch.einsum("ihc,jhc->hij", q, q) / (width // heads) ** 0.5
    alpha = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    return torch.einsum("hij,jhc->ihc", alpha, q).reshape(n, width)


def test_equals_dot_product_gat_written_by_hand():
    torch.manual_seed(0)
    n, ei = 9, _ring(9)
    model = GraphAttentionNetwork(5, 8, 3, num_layers=3, heads=2, out_heads=2).double().eval()
    x = torch.randn(n, 5, dtype=torch.float64)
    mask = (to_dense_adj(add_self_loops(ei, num_nodes=n)[0], max_num_nodes=n)[0] > 0).T  # [i, j]: j -> i
    h = F.elu(_attend(model.lin_in(x), mask, 2))  # layer 1 attends with W_in x itself
    h = F.elu(_attend(model.convs[1].lin_query(h), mask, 2))  # then one shared W per layer
    want = _attend(model.convs[2].lin_query(h), mask, 2).view(n, 2, 3).mean(dim=1)  # out heads averaged
    got = model(x, GraphEdges(ei, n) | SelfLoops())
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    assert [c.projection for c in model.convs] == ["none", "shared", "shared"]
    assert all(c.lin_out is None for c in model.convs)


def test_weight_count_is_that_of_gat():
    # GAT on Cora: 1433 -> 8 x 8 heads, 64 -> 7; plus one bias per projection here
    model = GraphAttentionNetwork(1433, 64, 7)
    assert sum(p.numel() for p in model.parameters()) == (1433 * 64 + 64) + (64 * 7 + 7)


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_features_equal_dense_features(layout):
    torch.manual_seed(0)
    n, ei = 10, _ring(10)
    x = torch.rand(n, 30) * (torch.rand(n, 30) < 0.1)
    sparse = x.to_sparse() if layout == "coo" else x.to_sparse_csr()
    model = GraphAttentionNetwork(30, 8, 3, heads=2, input_dropout=0.5).eval()
    edges = GraphEdges(ei, n) | SelfLoops()
    torch.testing.assert_close(model(sparse, edges), model(x, edges))
    model.train()  # input dropout on the stored entries only: zeros stay zero, kept ones are doubled
    dropped = model._drop_input(sparse).to_dense()
    kept = dropped != 0
    assert not (kept & (x == 0)).any()
    torch.testing.assert_close(dropped[kept], 2 * x[kept])
    model(sparse, edges).sum().backward()
    assert model.lin_in.weight.grad is not None


def test_virtual_nodes_pooling_and_weights_per_layer():
    torch.manual_seed(0)
    pattern = Window(1) | VirtualNodes(1)
    model = GraphAttentionNetwork(4, 8, 2, heads=2, pattern=pattern, pooling="mean").eval()
    x, batch = torch.randn(11, 4), torch.tensor([0] * 6 + [1] * 5)
    out, weights = model(x, batch=batch, return_attention_weights=True)
    assert out.shape == (2, 2) and len(weights) == 2
    assert weights[0][1].shape[1] == 2 and weights[1][1].shape[1] == 1  # heads, then out_heads
    assert int(weights[0][0].max()) == 12  # 11 real nodes + 2 virtual ones, numbered from 0
    torch.testing.assert_close(out[0], model(x[:6])[0])
    torch.testing.assert_close(out[1], model(x[6:])[0])
    model.train()
    model(x, batch=batch).sum().backward()
    assert model.virtual.grad.abs().sum() > 0


def test_graph_classification_on_a_pyg_batch_and_one_layer():
    torch.manual_seed(0)
    graphs = [Data(x=torch.randn(n, 4), edge_index=add_self_loops(_ring(n), num_nodes=n)[0]) for n in (5, 8)]
    data = Batch.from_data_list(graphs)
    model = GraphAttentionNetwork(4, 8, 3, num_layers=1, heads=2, pooling="cls").eval()
    assert model.convs[0].projection == "shared"  # a lone layer must still project to the output
    out = model(data.x, data.edge_index, batch=data.batch)
    assert out.shape == (2, 3)
    for b, g in enumerate(graphs):
        torch.testing.assert_close(out[b], model(g.x, g.edge_index)[0])


def test_separate_projections_and_full_attention():
    torch.manual_seed(0)
    model = GraphAttentionNetwork(4, 8, 3, heads=2, pattern=Full(), projection="separate", attn_dropout=0.0).eval()
    assert all(c.lin_key is not None for c in model.convs)
    perm = torch.randperm(7)
    x = torch.randn(7, 4)
    torch.testing.assert_close(model(x[perm]), model(x)[perm])  # Full() is permutation-equivariant


def test_residual_adds_a_linear_skip_to_every_layer():
    torch.manual_seed(0)
    plain = GraphAttentionNetwork(4, 8, 3, heads=2, pattern=Window(1)).double().eval()
    skipped = GraphAttentionNetwork(4, 8, 3, heads=2, pattern=Window(1), residual=True).double().eval()
    skipped.load_state_dict(plain.state_dict(), strict=False)
    assert [s.weight.shape for s in skipped.skips] == [(8, 8), (3, 8)]
    x = torch.randn(6, 4, dtype=torch.float64)
    with torch.no_grad():
        for skip in skipped.skips:
            skip.weight.zero_()
    torch.testing.assert_close(skipped(x), plain(x))
    with torch.no_grad():
        skipped.skips[1].weight.normal_()
    h1 = F.elu(skipped.convs[0](skipped.lin_in(x), Window(1)))
    want = plain(x) + skipped.skips[1](h1)  # the last layer's skip lands on the output
    torch.testing.assert_close(skipped(x), want, atol=1e-12, rtol=0)


def _left_neighbour(gen: torch.Generator, num_seq: int, length: int, classes: int = 4):
    cls = torch.randint(0, classes, (num_seq, length), generator=gen)
    x = F.one_hot(cls, classes).float() + 0.1 * torch.randn(num_seq, length, classes, generator=gen)
    y = torch.roll(cls, 1, dims=1)
    scored = torch.arange(length).repeat(num_seq) > 0
    return x.reshape(-1, classes), y.reshape(-1), scored, torch.arange(num_seq).repeat_interleave(length)


# Separate projections: a shared q = k scores a node's own key highest, so it learns to look past
# itself only partly (~0.7 here), see SelfAttentionConv's docstring.
@pytest.mark.parametrize("pattern, projection, learns", [
    (Window(left=1, right=0), "separate", True), (SelfLoops(), "separate", False), (SelfLoops(), "shared", False),
])
def test_learns_left_neighbour_copy_only_along_the_window(pattern, projection, learns):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = GraphAttentionNetwork(4, 16, 4, heads=2, pattern=pattern, dropout=0.0, attn_dropout=0.0,
                                  projection=projection)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    x, y, scored, batch = _left_neighbour(gen, 16, 10)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(x, batch=batch)[scored], y[scored]).backward()
        opt.step()
    x, y, scored, batch = _left_neighbour(gen, 64, 12)
    with torch.no_grad():
        acc = (model.eval()(x, batch=batch).argmax(-1)[scored] == y[scored]).float().mean().item()
    assert (acc > 0.9) if learns else (acc < 0.4)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"projection": "tied"}, ValueError, "projection must be one of"),
    ({"out_heads": 0}, ValueError, "out_heads"),
    ({"dropout": 1.0}, ValueError, "dropout must be in"),
    ({"attn_dropout": -0.1}, ValueError, "attn_dropout must be in"),
    ({"input_dropout": 1.0}, ValueError, "input_dropout must be in"),
    ({"heads": 3}, ValueError, "hidden_channels"),
    ({"pooling": "sum"}, ValueError, "pooling"),
    ({"projection": "none"}, ValueError, "in_channels"),
    ({"residual": "yes"}, TypeError, "residual must be a bool"),  # the last layer cannot reach 2 outputs
])
def test_bad_arguments_raise_naming_them(kwargs, error, words):
    with pytest.raises(error, match=words):
        GraphAttentionNetwork(4, 8, 2, **kwargs)


def test_bad_inputs_raise_like_the_transformer():
    for model in (GraphAttentionNetwork(4, 8, 2, pattern=Full()), GraphTransformer(4, 8, 2, pattern=Full())):
        with pytest.raises(ValueError, match="in_channels=4"):
            model(torch.randn(3, 5))
        with pytest.raises(ValueError, match="edges has node id 5"):
            model(torch.randn(3, 4), torch.tensor([[0, 5], [1, 0]]))
        with pytest.raises(ValueError, match="virtual nodes"):
            model(torch.randn(3, 4), Full() | VirtualNodes(1))
        with pytest.raises(ValueError, match="x contains NaN"):
            model(torch.full((3, 4), float("nan")))
    assert repr(GraphAttentionNetwork(4, 8, 2, pattern="Window(1)")) == (
        "GraphAttentionNetwork(4, 8, 2, num_layers=2, heads=8, pattern=Window(radius=1), pooling=None)")


def test_reset_parameters_redraws_every_layer():
    model = GraphAttentionNetwork(4, 8, 2, heads=2, pattern=Window(1) | VirtualNodes(1))
    before = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
