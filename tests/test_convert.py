"""Converters: data of every kind to Data with an attention graph, and back to networkx."""

import json
import math

import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data

from graphattn import AttentionGraph
from graphattn.convert import (
    DEFAULT_AUDIO_PATTERN,
    Tokenizer,
    audio_to_graph,
    graph_to_data,
    image_to_graph,
    image_to_patches,
    log_mel,
    mel_centers,
    mel_filterbank,
    sequence_to_graph,
    text_to_graph,
    to_networkx,
)
from graphattn.patterns import Full, Global, GraphEdges, Grid2D, SelfLoops, VirtualNodes, Window, batch_edge_index


def edge_set(ei):
    return set(map(tuple, ei.t().tolist()))


# sequences --------------------------------------------------------------------------------

def test_sequence():
    x = torch.randn(6, 3)
    data = sequence_to_graph(x, Window(1), y=2)
    assert torch.equal(data.edge_index, Window(1).edge_index(6))
    assert torch.equal(data.pos, torch.arange(6)) and data.x is x
    assert data.pattern == Window(1) and data.num_nodes == 6 and data.y.tolist() == [2]


def test_sequence_batch_offsets():
    xs = [torch.randn(3, 2), torch.randn(5, 2), torch.randn(1, 2)]
    batch = sequence_to_graph(xs, Window(1) | Global((0,)), y=torch.tensor([0, 1, 0]))
    assert isinstance(batch, Batch) and batch.num_graphs == 3
    assert torch.equal(batch.edge_index, batch_edge_index(Window(1) | Global((0,)), torch.tensor([3, 5, 1])))
    assert batch.pos.tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 0]
    assert batch.y.tolist() == [0, 1, 0] and batch.ptr.tolist() == [0, 3, 8, 9]
    assert batch.pattern == [Window(1) | Global((0,))] * 3


def test_sequence_virtual_nodes_stay_out_of_the_data():
    data = sequence_to_graph(torch.ones(4, 2), Window(0) | VirtualNodes(1))
    assert data.num_nodes == 4 and data.x.shape == (4, 2) and data.pos.numel() == 4
    assert edge_set(data.edge_index) == {(i, i) for i in range(4)}  # the real nodes' part of the pattern
    graph = AttentionGraph.from_data(data)  # the graph lays the virtual node after the sequence
    assert graph.num_nodes == 5 and edge_set(graph.edge_index) >= {(4, i) for i in range(5)} | {(i, 4) for i in range(5)}


@pytest.mark.parametrize("x,pattern,y,err,match", [
    (torch.randn(0, 3), Full(), None, ValueError, "at least one"),
    (torch.randn(2, 3, 4), Full(), None, ValueError, r"shape \[L, F\]"),
    ([], Full(), None, ValueError, "at least one sequence"),
    ([torch.randn(2, 3)], Full(), [0, 1], ValueError, "one label per sequence"),
    ([torch.randn(2, 3), "x"], Full(), None, TypeError, r"x\[1\]"),
    ("abc", Full(), None, TypeError, "x must be"),
    (torch.randn(2, 3), "Full()", None, TypeError, "pattern must be a graphattn Pattern"),
    (torch.randn(2, 3), Global((5,)), None, ValueError, "Global nodes"),
])
def test_sequence_bad_input(x, pattern, y, err, match):
    with pytest.raises(err, match=match):
        sequence_to_graph(x, pattern, y=y)


# text -------------------------------------------------------------------------------------

TEXTS = ["The cat sat on the mat.", "The dog didn't sit, it ran (fast)!", "A cat and a dog."]


def test_tokenizer_round_trip():
    tok = Tokenizer(cls=True).fit(TEXTS)
    for text in TEXTS:
        assert tok.decode(tok.encode(text, add_cls=True)) == text.lower()
    assert tok.itos[:4] == ["<pad>", "<unk>", "<cls>", "the"]  # most frequent word first
    assert tok.encode("the zebra").tolist() == [tok.stoi["the"], tok.unk_id]
    assert tok.encode("The").dtype == torch.long


