"""Positional encodings: closed forms, dense twins on every backend, invariances, PyG parity."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_support import SWEPT_BACKENDS
from torch_geometric.data import Data
from torch_geometric.transforms import AddLaplacianEigenvectorPE, AddRandomWalkPE
from torch_geometric.utils import from_networkx

from graphattn import ops
from graphattn.nn import (
    ALiBi,
    Compose,
    LaplacianEncoding,
    LearnedEncoding,
    RandomWalkEncoding,
    RelativePositionBias,
    RotaryEncoding,
    SelfAttentionConv,
    ShortestPathBias,
    SinusoidalEncoding,
)
from graphattn.patterns import Causal, Full, Global, Stride, Window, bigbird, longformer, positions

F64 = torch.float64
TOL = dict(rtol=1e-7, atol=1e-8)  # float64; any encoding bug is far larger


def layer(heads: int = 2, channels: int = 8, position=None, backend: str = "auto", features: int = 6) -> SelfAttentionConv:
    torch.manual_seed(0)
    conv = SelfAttentionConv(features, heads * channels, heads, position=position, backend=backend).to(F64)
    for p in conv.position.parameters() if position is not None else ():
        torch.nn.init.normal_(p)  # large enough to change the answer
    return conv


# ---------------------------------------------------------------- feature encodings


def test_sinusoidal_matches_closed_form():
    pos = torch.tensor([0.0, 1.0, 5.0, 99.5], dtype=F64)
    for d in (8, 7):
        got = SinusoidalEncoding(d)(pos)
        want = [[(math.sin if c % 2 == 0 else math.cos)(p / 10000 ** ((c - c % 2) / d)) for c in range(d)] for p in pos.tolist()]
        torch.testing.assert_close(got, torch.tensor(want, dtype=F64), **TOL)
    grid = torch.tensor([[0, 3], [2, 1]])  # (row, col) per patch: one half of the channels each
    got = SinusoidalEncoding(8)(grid)
    enc4 = SinusoidalEncoding(4)
    torch.testing.assert_close(got, torch.cat([enc4(grid[:, 0]), enc4(grid[:, 1])], dim=1))


def test_learned_encoding_looks_up_and_refuses_positions_past_its_length():
    enc = LearnedEncoding(4, 3)
    torch.testing.assert_close(enc(torch.tensor([3, 0, 3])), enc.weight[[3, 0, 3]])
    with pytest.raises(ValueError, match=r"max_len=4\) got position 4"):
        enc(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="got position -1"):
        enc(torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="integer"):
        enc(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        enc(torch.zeros(2, 2, dtype=torch.long))


def small_graph() -> Data:
    g = nx.path_graph(7)  # distinct Laplacian eigenvalues: eigenvectors unique up to sign
    g.add_edge(1, 5)
    return Data(edge_index=from_networkx(g).edge_index, num_nodes=7)


def test_laplacian_values_are_pygs_and_the_normalised_laplacian_eigenvectors():
    data, enc = small_graph(), LaplacianEncoding(3, 5)
    torch.manual_seed(1)
    ours = enc.transform()(data.clone()).laplacian_eigenvector_pe
    torch.manual_seed(1)
    torch.testing.assert_close(ours, AddLaplacianEigenvectorPE(3)(data.clone()).laplacian_eigenvector_pe)
    a = nx.to_numpy_array(nx.Graph(data.edge_index.T.tolist()), nodelist=range(7))
    d = np.diag(a.sum(1) ** -0.5)
    vals, vecs = np.linalg.eigh(np.eye(7) - d @ a @ d)
    want = torch.from_numpy(vecs[:, 1:4])
    sign = torch.sign((ours.to(F64) * want).sum(0))  # PyG flips each eigenvector's sign at random
    torch.testing.assert_close(ours.to(F64), want * sign, rtol=1e-5, atol=1e-6)


def test_random_walk_values_are_pygs_and_the_return_probabilities():
    data, enc = small_graph(), RandomWalkEncoding(4, 5)
    ours = enc.transform()(data.clone()).random_walk_pe
    torch.testing.assert_close(ours, AddRandomWalkPE(4)(data.clone()).random_walk_pe)
    a = torch.zeros(7, 7, dtype=F64)
    a[data.edge_index[0], data.edge_index[1]] = 1
    p = a / a.sum(1, keepdim=True)
    want = torch.stack([torch.linalg.matrix_power(p, t).diagonal() for t in range(1, 5)], dim=1)
    torch.testing.assert_close(ours.to(F64), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(enc(ours), enc.lin(ours))


def test_laplacian_signs_flip_only_while_training_and_per_graph():
    enc = LaplacianEncoding(3, 4)
    pe = torch.randn(6, 3)
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    enc.eval()
    torch.testing.assert_close(enc(pe, batch), enc.lin(pe))
    enc.train()
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        # Recover the signs: lin is affine, so lin(s * pe) - lin(0) = W (s * pe).
        w = enc.lin.weight.detach()
        flipped = torch.linalg.lstsq(w, (enc(pe, batch) - enc.lin.bias).detach().T).solution.T  # (N, k)
        sign = flipped / pe
        torch.testing.assert_close(sign.abs(), torch.ones_like(sign), rtol=1e-4, atol=1e-4)
        assert torch.allclose(sign[:3], sign[0]) and torch.allclose(sign[3:], sign[3])  # one draw per graph
        seen.add(tuple(sign[[0, 3]].round().flatten().tolist()))
    assert len(seen) > 4  # both signs, independently per graph and eigenvector


def test_graph_encodings_reject_the_wrong_width():
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        LaplacianEncoding(3, 4)(torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        RandomWalkEncoding(4, 4)(torch.randn(5))


# ---------------------------------------------------------------- score encodings: dense twins


def rotate_by_hand(x: torch.Tensor, pos: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoPE as complex multiplication: channel pairs (2m, 2m+1) are z_m, times e^{i p theta_m}."""
    n, h, c = x.shape
    pos = pos.view(n, -1).to(F64)
    block = c // pos.size(1)
    parts = []
    for a in range(pos.size(1)):
        z = torch.view_as_complex(x[..., a * block : (a + 1) * block].reshape(n, h, block // 2, 2).contiguous())
        theta = base ** (-2 * torch.arange(block // 2, dtype=F64) / block)
        turn = torch.polar(torch.ones(n, block // 2, dtype=F64), pos[:, a, None] * theta)  # (N, C / 2)
        parts.append(torch.view_as_real(z * turn[:, None]).reshape(n, h, block))
    return torch.cat(parts, dim=-1)


@pytest.mark.parametrize("pos", [torch.tensor([0, 1, 2, 3, 4, 5, 6]),
                                 torch.tensor([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2], [5, 3]])],
                         ids=["1d", "2d"])
def test_rope_on_full_equals_dense_rotary_attention_by_hand(pos):
    heads, channels = 2, 8
    conv = layer(heads, channels, RotaryEncoding(channels))
    x = torch.randn(7, 6, dtype=F64)
    q = rotate_by_hand(conv.lin_query(x).view(7, heads, channels), pos)
    k = rotate_by_hand(conv.lin_key(x).view(7, heads, channels), pos)
    v = conv.lin_value(x).view(7, heads, channels)
    att = torch.softmax(torch.einsum("ihc,jhc->hij", q, k) / math.sqrt(channels), dim=-1)
    want = conv.lin_out(torch.einsum("hij,jhc->ihc", att, v).reshape(7, -1))
    torch.testing.assert_close(conv(x, Full(), pos=pos), want, **TOL)


SCORE_ENCODINGS = {
    "rope": lambda: RotaryEncoding(8),
    "alibi": lambda: ALiBi(2),
    "relative": lambda: RelativePositionBias(2, num_buckets=8, max_distance=12),
    "rope+alibi": lambda: Compose(RotaryEncoding(8), ALiBi(2)),
}


@pytest.mark.parametrize("name", SCORE_ENCODINGS)
def test_score_encodings_depend_only_on_position_differences(name):
    sizes = torch.tensor([6, 9])
    pos = positions(sizes) * 3  # every third frame: true positions, not node ids
    conv = layer(2, 8, SCORE_ENCODINGS[name]())
    x = torch.randn(15, 6, dtype=F64)
    out = conv(x, Window(2) | Global((0,)), lengths=sizes, pos=pos)
    torch.testing.assert_close(conv(x, Window(2) | Global((0,)), lengths=sizes, pos=pos + 7), out, **TOL)
    assert not torch.allclose(conv(x, Window(2) | Global((0,)), lengths=sizes, pos=pos * 2), out)  # pos is used


@pytest.mark.parametrize("name", ["rope", "alibi", "relative"])
def test_score_encodings_with_2d_positions_are_translation_invariant(name):
    make = {"rope": lambda: RotaryEncoding(8), "alibi": lambda: ALiBi(2),
            "relative": lambda: RelativePositionBias(2, num_buckets=8, max_distance=12, dims=2)}[name]
    conv = layer(2, 8, make())
    grid = torch.stack(torch.meshgrid(torch.arange(3), torch.arange(4), indexing="ij"), dim=-1).view(12, 2)
    x = torch.randn(12, 6, dtype=F64)
    out = conv(x, Full(), pos=grid)
    torch.testing.assert_close(conv(x, Full(), pos=grid + torch.tensor([7, -3])), out, **TOL)
    assert not torch.allclose(conv(x, Full(), pos=grid * 2), out)  # pos is used
    if name != "alibi":  # Euclidean distance cannot tell the axes apart; the others can
        assert not torch.allclose(conv(x, Full(), pos=grid.flip(1)), out)


def t5_bucket_by_hand(d: int, bidirectional: bool, num_buckets: int, max_distance: int) -> int:
    """T5 (Raffel et al., 2020), one offset at a time."""
    offset = 0
    if bidirectional:
        num_buckets //= 2
        offset, d = (num_buckets if d > 0 else 0), abs(d)
    else:
        d = max(-d, 0)
    exact = num_buckets // 2
    if d < exact:
        return offset + d
    log_ratio = math.log(d / exact) / math.log(max_distance / exact)
    return offset + min(num_buckets - 1, exact + int(log_ratio * (num_buckets - exact)))


def dense_bias_by_hand(enc, pos: torch.Tensor) -> torch.Tensor:
    """``[H, N, N]`` bias indexed ``[head, query, key]`` from the papers' formulas."""
    n = pos.size(0)
    if isinstance(enc, ALiBi):
        h = enc.heads
        slopes = torch.tensor([2 ** (-8 * (i + 1) / h) for i in range(h)], dtype=F64)  # h is a power of 2 here
        dist = (pos[None, :] - pos[:, None]).abs().to(F64)  # (N_q, N_k)
        return -slopes[:, None, None] * dist
    idx = [[t5_bucket_by_hand(int(pos[j] - pos[i]), enc.bidirectional, enc.num_buckets, enc.max_distance) for j in range(n)]
           for i in range(n)]
    return enc.weight[0][torch.tensor(idx)].permute(2, 0, 1)


def random_graph(n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    ei = torch.randint(n, (2, 40), generator=gen)
    return torch.cat([ei, ei[:, :5]], dim=1)  # duplicate edges; some nodes without in-neighbours


PATTERNS = [Full(), Window(2), Causal(), Stride(3, reach=6), longformer(1, (0,)), bigbird(1, (0,), 2, seed=1), "graph"]
BIASES = {
    "alibi": lambda: ALiBi(4),
    "relative": lambda: RelativePositionBias(4, num_buckets=8, max_distance=12),
    "relative-causal": lambda: RelativePositionBias(4, num_buckets=6, max_distance=9, bidirectional=False),
    "relative-t5": lambda: RelativePositionBias(4),
}


@pytest.mark.parametrize("pattern", PATTERNS, ids=repr)
@pytest.mark.parametrize("name", BIASES)
def test_score_bias_equals_reference_with_the_dense_bias_on_every_backend(pattern, name):
    torch.manual_seed(0)
    enc = BIASES[name]().to(F64)
    for p in enc.parameters():
        torch.nn.init.normal_(p)
    sizes = torch.tensor([5, 8])
    pos = positions(sizes) * 3 + 1 if name != "relative-t5" else positions(sizes) * 17  # strided: true positions
    edges, sizes = (random_graph(13), None) if pattern == "graph" else (pattern, sizes)
    q, k, v = (torch.randn(13, 4, 3, dtype=F64, requires_grad=True) for _ in range(3))
    leaves = [q, k, v, *enc.parameters()]
    dense = dense_bias_by_hand(enc, pos).permute(1, 2, 0)  # (N_q, N_k, H)
    want = ops.attention(q, k, v, edges, sizes=sizes, bias=lambda i, j: dense[i, j], backend="reference", return_weights=True)
    seed = torch.randn_like(want.out)
    want_grads = torch.autograd.grad((want.out * seed).sum(), leaves, allow_unused=True)
    ran = []
    for backend in SWEPT_BACKENDS:
        try:
            got = ops.attention(q, k, v, edges, sizes=sizes, bias=enc(q, k, pos)[2], backend=backend, return_weights=True)
        except NotImplementedError:  # a forced kernel that cannot run this graph says so
            continue
        ran.append(got.kernel)
        torch.testing.assert_close(got.out, want.out, **TOL, msg=backend)
        torch.testing.assert_close(got.weights[1], want.weights[1], **TOL, msg=backend)
        grads = torch.autograd.grad((got.out * seed).sum(), leaves, allow_unused=True)
        for g, w in zip(grads, want_grads):
            torch.testing.assert_close(g, w, **TOL, msg=backend)
    assert {"dense", "sparse", "scatter"} <= set(ran)


def test_alibi_slopes_and_t5_buckets_are_the_papers():
    assert ALiBi(8).slopes.tolist() == [2.0**-i for i in range(1, 9)]
    assert ALiBi(6).slopes.tolist() == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]  # paper code, non power of 2
    rel = RelativePositionBias(1)
    for d in range(-300, 301):
        assert int(rel.buckets[min(max(d, -128), 128) + 128]) == t5_bucket_by_hand(d, True, 32, 128), d
    assert [t5_bucket_by_hand(d, True, 32, 128) for d in (0, 1, -1, 200, -200)] == [0, 17, 1, 31, 15]


def test_from_torch_with_alibi_equals_multihead_attention_with_the_bias_as_mask():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(8, 4, batch_first=True).to(F64)
    conv = SelfAttentionConv.from_torch(mha, position=ALiBi(4))
    x = torch.randn(1, 6, 8, dtype=F64)
    idx = torch.arange(6)
    slopes = torch.tensor(ALiBi(4).slopes.tolist(), dtype=F64)
    mask = -slopes[:, None, None] * (idx[None, :] - idx[:, None]).abs()  # (H, L, L), added to the scores
    want, _ = mha(x, x, x, attn_mask=mask)
    torch.testing.assert_close(conv(x[0], Full()), want[0], **TOL)


def test_compose_rotates_then_adds_the_biases():
    torch.manual_seed(0)
    q, k = torch.randn(2, 5, 2, 8, dtype=F64)
    pos = torch.tensor([0, 2, 3, 7, 8])
    rope, alibi, rel = RotaryEncoding(8), ALiBi(2), RelativePositionBias(2).to(F64)
    q2, k2, bias = Compose(rope, alibi, rel)(q, k, pos)
    torch.testing.assert_close(q2, rope(q, k, pos)[0])
    torch.testing.assert_close(k2, rope(q, k, pos)[1])
    i, j = torch.arange(5)[:, None], torch.arange(5)[None, :]
    torch.testing.assert_close(bias(i, j), alibi(q, k, pos)[2](i, j) + rel(q, k, pos)[2](i, j))
    assert Compose(rope)(q, k, pos)[2] is None


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=12), st.lists(st.integers(0, 9), min_size=1, max_size=12),
       st.sampled_from(["alibi", "relative", "alibi-2d", "relative-2d", "spd"]))
def test_bias_broadcasts_like_a_mask(qs, ks, name):
    """Kernels call a bias on grids, tiles or edge lists: every layout gives the same numbers."""
    torch.manual_seed(0)
    q = torch.randn(10, 3, 4, dtype=F64)
    pos = torch.randint(-50, 50, (10,)) if "2d" not in name else torch.randint(-50, 50, (10, 2))
    if name == "spd":
        pos = ShortestPathBias.distances(torch.randint(10, (2, 12), generator=torch.Generator().manual_seed(1)), 10)
    enc = {"alibi": ALiBi(3), "relative": RelativePositionBias(3), "alibi-2d": ALiBi(3),
           "relative-2d": RelativePositionBias(3, dims=2), "spd": ShortestPathBias(3, max_distance=2)}[name].to(F64)
    bias = enc(q, q, pos)[2]
    qi, ki = torch.tensor(qs), torch.tensor(ks)
    grid = bias(qi[:, None], ki[None, :])  # (Q, K, H)
    assert grid.shape == (len(qs), len(ks), 3)
    flat = bias(qi.repeat_interleave(len(ks)), ki.repeat(len(qs)))  # an edge list
    torch.testing.assert_close(flat.view_as(grid), grid)


# ---------------------------------------------------------------- batches and positions


@pytest.mark.parametrize("name", SCORE_ENCODINGS)
def test_default_positions_restart_per_sequence(name):
    conv = layer(2, 8, SCORE_ENCODINGS[name]())
    x = torch.randn(13, 6, dtype=F64)
    out = conv(x, Full(), lengths=torch.tensor([5, 8]))
    torch.testing.assert_close(out[5:], conv(x[5:], Full()), **TOL)
    torch.testing.assert_close(out[:5], conv(x[:5], Full()), **TOL)
    batch = torch.tensor([0] * 5 + [1] * 8)
    torch.testing.assert_close(conv(x, Full(), batch=batch), out, **TOL)
    torch.testing.assert_close(conv(x, Full(), batch=batch, pos=positions(torch.tensor([5, 8]))), out, **TOL)


def test_wrong_positions_raise_clear_errors():
    q = torch.randn(4, 2, 8)
    with pytest.raises(ValueError, match=r"RotaryEncoding: pos must have one row per node \(N=4\)"):
        RotaryEncoding(8)(q, q, torch.arange(5))
    with pytest.raises(ValueError, match="divisible by 2 \\* D = 6"):
        RotaryEncoding(8)(q, q, torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"ALiBi: pos must have shape \[N\] or \[N, D\]"):
        ALiBi(2)(q, q, torch.zeros(4, 2, 2))
    with pytest.raises(ValueError, match=r"ALiBi\(heads=3\)"):
        ALiBi(3)(q, q, torch.arange(4))
    with pytest.raises(ValueError, match=r"dims=1\) needs pos of shape \[N\]"):
        RelativePositionBias(2)(q, q, torch.zeros(4, 2))
    with pytest.raises(TypeError, match="integer or real"):
        ALiBi(2)(q, q, torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[N, N\] = \[4, 4\] integer distance matrix"):
        ShortestPathBias(2)(q, q, torch.arange(4))
    with pytest.raises(ValueError, match="must be divisible by the 3 position axes"):
        SinusoidalEncoding(8)(torch.zeros(4, 3))
    conv = layer(2, 8, RotaryEncoding(8))
    x = torch.randn(4, 6, dtype=F64)
    with pytest.raises(ValueError, match="pos must be a tensor of shape"):
        conv(x, Full(), pos=torch.arange(5))
    with pytest.raises(ValueError, match="divisible by 2 \\* D = 6"):
        conv(x, Full(), pos=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="head_dim must be even"):
        RotaryEncoding(7)
    with pytest.raises(ValueError, match="max_distance must be an int >= 9"):
        RelativePositionBias(2, num_buckets=32, max_distance=8)


# ---------------------------------------------------------------- shortest paths


def test_shortest_path_distances_match_networkx_with_direction_and_unreachable():
    g = nx.cycle_graph(5)
    g.add_edge(5, 6)  # a second component
    ei = from_networkx(g).edge_index
    d = ShortestPathBias.distances(ei, 8)  # node 7 is isolated
    lengths = dict(nx.all_pairs_shortest_path_length(g))
    for i in range(8):
        for j in range(8):
            want = lengths.get(j, {}).get(i, 0 if i == j else -1)
            assert int(d[i, j]) == want, (i, j)
    chain = ShortestPathBias.distances(torch.tensor([[0, 1], [1, 2]]), 3)  # 0 -> 1 -> 2
    assert chain.tolist() == [[0, -1, -1], [1, 0, -1], [2, 1, 0]]  # [query i, key j]: hops from j to i


def test_shortest_path_bias_in_the_layer_equals_reference_with_the_dense_bias():
    g = nx.path_graph(6)
    g.add_nodes_from([6, 7])  # isolated: unreachable from everything
    ei = from_networkx(g).edge_index
    spd = ShortestPathBias.distances(ei, 8)
    enc = ShortestPathBias(2, max_distance=3)
    conv = layer(2, 4, enc)
    x = torch.randn(8, 6, dtype=F64)
    bucket = torch.where(spd < 0, 4, spd.clamp(max=3))
    assert bucket.max() == 4 and (spd > 3).any()  # both the cap and the unreachable bucket are used
    dense = enc.weight[bucket]  # (N_q, N_k, H)
    q, k, v = (lin(x).view(8, 2, 4) for lin in (conv.lin_query, conv.lin_key, conv.lin_value))
    want = ops.attention(q, k, v, Full(), bias=lambda i, j: dense[i, j], backend="reference").out
    for backend in SWEPT_BACKENDS:
        conv.backend = backend
        try:
            got = conv(x, Full(), pos=spd)
        except NotImplementedError:  # a forced kernel that cannot run this graph says so
            assert backend in ("stride", "flex", "buckets")  # not a lone stride; no CPU backward; no LSH / KMeans groups
            continue
        torch.testing.assert_close(got, conv.lin_out(want.reshape(8, -1)), **TOL, msg=backend)
