"""GraphTransformer and TransformerBlock: every kind of data, dense twins, a task that needs attention."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.utils import add_self_loops

from graphattn import AttentionGraph
from graphattn.models import GraphTransformer
from graphattn.nn.attention import SelfAttentionConv
from graphattn.nn.block import TransformerBlock
from graphattn.patterns import Full, Global, GraphEdges, SelfLoops, VirtualNodes, Window

pytestmark = pytest.mark.usefixtures("one_thread")


class DirectionBias(nn.Module):
    """A minimal learned score-side encoding: one bias per head for left / self / right keys."""

    def __init__(self, heads: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3, heads))

    def forward(self, q, k, pos):
        def bias(q_idx, k_idx):
            return self.weight[(pos[k_idx] - pos[q_idx]).clamp(-1, 1) + 1]  # (..., H)

        return q, k, bias


class TableEncoding(nn.Module):
    """A minimal feature-side encoding: a learned vector per integer position."""

    def __init__(self, max_len: int, channels: int):
        super().__init__()
        self.table = nn.Embedding(max_len, channels)

    def forward(self, pos):
        return self.table(pos.long())


def _seeded(seed: int = 0) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _ring(n: int) -> torch.Tensor:
    """A directed ring plus chords, in both directions: a small connected graph."""
    src = torch.arange(n)
    dst = (src + 1) % n
    chords = torch.tensor([[0, n // 2], [1, n // 2 + 1]]).T
    ei = torch.cat([torch.stack([src, dst]), chords], dim=1)
    return torch.cat([ei, ei.flip(0)], dim=1)


def _grads_finite(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name


# ---- dense twin -------------------------------------------------------------------------------

def test_block_with_full_pattern_equals_torch_encoder_layer():
    _seeded()
    ref = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0, activation="gelu",
                                     batch_first=True, norm_first=True).double().eval()
    block = TransformerBlock(16, 4, ffn_ratio=2).double().eval()
    block.attn = SelfAttentionConv.from_torch(ref.self_attn)
    with torch.no_grad():
        for mine, theirs in ((block.norm1, ref.norm1), (block.norm2, ref.norm2),
                             (block.ffn[0], ref.linear1), (block.ffn[2], ref.linear2)):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
    x = torch.randn(3, 5, 16, dtype=torch.float64)  # (B, L, F)
    expected = ref(x)
    got = block(x.reshape(15, 16), AttentionGraph.build(Full(), lengths=[5, 5, 5]))
    torch.testing.assert_close(got, expected.reshape(15, 16))


# ---- every kind of data -------------------------------------------------------------------------

def test_sequence_batch_window_pattern_is_local_and_block_diagonal():
    _seeded()
    model = GraphTransformer(6, 16, 3, num_layers=2, heads=2, pattern=Window(1)).eval()
    batch = torch.tensor([0] * 7 + [1] * 5)
    x = torch.randn(12, 6, requires_grad=True)
    out = model(x, batch=batch)
    assert out.shape == (12, 3)
    out.sum().backward()
    _grads_finite(model)

    # Two Window(1) layers see 2 steps each way, never across sequences.
    x2 = x.detach().clone()
    x2[3] += 1.0  # sequence 0, position 3
    changed = (model(x2, batch=batch) - out).abs().amax(dim=1) > 1e-6
    assert changed.tolist() == [i in range(1, 6) for i in range(12)]


def test_token_ids_with_embedding_and_cls_pooling_match_one_sequence_at_a_time():
    _seeded()
    model = GraphTransformer(50, 16, 2, num_layers=2, heads=4, pattern=Window(1) | Global((0,)),
                             pooling="cls", embedding=True).eval()
    ids = torch.randint(0, 50, (9,))
    batch = torch.tensor([0] * 4 + [1] * 5)
    out = model(ids, batch=batch)
    assert out.shape == (2, 2)
    torch.testing.assert_close(out[0], model(ids[:4])[0])
    torch.testing.assert_close(out[1], model(ids[4:])[0])
    model.train()
    model(ids, batch=batch).sum().backward()
    assert model.lin_in.weight.grad[ids].abs().sum() > 0


def test_image_patches_full_pattern_mean_pooling_is_permutation_invariant():
    _seeded()
    model = GraphTransformer(12, 16, 5, pattern=Full(), pooling="mean").eval()
    patches = torch.randn(2 * 16, 12)  # two 4x4 images of 12-dim patches
    batch = torch.arange(2).repeat_interleave(16)
    out = model(patches, batch=batch)
    assert out.shape == (2, 5)
    # Without positions, Full attention + mean pooling is a set function of each image's patches.
    perm = torch.cat([torch.randperm(16), 16 + torch.randperm(16)])
    torch.testing.assert_close(model(patches[perm], batch=batch), out)
    model.train()
    model(patches, batch=batch).square().mean().backward()
    _grads_finite(model)


def test_real_graph_edge_index_equals_graph_edges_pattern():
    _seeded()
    n = 8
    ei = _ring(n)
    model = GraphTransformer(4, 16, 3).eval()
    x = torch.randn(n, 4)
    from_data = model(x, add_self_loops(ei, num_nodes=n)[0])
    from_pattern = model(x, GraphEdges(ei, n) | SelfLoops())
    assert from_data.shape == (n, 3)
    torch.testing.assert_close(from_data, from_pattern)
    model.train()
    model(x, GraphEdges(ei, n) | SelfLoops()).sum().backward()


def test_virtual_nodes_are_appended_learned_and_dropped():
    _seeded()
    n = 8
    pattern = GraphEdges(_ring(n), n) | SelfLoops() | VirtualNodes(1)
    model = GraphTransformer(4, 16, 3, pattern=pattern, dropout=0.0)
    assert model.num_virtual_nodes == 1
    x = torch.randn(n, 4)
    out, weights = model(x, return_attention_weights=True)
    assert out.shape == (n, 3)  # one row per real node
    edge_index, alpha = weights[0]
    assert int(edge_index.max()) == n  # attention ran on n + 1 nodes
    assert alpha.shape == (edge_index.size(1), 4)
    out.sum().backward()
    assert model.virtual.grad is not None and model.virtual.grad.abs().sum() > 0
    # The virtual node is a real channel of information: changing it changes every node.
    with torch.no_grad():
        model.virtual.add_(torch.randn_like(model.virtual))  # not a constant: LayerNorm removes shifts
    assert ((model(x) - out).abs().amax(dim=1) > 1e-6).all()


def test_virtual_nodes_per_sequence_in_a_batch_match_one_sequence_at_a_time():
    _seeded()
    model = GraphTransformer(5, 16, 2, pattern=Window(1) | VirtualNodes(2), pooling="mean").eval()
    x = torch.randn(11, 5)
    batch = torch.tensor([0] * 6 + [1] * 5)
    out = model(x, batch=batch)
    assert out.shape == (2, 2)
    torch.testing.assert_close(out[0], model(x[:6])[0])
    torch.testing.assert_close(out[1], model(x[6:])[0])


def test_graph_classification_on_a_pyg_batch():
    _seeded()
    graphs = [Data(x=torch.randn(n, 4), edge_index=add_self_loops(_ring(n), num_nodes=n)[0]) for n in (6, 9)]
    data = Batch.from_data_list(graphs)
    model = GraphTransformer(4, 16, 3, pooling="mean").eval()
    out = model(data.x, data.edge_index, batch=data.batch)
    assert out.shape == (2, 3)
    for b, g in enumerate(graphs):
        torch.testing.assert_close(out[b], model(g.x, g.edge_index)[0])
    model.train()
    model(data.x, data.edge_index, batch=data.batch).sum().backward()
    _grads_finite(model)


def test_edge_features_reach_the_attention():
    _seeded()
    n = 7
    ei = add_self_loops(_ring(n), num_nodes=n)[0]
    model = GraphTransformer(4, 16, 2, edge_dim=3).eval()
    x, edge_attr = torch.randn(n, 4), torch.randn(ei.size(1), 3)
    out = model(x, ei, edge_attr=edge_attr)
    assert out.shape == (n, 2)
    assert not torch.allclose(model(x, ei, edge_attr=edge_attr + 1.0), out)
    with pytest.raises(ValueError, match="edge_attr"):
        model(x, ei)


# ---- a task that needs attention ----------------------------------------------------------------

def _left_neighbour_task(gen: torch.Generator, num_seq: int, length: int, classes: int):
    """Each token carries a class (one-hot + noise); its label is the class of its left neighbour."""
    cls = torch.randint(0, classes, (num_seq, length), generator=gen)
    x = nn.functional.one_hot(cls, classes).float() + 0.1 * torch.randn(num_seq, length, classes, generator=gen)
    y = torch.roll(cls, 1, dims=1)
    scored = torch.arange(length).repeat(num_seq) > 0  # position 0 has no left neighbour
    batch = torch.arange(num_seq).repeat_interleave(length)
    return x.reshape(-1, classes), y.reshape(-1), scored, batch


def _train_and_score(pattern, steps: int = 25, position=None) -> tuple[float, float, float]:
    gen = _seeded(0)
    classes = 4
    model = GraphTransformer(classes, 32, classes, num_layers=1, heads=2, pattern=pattern, dropout=0.0,
                             position=position)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y, scored, batch = _left_neighbour_task(gen, 16, 10, classes)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x, batch=batch)[scored], y[scored])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    x, y, scored, batch = _left_neighbour_task(gen, 64, 12, classes)
    with torch.no_grad():
        acc = (model(x, batch=batch).argmax(-1)[scored] == y[scored]).float().mean().item()
    return losses[0], losses[-1], acc


def test_learns_left_neighbour_copy_only_with_attention_along_the_window():
    first, last, acc = _train_and_score(Window(left=1, right=0))
    assert last < 0.3 * first
    assert acc > 0.9
    # The same model attending only to itself has no way to see its neighbour: chance (0.25).
    _, _, acc_self = _train_and_score(SelfLoops())
    assert acc_self < 0.4


def test_score_side_position_breaks_the_left_right_symmetry_of_a_window():
    # Window(1) offers both neighbours; without positions the left one cannot be told apart.
    _, _, acc_plain = _train_and_score(Window(1))
    _, _, acc_position = _train_and_score(Window(1), position=DirectionBias(2))
    assert acc_plain < 0.8
    assert acc_position > 0.9


# ---- encodings ----------------------------------------------------------------------------------

def test_feature_encoding_uses_positions_within_each_sequence():
    _seeded()
    model = GraphTransformer(3, 8, 2, pattern=Full(), pooling="mean", feature_encoding=TableEncoding(8, 8)).eval()
    x = torch.randn(11, 3)
    batch = torch.tensor([0] * 5 + [1] * 6)
    out = model(x, batch=batch)
    pos = torch.cat([torch.arange(5), torch.arange(6)])
    torch.testing.assert_close(model(x, batch=batch, pos=pos), out)  # the default pos
    # Positions make the model order-aware: reversing a sequence now changes its output.
    rev = torch.cat([torch.arange(4, -1, -1), 5 + torch.arange(6)])
    assert not torch.allclose(model(x[rev], batch=batch)[0], out[0])
    torch.testing.assert_close(model(x[rev], batch=batch)[1], out[1])

    class Wrong(nn.Module):
        def forward(self, pos):
            return torch.zeros(pos.size(0), 3)

    with pytest.raises(ValueError, match="feature_encoding"):
        GraphTransformer(3, 8, 2, pattern=Full(), feature_encoding=Wrong())(x)


def test_position_module_is_shared_by_all_layers():
    position = DirectionBias(2)
    model = GraphTransformer(3, 8, 2, num_layers=3, heads=2, pattern=Window(1), position=position)
    assert all(block.attn.position is position for block in model.blocks)
    assert sum(p is position.weight for p in model.parameters()) == 1
    model(torch.randn(6, 3)).sum().backward()
    assert position.weight.grad.abs().sum() > 0


# ---- bad input ------------------------------------------------------------------------------------

def test_missing_edges_raises():
    model = GraphTransformer(4, 8, 2)
    with pytest.raises(ValueError, match="edges is required"):
        model(torch.randn(3, 4))


def test_wrong_x_raises():
    model = GraphTransformer(4, 8, 2, pattern=Full())
    with pytest.raises(ValueError, match="in_channels=4"):
        model(torch.randn(3, 5))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.ones(3, 4, dtype=torch.long))
    ids = GraphTransformer(10, 8, 2, pattern=Full(), embedding=True)
    with pytest.raises(ValueError, match="token ids"):
        ids(torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="1-D integer"):
        ids(torch.randn(2, 10))


def test_bad_edges_and_arguments_raise():
    model = GraphTransformer(4, 8, 2, pattern=Full())
    with pytest.raises(TypeError, match="edges must be"):
        model(torch.randn(3, 4), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="edges has node id 5"):
        model(torch.randn(3, 4), torch.tensor([[0, 5], [1, 0]]))
    with pytest.raises(ValueError, match="virtual nodes"):
        model(torch.randn(3, 4), Full() | VirtualNodes(1))
    with pytest.raises(ValueError, match="pooling"):
        GraphTransformer(4, 8, 2, pooling="sum")
    with pytest.raises(ValueError, match="hidden_channels"):
        GraphTransformer(4, 10, 2, heads=4)
    with pytest.raises(TypeError, match="pattern"):
        GraphTransformer(4, 8, 2, pattern=3)
    cls = GraphTransformer(4, 8, 2, pattern=Full(), pooling="cls")
    with pytest.raises(ValueError, match="cls"):
        cls(torch.randn(4, 4), batch=torch.tensor([0, 0, 2, 2]))  # graph 1 is empty
    virtual = GraphTransformer(4, 8, 2, pattern=Full() | VirtualNodes(1), position=DirectionBias(4))
    with pytest.raises(ValueError, match="pos"):
        virtual(torch.randn(4, 4), pos=torch.arange(4))


def test_pattern_text_repr_and_reset_parameters():
    model = GraphTransformer(4, 8, 2, pattern="Window(1) | VirtualNodes(1)", pooling="cls")
    assert repr(model) == ("GraphTransformer(4, 8, 2, num_layers=2, heads=4, "
                           "pattern=Window(radius=1) | VirtualNodes(count=1), pooling='cls')")
    before = [p.detach().clone() for p in model.parameters()]
    model.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_input_norm_makes_the_model_blind_to_the_scale_of_the_input_projection():
    torch.manual_seed(0)
    x = torch.rand(12, 5) / 50  # tiny features, like row-normalised bag-of-words
    for input_norm, blind in ((True, True), (False, False)):
        torch.manual_seed(1)
        model = GraphTransformer(5, 8, 3, num_layers=1, heads=2, pattern=Full(), input_norm=input_norm).eval()
        before = model(x)
        with torch.no_grad():
            model.lin_in.weight.mul_(100)
            model.lin_in.bias.mul_(100)
        assert torch.allclose(model(x), before, atol=1e-4) == blind