def test_tokenizer_limits_and_state():
    tok = Tokenizer(min_freq=2).fit(TEXTS)
    assert set(tok.itos) == {"<pad>", "<unk>", "the", "cat", "dog", ".", "a"}
    assert len(Tokenizer(max_size=4).fit(TEXTS)) == 4
    state = json.loads(json.dumps(tok.state_dict()))
    again = Tokenizer.from_state_dict(state)
    assert again.itos == tok.itos and torch.equal(again.encode(TEXTS[1]), tok.encode(TEXTS[1]))


def test_text_to_graph_cls_is_global():
    tok = Tokenizer(cls=True).fit(TEXTS)
    data = text_to_graph(TEXTS[0], tok, Window(1) | Global((0,)), y=1, add_cls=True)
    assert data.x[0] == tok.cls_id and data.x.dtype == torch.long and data.num_nodes == 8
    assert torch.equal(data.pos, torch.arange(8))
    keys_of_cls = data.edge_index[0][data.edge_index[1] == 0]
    assert keys_of_cls.tolist() == list(range(8))  # <cls> sees every token
    same = text_to_graph(tok.encode(TEXTS[0]), tok, Window(1) | Global((0,)), add_cls=True)
    assert torch.equal(same.x, data.x)


@pytest.mark.parametrize("call,err,match", [
    (lambda t: text_to_graph("", t, Full()), ValueError, "no tokens"),
    (lambda t: text_to_graph("   \n", t, Full(), add_cls=True), ValueError, "no tokens"),
    (lambda t: text_to_graph(torch.tensor([], dtype=torch.long), None, Full()), ValueError, "no tokens"),
    (lambda t: text_to_graph("hi", None, Full()), TypeError, "tokenizer must be"),
    (lambda t: text_to_graph(torch.ones(2), t, Full()), ValueError, "integer tensor"),
    (lambda t: Tokenizer().encode("the cat"), ValueError, "not fitted"),
    (lambda t: Tokenizer().fit("the cat"), TypeError, "single str"),
    (lambda t: Tokenizer().fit(["a", 3]), TypeError, r"texts\[1\]"),
    (lambda t: Tokenizer(min_freq=0), ValueError, "min_freq"),
    (lambda t: Tokenizer(max_size=1), ValueError, "max_size"),
    (lambda t: Tokenizer().fit(TEXTS).encode("a", add_cls=True), ValueError, "no <cls> token"),
    (lambda t: t.decode([99]), ValueError, "ids must be ints"),
    (lambda t: Tokenizer.from_state_dict({"itos": []}), ValueError, "state must be"),
])
def test_text_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call(Tokenizer(cls=True).fit(TEXTS))


# audio ------------------------------------------------------------------------------------

