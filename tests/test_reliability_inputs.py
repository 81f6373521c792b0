"""Bad input anywhere in the public API is refused by name, before any work; good input is answered.

One table lists every public entry point with a valid call; hypothesis picks an entry point and
one of its arguments and replaces that argument by a generated bad value (a wrong type, a
non-integer or huge size, a negative or out-of-range index, a wrong shape or dtype, NaN / inf,
a wrong device). The call must raise ``TypeError`` or ``ValueError`` whose message names the
argument; any other exception (an error from deep inside torch) or a silent answer is a finding.
Valid calls next to them must give the right answer (the valid table runs as is, and generated
valid patterns must agree with their own specification).
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import (  # noqa: F401
    BAD_CHOICE,
    BAD_POS_FLOAT,
    BAD_RATE,
    Entry,
    bad_input_report,
    bad_int,
    bad_tensor,
    count_bad,
    named,
)

from graphattn import ops
from graphattn.convert import Tokenizer, audio_to_graph, image_to_graph, sequence_to_graph, text_to_graph
from graphattn.datasets import load_planetoid, load_trec
from graphattn.models import GraphTransformer
from graphattn.nn import SelfAttentionConv
from graphattn.nn.encodings import (
    ALiBi,
    LaplacianEncoding,
    LearnedEncoding,
    RandomWalkEncoding,
    RelativePositionBias,
    RotaryEncoding,
    ShortestPathBias,
    SinusoidalEncoding,
)
from graphattn.ops import AttentionGraph
from graphattn.patterns import (
    Causal,
    Expander,
    Full,
    Global,
    Grid2D,
    Random,
    Stride,
    VirtualNodes,
    Window,
    bigbird,
    longformer,
    parse_pattern,
)

pytestmark = pytest.mark.usefixtures("bad_input_report")

SEARCH = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# the entry points -----------------------------------------------------------------------------

def attention(**kw):
    return ops.attention(kw.pop("q"), kw.pop("k"), kw.pop("v"), kw.pop("edges"), **kw)


def build(**kw):
    return AttentionGraph.build(kw.pop("edges"), **kw)


def layer_forward(**kw):
    return SelfAttentionConv(4, 4, heads=2)(kw.pop("x"), kw.pop("edges"), **kw)


def layer_new(**kw):
    return SelfAttentionConv(**kw)


def encode_scores(module):
    def call(**kw):
        return module(kw["q"], kw["k"], kw["pos"])
    return call


QKV = torch.randn(6, 2, 4)
EDGES = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
TOKENIZER = Tokenizer(cls=True).fit(["what is a graph", "who attends to whom"])
BIG = dict(huge=False)  # model / layer sizes: a huge size would really be allocated

ENTRIES: dict[str, Entry] = {
    "Window": Entry(Window, {"radius": 2}, {"radius": bad_int(0)}),
    "Window(left, right)": Entry(Window, {"left": 2, "right": 0}, {"left": bad_int(0, optional=True),
                                                                    "right": bad_int(0, optional=True)}),
    "Stride": Entry(Stride, {"stride": 2, "reach": None}, {"stride": bad_int(1), "reach": bad_int(0, optional=True)}),
    "Global": Entry(Global, {"nodes": (0,)}, {"nodes": st.one_of(
        st.none(), st.just({0: 1}), st.just({0, 1}), st.text(max_size=2), st.floats(), st.just([1.5]),
        st.just((0, 2**70)), st.just([True]))}, {"nodes": ["nodes", "Global"]}),
    "Random": Entry(Random, {"per_query": 2, "seed": 0}, {"per_query": bad_int(0), "seed": bad_int(0)}),
    "Grid2D": Entry(Grid2D, {"radius": 1, "width": None}, {"radius": bad_int(0), "width": bad_int(1, optional=True)}),
    "VirtualNodes": Entry(VirtualNodes, {"count": 1}, {"count": bad_int(1)}),
    "Expander": Entry(Expander, {"degree": 2, "seed": 0}, {"degree": st.one_of(bad_int(2), st.just(3)),
                                                           "seed": bad_int(0)}),
    "longformer": Entry(longformer, {"radius": 2, "global_tokens": (0,), "stride": None},
                        {"radius": bad_int(0), "global_tokens": st.sampled_from([None, {0: 1}, "0", 1.5]),
                         "stride": bad_int(1, optional=True)},
                        {"global_tokens": ["nodes", "Global"], "stride": ["stride", "reach"]}),
    "bigbird": Entry(bigbird, {"radius": 2, "global_tokens": 0, "random_per_query": 1, "seed": 0},
                     {"radius": bad_int(0), "random_per_query": bad_int(0), "seed": bad_int(0),
                      "global_tokens": st.sampled_from([None, {0: 1}, "0", 1.5])},
                     {"global_tokens": ["nodes", "Global"]}),
    "parse_pattern": Entry(parse_pattern, {"text": "Window(1) | Global([0])"},
                           {"text": st.one_of(st.none(), st.integers(), st.just(""), st.text(max_size=12),
                                              st.just("Window(1) + Full()"), st.just("__import__('os')"),
                                              st.just("Global({0: 1})"), st.just("Window(radius=2**70)"),
                                              st.just("Window(radius=1, radius=2)"),  # repeated keywords
                                              st.just("Window(left=1) | Window(left=1, right=2, left=3)"))},
                           {"text": ["text", "pattern"]}),
    "AttentionGraph.build(lengths)": Entry(build, {"edges": Window(1), "lengths": [3, 3]}, {"lengths": st.one_of(
        st.just([3.5, 2.5]), st.just([3.0, 3.0]), st.just([True, 5]), st.just([-1, 7]), st.just([2**64, 0]),
        st.just(torch.tensor([3.0, 3.0])), st.just(torch.tensor([[3, 3]])), st.just("33"), st.just([[3], [3]]))}),
    "AttentionGraph.build(batch)": Entry(build, {"edges": Window(1), "num_nodes": 6,
                                                 "batch": torch.tensor([0, 0, 0, 1, 1, 1])},
                                         {"batch": bad_tensor((6,), dtype=torch.int64)}),
    "AttentionGraph.build(pos)": Entry(build, {"edges": Window(1), "num_nodes": 6, "pos": torch.arange(6.0)},
                                       {"pos": bad_tensor((6,), ranks=(2,), wrong_dtypes=[])}),  # dtype: see KNOWN
    "AttentionGraph.build(edge_index)": Entry(build, {"edges": EDGES, "num_nodes": 6},
                                              {"edges": st.one_of(bad_tensor((2, 6), dtype=torch.int64, free=(1,)),
                                                                  st.just(torch.tensor([[0, 6], [1, 0]])),
                                                                  st.just(torch.tensor([[0, -1], [1, 0]])))},
                                              {"edges": ["edges", "edge_index", "adj", "EdgeIndex", "pattern"]}),
    "AttentionGraph.build(edge_attr)": Entry(build, {"edges": EDGES, "num_nodes": 6, "edge_attr": torch.ones(6, 3)},
                                             {"edge_attr": bad_tensor((6, 3), free=(1,))}),
    "ops.attention": Entry(attention, {"q": QKV, "k": QKV, "v": QKV, "edges": Window(1)},
                           {"q": bad_tensor((6, 2, 4), finite=False), "k": bad_tensor((6, 2, 4), finite=False),
                            "v": bad_tensor((6, 2, 4), finite=False, free=(2,)), "dropout": BAD_RATE, "backend": BAD_CHOICE,
                            "score": BAD_CHOICE, "sizes": st.just([3.5, 2.5])},
                           {"k": ["k", "q"], "v": ["v", "q"], "sizes": ["sizes", "lengths"]}),
    "SelfAttentionConv": Entry(layer_new, {"in_channels": 4, "out_channels": 4, "heads": 2},
                               {"in_channels": bad_int(1, **BIG), "out_channels": bad_int(1, **BIG),
                                "heads": bad_int(1, **BIG), "dropout": BAD_RATE, "backend": BAD_CHOICE,
                                "score": BAD_CHOICE, "edge_dim": bad_int(1, optional=True, **BIG)},
                               {"heads": ["heads"], "out_channels": ["out_channels", "heads"]}),
    "SelfAttentionConv.forward": Entry(layer_forward, {"x": torch.randn(6, 4), "edges": Window(1)},
                                       {"x": bad_tensor((6, 4), free=(0,)), "lengths": st.just([3.5, 2.5]),
                                        "batch": bad_tensor((6,), dtype=torch.int64)},
                                       {"x": ["x", "x_src", "x_dst"]}),
    "GraphTransformer": Entry(GraphTransformer, {"in_channels": 4, "hidden_channels": 8, "out_channels": 2,
                                                 "num_layers": 1, "heads": 2, "pattern": Window(1)},
                              {"num_layers": bad_int(1, **BIG), "heads": bad_int(1, **BIG), "dropout": BAD_RATE,
                               "pattern": st.sampled_from([3, "Window(", "Nope()", Window])},
                              {"heads": ["heads", "hidden_channels"], "pattern": ["pattern", "edges"]}),
    "GraphTransformer.forward": Entry(lambda **kw: GraphTransformer(4, 8, 2, 1, 2, Window(1))(**kw),
                                      {"x": torch.randn(6, 4)}, {"x": bad_tensor((6, 4), free=(0,)),
                                                                 "batch": bad_tensor((6,), dtype=torch.int64)}),
    "load_trec": Entry(load_trec, {"split": "test", "progress": False},
                       {"split": st.sampled_from(["dev", "", None, 0]), "root": st.sampled_from([3, b"x", ""])}),
    "load_planetoid": Entry(load_planetoid, {"name": "Cora", "progress": False},
                            {"name": st.sampled_from(["Coraa", "", None, 0, "MUTAG"]),
                             "root": st.sampled_from([3, b"x", ""])}),
    "SinusoidalEncoding": Entry(SinusoidalEncoding, {"d_model": 8, "base": 1e4},
                                {"d_model": bad_int(1, **BIG), "base": BAD_POS_FLOAT | st.just(-1.0) | st.just("x")}),
    "LearnedEncoding": Entry(LearnedEncoding, {"max_len": 8, "d_model": 4},
                             {"max_len": bad_int(1, **BIG), "d_model": bad_int(1, **BIG)}),
    "RelativePositionBias": Entry(RelativePositionBias, {"heads": 2}, {"heads": bad_int(1, **BIG),
                                  "num_buckets": bad_int(4, **BIG), "bidirectional": st.sampled_from([None, "no", 1]),
                                  "dims": bad_int(1, **BIG)}),
    "RotaryEncoding": Entry(RotaryEncoding, {"head_dim": 4}, {"head_dim": st.one_of(bad_int(1, **BIG), st.just(3)),
                                                              "base": BAD_POS_FLOAT | st.just(0.0) | st.just("x")}),
    "ShortestPathBias": Entry(ShortestPathBias, {"heads": 2}, {"heads": bad_int(1, **BIG),
                                                               "max_distance": bad_int(0, **BIG)}),
    "LaplacianEncoding": Entry(LaplacianEncoding, {"k": 2, "d_model": 4}, {"k": bad_int(1, **BIG),
                                                                           "d_model": bad_int(1, **BIG)}),
    "RandomWalkEncoding": Entry(RandomWalkEncoding, {"walk_length": 2, "d_model": 4},
                                {"walk_length": bad_int(1, **BIG), "d_model": bad_int(1, **BIG)}),
    "RelativePositionBias.forward": Entry(encode_scores(RelativePositionBias(2)),
                                          {"q": QKV, "k": QKV, "pos": torch.arange(6)},
                                          {"pos": bad_tensor((6,), dtype=torch.float32, ranks=(2,),
                                                             wrong_dtypes=[torch.bool, torch.complex64])}),
    "ALiBi.forward": Entry(encode_scores(ALiBi(2)), {"q": QKV, "k": QKV, "pos": torch.arange(6.0)},
                           {"pos": bad_tensor((6,), wrong_dtypes=[torch.bool, torch.complex64], ranks=(2,)),
                            "q": bad_tensor((6, 2, 4), finite=False, free=(2,))}, {"q": ["q", "pos"]}),
    "RotaryEncoding.forward": Entry(encode_scores(RotaryEncoding(4)), {"q": QKV, "k": QKV, "pos": torch.arange(6.0)},
                                    {"pos": bad_tensor((6,), wrong_dtypes=[torch.bool, torch.complex64], ranks=(2,)),
                                     "q": bad_tensor((6, 2, 4), finite=False)}, {"q": ["q", "k"]}),
    "SinusoidalEncoding.forward": Entry(lambda pos: SinusoidalEncoding(8)(pos), {"pos": torch.arange(6.0)},
                                        {"pos": bad_tensor((6,), wrong_dtypes=[torch.bool, torch.complex64], ranks=(2,),
                                                           free=(0,))}),
    "RandomWalkEncoding.forward": Entry(lambda pe: RandomWalkEncoding(3, 4)(pe), {"pe": torch.rand(6, 3)},
                                        {"pe": bad_tensor((6, 3), free=(0,))}),
    "sequence_to_graph": Entry(sequence_to_graph, {"x": torch.randn(5, 3), "pattern": Window(1)},
                               {"x": st.one_of(st.sampled_from([None, "abc", torch.randn(0, 3), torch.randn(2, 2, 2)]),
                                               bad_tensor((5, 3), free=(0, 1), ranks=(1,), wrong_dtypes=[torch.bool])),
                                "pattern": st.sampled_from([None, "Window(1)", 3, Window]),
                                "y": st.sampled_from([float("nan"), float("inf"), torch.tensor([float("nan")]), "1"])}),
    "image_to_graph": Entry(image_to_graph, {"image": torch.rand(1, 8, 8), "patch_size": 4},
                            {"image": st.one_of(st.sampled_from([None, torch.rand(8), torch.rand(1, 2, 8, 8), "img"]),
                                                bad_tensor((1, 8, 8), free=(0, 1, 2), ranks=(2,), wrong_dtypes=[torch.bool])),
                             "patch_size": st.one_of(bad_int(1), st.just(3), st.just(16))}),
    "audio_to_graph": Entry(audio_to_graph, {"waveform": torch.randn(1600), "sample_rate": 8000},
                            {"waveform": bad_tensor((1600,), free=(0,), ranks=(2,)), "sample_rate": bad_int(1),
                             "hop_length": bad_int(1), "n_mels": bad_int(1),
                             "f_min": st.sampled_from([-1.0, float("nan"), "x", None, 1e9])}),
    "text_to_graph": Entry(text_to_graph, {"text": torch.tensor([1, 2, 3]), "tokenizer": None, "pattern": Full()},
                           {"text": st.one_of(st.sampled_from([torch.tensor([1.5, 2.0]), torch.tensor([[1, 2]]), 3, None,
                                                               torch.tensor([], dtype=torch.long)]),
                                              st.integers(-(2**40), -1).map(lambda i: torch.tensor([1, i, 2]))),
                            "pattern": st.sampled_from([None, "Full()", 1]),
                            "tokenizer": st.sampled_from([True, "words", 3, Tokenizer]),
                            "add_cls": st.sampled_from([1, "yes", None])}),
    "text_to_graph(tokenizer)": Entry(text_to_graph, {"text": torch.tensor([1, 2, 3]), "tokenizer": TOKENIZER,
                                                      "pattern": Full()},
                                      {"text": st.integers(len(TOKENIZER), 2**40).map(lambda i: torch.tensor([1, i]))},
                                      {"text": ["text", "id"]}),
}


def test_every_valid_call_answers(offline_data):
    for entry in ENTRIES.values():
        entry.call(**entry.valid)  # the baseline each bad input differs from in one argument


CASES = [(entry_name, arg) for entry_name, entry in ENTRIES.items() for arg in entry.bad]


@pytest.mark.parametrize("entry_name, arg", CASES, ids=[f"{e}-{a}" for e, a in CASES])
@SEARCH
@given(data=st.data())
def test_a_bad_argument_is_refused_by_name(entry_name, arg, data):
    entry = ENTRIES[entry_name]
    value = data.draw(entry.bad[arg], label=arg)
    count_bad(f"{entry_name}: {arg}")
    kwargs = {**entry.valid, arg: value}
    try:
        result = entry.call(**kwargs)
    except (TypeError, ValueError) as err:
        words = entry.names.get(arg, [arg])
        assert named(str(err), words), f"{entry_name}({arg}={value!r}): {type(err).__name__}: {err}"
        return
    raise AssertionError(f"{entry_name}({arg}={value!r}) was accepted silently: {result!r}"[:500])


# valid inputs: generated patterns answer correctly ------------------------------------------------

SIZES = st.integers(0, 4)
VALID_PATTERNS = st.one_of(
    st.builds(Window, SIZES), st.builds(lambda a, b: Window(left=a, right=b), SIZES, SIZES), st.just(Full()),
    st.just(Causal()), st.builds(Stride, st.integers(1, 4), st.none() | SIZES),
    st.builds(Global, st.lists(st.integers(-2, 1), max_size=3)), st.builds(Random, st.integers(0, 2), SIZES),
    st.builds(Expander, st.sampled_from([2, 4]), SIZES), st.builds(longformer, SIZES, st.integers(0, 1)),
    st.builds(Window, st.integers(2**31 - 8, 2**31 - 1)),  # the largest reach there is
)


@settings(max_examples=150, deadline=None)
@given(pattern=st.one_of(VALID_PATTERNS, st.builds(lambda a, b: a | b, VALID_PATTERNS, VALID_PATTERNS)),
       n=st.integers(2, 12))
def test_valid_patterns_round_trip_and_agree_with_their_specification(pattern, n):
    assert parse_pattern(repr(pattern)) == pattern
    try:
        pattern.validate(n)
    except ValueError:
        return  # e.g. Random(per_query > n) or a global id out of range: refused by name, covered above
    dense = pattern.dense_mask(n)
    ei = pattern.edge_index(n)
    from_edges = torch.zeros(n, n, dtype=torch.bool)
    from_edges[ei[1], ei[0]] = True
    assert torch.equal(dense, from_edges)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 5), min_size=1, max_size=4), heads=st.integers(1, 2),
       pattern=VALID_PATTERNS.filter(lambda p: not isinstance(p, (Random, Global))))
def test_valid_attention_equals_the_reference(sizes, heads, pattern):
    n = sum(sizes)
    try:
        for size in sizes:
            pattern.validate(size)
    except ValueError:
        return  # a pattern that cannot lie on a short sequence (a global id past its end) is refused, by name
    q, k, v = (torch.randn(n, heads, 3, dtype=torch.float64) for _ in range(3))
    got = ops.attention(q, k, v, pattern, sizes=sizes)
    want = ops.attention(q, k, v, pattern, sizes=sizes, backend="reference")
    torch.testing.assert_close(got.out, want.out)


# found by the search in ops/ and patterns/ and fixed there ------------------------------------------

def _dense_dtype_mismatch():
    ops.attention(QKV, QKV.double(), QKV, Full(), backend="dense")


def _bias_wrong_shape():
    ops.attention(QKV, QKV, QKV, Full(), bias=lambda q_idx, k_idx: torch.zeros(3))


KNOWN = {
    # a bool or complex pos was accepted by AttentionGraph.build
    "bool pos": (lambda: AttentionGraph.build(Window(1), 2, pos=torch.tensor([True, False])), "pos"),
    # q and k of different dtypes ended in SDPA's RuntimeError
    "q, k dtypes": (_dense_dtype_mismatch, "k"),
    # a bias callable of the wrong shape ended in a RuntimeError from permute / broadcasting
    "bias shape": (_bias_wrong_shape, "bias"),
    # edge_index / dense_mask passed device straight to torch
    "device='gpu'": (lambda: Window(1).edge_index(3, device="gpu"), "device"),
    # Expander(10**9).edge_index(2) drew 5e8 permutations (a hang)
    "huge expander": (lambda: Expander(10**9).edge_index(2), "degree"),
}


@pytest.mark.parametrize("case", list(KNOWN))
def test_findings_in_ops_and_patterns_are_named(case):
    call, name = KNOWN[case]
    count_bad(f"known: {case}")
    with pytest.raises((TypeError, ValueError), match=rf"\b{name}\b"):
        call()