@pytest.mark.parametrize("length,hop", [(16000, 160), (16001, 160), (999, 128), (50, 100), (1, 160)])
def test_audio_frames_follow_stft_formula(length, hop):
    feats = log_mel(torch.randn(length), 16000, n_fft=400, hop_length=hop, n_mels=20)
    stft = torch.stft(torch.randn(length), 400, hop_length=hop, window=torch.hann_window(400), center=True,
                      pad_mode="constant", return_complex=True)
    assert feats.shape == (1 + length // hop, 20) == (stft.size(1), 20)


def test_pure_tone_peaks_in_nearest_band():
    sr, n_mels = 16000, 40
    t = torch.arange(sr) / sr
    for freq in (440.0, 1000.0, 3000.0):
        feats = log_mel(torch.sin(2 * math.pi * freq * t), sr, n_mels=n_mels)
        nearest = int((mel_centers(n_mels, 0.0, sr / 2) - freq).abs().argmin())
        assert int(feats[5:-5].mean(0).argmax()) == nearest


def test_filterbank_triangles():
    fb = mel_filterbank(201, 16000, 10)
    assert fb.shape == (201, 10) and fb.min() >= 0 and fb.max() <= 1
    assert (fb.max(0).values > 0.8).all()  # every band peaks near 1 (centres fall between bins)
    inner = fb[(fb.sum(1) > 0)]
    assert ((inner > 0).sum(1) <= 2).all()  # a bin lies under at most two neighbouring triangles


def test_audio_silence_stereo_and_graph():
    silent = log_mel(torch.zeros(800), 8000, n_fft=256, hop_length=80, n_mels=16)
    assert torch.allclose(silent, torch.full_like(silent, math.log(1e-10)))
    wave = torch.randn(2, 1600)
    assert torch.allclose(log_mel(wave, 16000), log_mel(wave.mean(0), 16000))
    data = audio_to_graph(wave, 16000, y=3)
    assert data.x.shape == (11, 40) and data.pattern == DEFAULT_AUDIO_PATTERN == Window(left=16, right=0)
    assert torch.equal(data.edge_index, DEFAULT_AUDIO_PATTERN.edge_index(11)) and data.y.tolist() == [3]


@pytest.mark.parametrize("wave,kwargs,err,match", [
    (torch.zeros(0), {}, ValueError, "empty"),
    (torch.zeros(2, 0), {}, ValueError, "empty"),
    (torch.tensor([0.0, float("nan"), 0.0]), {}, ValueError, "NaN"),
    (torch.zeros(3, 2, 100), {}, ValueError, r"shape \[T\] or \[C, T\]"),
    (torch.zeros(100, dtype=torch.int16), {}, TypeError, "floating point"),
    ([0.0, 1.0], {}, TypeError, "waveform must be a Tensor"),
    (torch.zeros(100), {"hop_length": 0}, ValueError, "hop_length"),
    (torch.zeros(100), {"win_length": 500}, ValueError, "win_length"),
    (torch.zeros(100), {"f_max": 9000}, ValueError, "f_max"),
    (torch.zeros(100), {"sample_rate": 0}, ValueError, "sample_rate"),
])
def test_audio_bad_input(wave, kwargs, err, match):
    sr = kwargs.pop("sample_rate", 16000)
    with pytest.raises(err, match=match):
        log_mel(wave, sr, **kwargs)


# images -----------------------------------------------------------------------------------

def test_image_patches():
    image = torch.arange(2 * 28 * 28, dtype=torch.float).view(2, 28, 28)
    feats, pos = image_to_patches(image, 4)
    assert feats.shape == (49, 2 * 16) and pos.shape == (49, 2)
    assert pos[:8].tolist() == [[0, c] for c in range(7)] + [[1, 0]]
    r, c = 3, 5  # node 3 * 7 + 5 holds the pixels of rows 12..15, cols 20..23, channel-major
    assert torch.equal(feats[r * 7 + c], image[:, 12:16, 20:24].reshape(-1))
    conv = torch.nn.Conv2d(2, 8, 4, stride=4, bias=False)  # the patch layout is ViT's Conv2d layout
    assert torch.allclose(feats @ conv.weight.view(8, -1).t(), conv(image[None])[0].flatten(1).t(), atol=1e-3)


def test_image_to_graph():
    data = image_to_graph(torch.rand(1, 28, 28), 4, y=7)
    assert data.num_nodes == 49 and data.grid_width == 7 and data.grid_height == 7 and data.pattern == Full()
    assert data.edge_index.size(1) == 49 * 49
    local = image_to_graph(torch.rand(3, 8, 12), 4, Grid2D(1, 3))
    assert local.pos.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert torch.equal(local.edge_index, Grid2D(1, 3).edge_index(6))
    assert image_to_graph(torch.rand(28, 28), 7).num_nodes == 16  # [H, W] is one channel


@pytest.mark.parametrize("image,patch,pattern,err,match", [
    (torch.rand(1, 30, 28), 4, None, ValueError, "height=30"),
    (torch.rand(1, 28, 30), 4, None, ValueError, "width=30"),
    (torch.rand(1, 30, 30), 4, None, ValueError, "height=30 and width=30"),
    (torch.rand(1, 28, 28), 0, None, ValueError, "patch_size"),
    (torch.rand(1, 1, 28, 28), 4, None, ValueError, r"\[C, H, W\]"),
    (torch.rand(1, 28, 28), 4, Grid2D(1, 4), ValueError, "grid_width=7"),
    ("img", 4, None, TypeError, "image must be a Tensor"),
])
def test_image_bad_input(image, patch, pattern, err, match):
    with pytest.raises(err, match=match):
        image_to_graph(image, patch, pattern)


# graphs -----------------------------------------------------------------------------------

def test_networkx_round_trip_keeps_every_edge():
    g = nx.gnp_random_graph(12, 0.3, seed=1, directed=True)
    data = graph_to_data(g)
    assert set(to_networkx(data).edges) == set(g.edges)  # the graph's own edges
    back = to_networkx(data.pattern, 12)  # the attention graph: the edges and self-loops
    assert set(back.edges) == set(g.edges) | {(i, i) for i in range(12)}
    expected = GraphEdges(data.edge_index, 12) | SelfLoops()
    assert torch.equal(data.pattern.dense_mask(12), expected.dense_mask(12))
    und = nx.cycle_graph(5)
    back = to_networkx(graph_to_data(und, pattern=GraphEdges(from_nx_edges(und), 5)).pattern, 5)
    assert set(back.edges) == set(und.edges) | {(j, i) for i, j in und.edges}


def from_nx_edges(g):
    return torch.tensor([[u for u, v in g.edges] + [v for u, v in g.edges],
                         [v for u, v in g.edges] + [u for u, v in g.edges]])


def test_graph_data_virtual_nodes_and_no_edges():
    src = Data(x=torch.randn(4, 3), edge_index=torch.tensor([[0, 1], [1, 2]]), edge_attr=torch.randn(2, 5),
               y=torch.tensor([0, 1, 1, 0]))
    data = graph_to_data(src, add=VirtualNodes(1))
    assert data.num_nodes == 4 and data.x.shape == (4, 3)
    assert torch.equal(data.edge_index, src.edge_index) and torch.equal(data.edge_attr, src.edge_attr)
    graph = AttentionGraph.from_data(data)
    assert graph.num_nodes == 5 and {(0, 1), (4, 0), (0, 4), (0, 0)} <= edge_set(graph.edge_index)
    lonely = graph_to_data(nx.empty_graph(3))
    assert edge_set(lonely.pattern.edge_index(3)) == {(0, 0), (1, 1), (2, 2)} and lonely.x.shape == (3, 1)


def test_a_batch_of_graphs_gets_one_pattern_per_graph():
    graphs = [graph_to_data(nx.path_graph(3), add=VirtualNodes(1)), graph_to_data(nx.cycle_graph(4), add=VirtualNodes(1))]
    batch = Batch.from_data_list(graphs)
    graph = AttentionGraph.build(batch.pattern, batch=batch.batch)
    assert (graph.num_nodes, graph.num_virtual, graph.sizes.tolist()) == (9, 1, [4, 5])
    want = torch.cat([graphs[0].pattern.edge_index(4), graphs[1].pattern.edge_index(5) + 4], dim=1)
    assert torch.equal(graph.edge_index, want)


def test_to_networkx_attention_and_pattern():
    ei = Window(1).edge_index(4)
    alpha = torch.rand(ei.size(1), 2)
    g = to_networkx(Window(1), 4, attention=(ei, alpha))
    j, i = ei[:, 3].tolist()
    assert g[j][i]["alpha"] == pytest.approx(alpha[3].tolist())
    assert g[j][i]["weight"] == pytest.approx(float(alpha[3].mean()))
    with pytest.raises(ValueError, match="not in the graph"):
        to_networkx(Window(0), 4, attention=(ei, alpha))
    with pytest.raises(ValueError, match="n .* is required"):
        to_networkx(Window(1))
    with pytest.raises(ValueError, match="alpha"):
        to_networkx(Window(1), 4, attention=(ei, alpha[:2]))


@pytest.mark.parametrize("graph,kwargs,err,match", [
    ([[0, 1]], {}, TypeError, "networkx graph"),
    (Data(edge_index=torch.tensor([[0], [5]]), num_nodes=3), {}, ValueError, "graph.edge_index"),
    (Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2), {"add": "Full()"}, TypeError, "add must be"),
    (Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2), {"node_attrs": ["a"]}, ValueError, "node_attrs"),
])
def test_graph_bad_input(graph, kwargs, err, match):
    with pytest.raises(err, match=match):
        graph_to_data(graph, **kwargs)
