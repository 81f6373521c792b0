"""Every argument is validated, and nothing is silently ignored (issue 25, class 9).

Three searches over the public API:

* **typed parameters, read from the signatures**: for every public constructor and function in
  :data:`SIGNATURES` each parameter annotated ``bool``, ``int`` or ``float`` gets generated values
  of another kind (a bool for an int, a string, ``None`` where ``None`` is not allowed, NaN and
  the infinities for a float, an int for a bool): the call must raise ``TypeError`` /
  ``ValueError`` naming the parameter. A parameter added tomorrow is searched without a new test.
* **the new entry points' own ranges** (:data:`ENTRIES`, as in ``test_reliability_inputs``):
  ``scale``, the mel helpers, the GPS layer and model, the pictures, the synthetic data.
* **options the chosen mode ignores**: every such combination is refused (``ValueError``) or
  warned about (``UserWarning``), naming the option; the same options where the mode reads them
  are accepted.
"""
from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import BAD_RATE, Entry, bad_input_report, bad_int, bad_tensor, count_bad, named  # noqa: F401
from torch import nn

from graphattn import ops, viz
from graphattn.convert import Tokenizer, log_mel, mel_centers, mel_filterbank, text_to_graph, to_networkx
from graphattn.datasets import per_class_split_masks, random_split_masks, sbm_graph
from graphattn.experiments.graph_config import GraphConfig
from graphattn.experiments.node_config import BASELINE_MODELS, GRAPHATTN_MODELS, NodeConfig
from graphattn.experiments.sequence_config import READ_BY, SEQUENCE_TASKS, SequenceConfig
from graphattn.models import GraphAttentionNetwork, GraphGPS, GraphTransformer
from graphattn.nn import GPSConv, SelfAttentionConv, TransformerBlock
from graphattn.nn.encodings import (
    ALiBi,
    Compose,
    LaplacianEncoding,
    LearnedEncoding,
    RandomWalkEncoding,
    RelativePositionBias,
    RotaryEncoding,
    ShortestPathBias,
    SinusoidalEncoding,
    alibi_slopes,
    t5_bucket,
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
)
from graphattn.train import TrainConfig

pytestmark = pytest.mark.usefixtures("bad_input_report")

SEARCH = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QKV = torch.randn(6, 2, 4)
X = torch.randn(6, 4)


def attention(**kw):
    return ops.attention(kw.pop("q", QKV), kw.pop("k", QKV), kw.pop("v", QKV), kw.pop("edges", Window(1)), **kw)


def build(**kw):
    return AttentionGraph.build(kw.pop("edges"), **kw)


# typed parameters, read from the signatures ---------------------------------------------------

#: Every public constructor and function with bool / int / float parameters: name -> (the
#: callable, whose signature is read; a valid call's keyword arguments).
SIGNATURES = {
    "attention": (ops.attention, {"q": QKV, "k": QKV, "v": QKV, "edges": Window(1)}),
    "AttentionGraph.build": (build, {"edges": Window(1), "num_nodes": 6}, AttentionGraph.build),
    "Window": (Window, {"radius": 1}), "Stride": (Stride, {"stride": 2}), "Random": (Random, {"per_query": 1}),
    "Grid2D": (Grid2D, {"radius": 1}), "VirtualNodes": (VirtualNodes, {}), "Expander": (Expander, {"degree": 2}),
    "longformer": (longformer, {"radius": 1}), "bigbird": (bigbird, {"radius": 1}),
    "SelfAttentionConv": (SelfAttentionConv, {"in_channels": 4, "out_channels": 4, "heads": 2}),
    "TransformerBlock": (TransformerBlock, {"channels": 4, "heads": 2}),
    "GPSConv": (GPSConv, {"channels": 4, "conv": None, "heads": 2}),
    "GraphTransformer": (GraphTransformer, {"in_channels": 4, "hidden_channels": 8, "out_channels": 2}),
    "GraphAttentionNetwork": (GraphAttentionNetwork, {"in_channels": 4, "hidden_channels": 8, "out_channels": 2}),
    "GraphGPS": (GraphGPS, {"in_channels": 4, "hidden_channels": 8, "out_channels": 2}),
    "SinusoidalEncoding": (SinusoidalEncoding, {"d_model": 4}),
    "LearnedEncoding": (LearnedEncoding, {"max_len": 4, "d_model": 4}),
    "LaplacianEncoding": (LaplacianEncoding, {"k": 2, "d_model": 4}),
    "RandomWalkEncoding": (RandomWalkEncoding, {"walk_length": 2, "d_model": 4}),
    "RelativePositionBias": (RelativePositionBias, {"heads": 2}), "ALiBi": (ALiBi, {"heads": 2}),
    "RotaryEncoding": (RotaryEncoding, {"head_dim": 4}), "ShortestPathBias": (ShortestPathBias, {"heads": 2}),
    "alibi_slopes": (alibi_slopes, {"heads": 2}), "t5_bucket": (t5_bucket, {"relative_position": torch.arange(-3, 4)}),
    "Tokenizer": (Tokenizer, {}),
    "Tokenizer.encode": (lambda **kw: TOKENIZER.encode(**kw), {"text": "a graph"}, Tokenizer.encode),
    "text_to_graph": (text_to_graph, {"text": torch.tensor([1, 2]), "tokenizer": None, "pattern": Full()}),
    "log_mel": (log_mel, {"waveform": torch.randn(800), "sample_rate": 8000}),
    "mel_filterbank": (mel_filterbank, {"n_freqs": 201, "sample_rate": 8000, "n_mels": 10}),
    "mel_centers": (mel_centers, {"n_mels": 10, "f_min": 0.0, "f_max": 4000.0}),
    "to_networkx": (to_networkx, {"data_or_pattern": Window(1), "n": 5}),
    "sbm_graph": (sbm_graph, {"num_nodes": 40, "num_classes": 2, "num_features": 4, "degree": 2}),
    "random_split_masks": (random_split_masks, {"num_nodes": 40}),
    "per_class_split_masks": (per_class_split_masks, {"y": torch.arange(2).repeat(60)}),
    "TrainConfig": (TrainConfig, {}),
    "plot_pattern": (viz.plot_pattern, {"patterns": Window(1), "n": 6}),
    "pattern_gallery": (viz.pattern_gallery, {"n": 8}),
    "attention_to_dense": (viz.attention_to_dense, {"edge_index": Window(1).edge_index(4), "alpha": torch.rand(10),
                                                    "n": 4}),
    "draw_graph": (viz.draw_graph, {"data": (Window(1), 5)}),
    "plot_bars": (viz.plot_bars, {"summary": [{"model": "a", "runs": 2, "test_acc_mean": 0.5, "test_acc_std": 0.1}],
                                  "title": "t"}),
    "plot_accuracy_cost": (viz.plot_accuracy_cost, {"rows": [{"pattern": "Full()", "runs": 1, "test_acc_mean": 0.5,
                                                              "test_acc_std": 0.0, "time_per_epoch_s": 1.0,
                                                              "peak_memory_mb": 2.0}], "title": "t"}),
}
TOKENIZER = Tokenizer(cls=True).fit(["a graph of words"])
#: Parameters whose annotation says int / float / bool but that take more by design.
WIDER = {("SelfAttentionConv", "in_channels"): "-1 (lazy) or a pair", ("Tokenizer.encode", "text"): "a str"}


def kind(annotation: object) -> str | None:
    """``"bool"``, ``"int"`` or ``"float"`` when the annotation is one of them (``| None`` allowed)."""
    text = str(annotation).replace("'", "")
    parts = {p.strip() for p in text.split("|")} - {"None"}
    return next(iter(parts)) if len(parts) == 1 and parts <= {"bool", "int", "float"} else None


def wrong(kind_: str, optional: bool) -> st.SearchStrategy:
    """Values of another kind than ``kind_`` (``None`` too unless ``optional``)."""
    base = {"bool": [st.integers(0, 1), st.just("yes"), st.just(1.0)],
            "int": [st.booleans(), st.floats(allow_nan=True, allow_infinity=True), st.just("3"), st.just([1])],
            "float": [st.booleans(), st.sampled_from([float("nan"), float("inf"), -float("inf"), 10**400]),
                      st.just("0.5"), st.just([0.5])]}[kind_]
    return st.one_of(*base, *([] if optional else [st.none()]))


def typed_cases() -> list[tuple[str, str, str, bool]]:
    cases = []
    for name, (call, _, *sig) in SIGNATURES.items():
        for p in inspect.signature(sig[0] if sig else call).parameters.values():
            k = kind(p.annotation)
            if k is None or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or (name, p.name) in WIDER:
                continue
            cases.append((name, p.name, k, p.default is None or "None" in str(p.annotation)))
    return cases


TYPED = typed_cases()


def test_the_signature_search_reaches_every_typed_parameter():
    assert len(TYPED) > 120  # about 150 today: a refactor that hides them from the search fails here
    for call, valid, *_ in SIGNATURES.values():
        call(**valid)  # the baseline each bad value differs from in one argument


@pytest.mark.parametrize("name, arg, kind_, optional", TYPED, ids=[f"{n}-{a}" for n, a, _, _ in TYPED])
@SEARCH
@given(data=st.data())
def test_a_typed_parameter_refuses_another_kind_by_name(name, arg, kind_, optional, data):
    call, valid, *_ = SIGNATURES[name]
    value = data.draw(wrong(kind_, optional), label=arg)
    count_bad(f"class 9 typed parameter: {name}.{arg}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = call(**{**valid, arg: value})
    except (TypeError, ValueError) as err:
        assert named(str(err), [arg]), f"{name}({arg}={value!r}): {type(err).__name__}: {err}"
        return
    raise AssertionError(f"{name}({arg}={value!r}) was accepted: {result!r}"[:400])


# the new entry points' own ranges ------------------------------------------------------------

BAD_SCALE = st.one_of(st.floats(max_value=0.0), st.sampled_from([float("nan"), float("inf"), True, "1", 10**400]))
NOT_MODULES = st.sampled_from([3, "ALiBi", lambda q, k, pos: (q, k, None), ALiBi, nn.Linear(4, 4)])
BAD_SIZE = st.one_of(st.tuples(st.integers(-5, 15), st.integers(16, 64)), st.just((64,)), st.just("64x64"),
                     st.just((64.0, 64.0)), st.just((True, 64)))
BAD_FIGSIZE = st.one_of(st.tuples(st.floats(max_value=0.0), st.just(3.0)), st.just((float("inf"), 3.0)),
                        st.just((float("nan"), 3.0)), st.just((True, 3.0)), st.just("3x3"), st.just((1e7, 1e7)))
SUMMARY = SIGNATURES["plot_bars"][1]["summary"]

ENTRIES: dict[str, Entry] = {
    "ops.attention(scale)": Entry(attention, {}, {"scale": BAD_SCALE}),
    "TransformerBlock": Entry(TransformerBlock, {"channels": 4, "heads": 2},
                              {"channels": bad_int(1, huge=False), "attn_dropout": BAD_RATE,
                               "position": NOT_MODULES.filter(lambda m: not isinstance(m, nn.Linear))}),
    "GPSConv": Entry(GPSConv, {"channels": 4, "conv": None, "heads": 2},
                     {"heads": bad_int(1, huge=False), "attn_dropout": BAD_RATE, "conv": NOT_MODULES,
                      "act": st.sampled_from([None, 3, "nonsense", nn.Linear]),
                      "norm": st.sampled_from([3, "nonsense", nn.BatchNorm1d]),
                      "pattern": st.sampled_from([3, "Window(", Window])}),
    "GraphGPS": Entry(GraphGPS, {"in_channels": 4, "hidden_channels": 8, "out_channels": 2},
                      {"edge_dim": bad_int(1, optional=True, huge=False), "pe_dim": bad_int(0, huge=False),
                       "pattern": st.sampled_from([3, "Window(", Window]), "pooling": st.sampled_from(["max", None, 1])}),
    "GraphAttentionNetwork": Entry(GraphAttentionNetwork, {"in_channels": 4, "hidden_channels": 8, "out_channels": 2},
                                   {"out_heads": bad_int(1, huge=False), "projection": st.sampled_from(["x", None, 1]),
                                    "position": NOT_MODULES}),
    "GraphTransformer(modules)": Entry(GraphTransformer, {"in_channels": 4, "hidden_channels": 8, "out_channels": 2},
                                       {"position": NOT_MODULES, "feature_encoding": NOT_MODULES.filter(
                                           lambda m: not isinstance(m, nn.Linear))}),
    "SelfAttentionConv(position)": Entry(SelfAttentionConv, {"in_channels": 4, "out_channels": 4, "heads": 2},
                                         {"position": NOT_MODULES}),
    "Compose": Entry(lambda **kw: Compose(*kw["parts"]), {"parts": [ALiBi(2)]},
                     {"parts": st.lists(NOT_MODULES, min_size=0, max_size=2)}, {"parts": ["Compose"]}),
    "t5_bucket": Entry(t5_bucket, {"relative_position": torch.arange(-3, 4)},
                       {"relative_position": st.sampled_from([torch.arange(3.0), torch.tensor([True]), [1, 2], 3, None]),
                        "num_buckets": bad_int(4), "max_distance": st.integers(-5, 8)}),
    "mel_filterbank": Entry(mel_filterbank, {"n_freqs": 201, "sample_rate": 8000, "n_mels": 10},
                            {"n_freqs": bad_int(2), "sample_rate": bad_int(1), "n_mels": bad_int(1),
                             "f_min": st.one_of(st.floats(max_value=-1e-9), st.floats(4000.0, 1e9)),
                             "f_max": st.one_of(st.floats(max_value=0.0), st.floats(4000.5, 1e12))}),
    "mel_centers": Entry(mel_centers, {"n_mels": 10, "f_min": 0.0, "f_max": 4000.0},
                         {"n_mels": bad_int(1), "f_min": st.floats(max_value=-1e-9), "f_max": st.floats(max_value=0.0)}),
    "log_mel": Entry(log_mel, {"waveform": torch.randn(800), "sample_rate": 8000},
                     {"floor": st.one_of(st.floats(max_value=0.0), st.just(float("inf"))),
                      "waveform": bad_tensor((800,), free=(0,), ranks=(2,))}),
    "Tokenizer": Entry(Tokenizer, {}, {"min_freq": bad_int(1), "subwords": bad_int(0),
                                       "max_size": bad_int(2, optional=True)}),
    "plot_pattern": Entry(viz.plot_pattern, {"patterns": Window(1), "n": 6},
                          {"n": bad_int(1), "titles": st.sampled_from(["one title", 3, ["a", "b"], []]),
                           "size": BAD_SIZE, "figsize": BAD_FIGSIZE, "path": st.sampled_from([3, b"x.png", ""]),
                           "ncols": bad_int(1, optional=True)}),
    "plot_attention": Entry(viz.plot_attention, {"weights": (Window(1).edge_index(6), torch.rand(16, 2)), "n": 6},
                            {"heads": st.one_of(st.sampled_from([1, "0", [], [2], [True], [-1]]),
                                                st.lists(st.integers(2, 9), min_size=1, max_size=3)),
                             "n": st.sampled_from([0, -1, 10**6, 2.5, None])}),
    "attention_to_dense": Entry(viz.attention_to_dense, SIGNATURES["attention_to_dense"][1],
                                {"n": st.one_of(bad_int(0), st.just(2)), "alpha": bad_tensor((10,), ranks=(2,), finite=False)},
                                {"n": ["n", "edge_index"]}),
    "draw_graph": Entry(viz.draw_graph, {"data": (Window(1), 5)},
                        {"layout": st.sampled_from(["spectral", None, 1]), "seed": bad_int(0),
                         "data": st.sampled_from([(Window(1), 10**5), (Window(1), -1), 3, "graph"])},
                        {"data": ["data", "n", "data_or_pattern", "nodes"]}),
    "plot_bars": Entry(viz.plot_bars, {"summary": SUMMARY, "title": "t"},
                       {"scale": BAD_SCALE, "limits": st.sampled_from([(100.0, 0.0), (0.0,), "0-100", (0.0, float("nan"))])}),
    "plot_accuracy_cost": Entry(viz.plot_accuracy_cost, SIGNATURES["plot_accuracy_cost"][1], {"min_span": BAD_SCALE}),
    "to_networkx": Entry(to_networkx, {"data_or_pattern": Window(1), "n": 5},
                         {"n": st.one_of(bad_int(0, optional=True), st.just(None)), "data_or_pattern": st.sampled_from(
                             [3, "Window(1)", Window, torch.zeros(2, 1, dtype=torch.long)])}),
    "sbm_graph": Entry(sbm_graph, SIGNATURES["sbm_graph"][1],
                       {"signal": st.one_of(st.floats(max_value=-1e-9), st.just(float("inf"))), "homophily": BAD_RATE,
                        "seed": bad_int(0), "degree": st.one_of(bad_int(2), st.just(3)),
                        "num_nodes": st.one_of(bad_int(2), st.just(10**13))}),
    "random_split_masks": Entry(random_split_masks, {"num_nodes": 40},
                                {"train": st.one_of(BAD_RATE, st.just(0.0)), "val": BAD_RATE, "seed": bad_int(0)}),
}
CASES = [(entry_name, arg) for entry_name, entry in ENTRIES.items() for arg in entry.bad]


def test_every_valid_call_answers():
    for entry in ENTRIES.values():
        entry.call(**entry.valid)


@pytest.mark.parametrize("entry_name, arg", CASES, ids=[f"{e}-{a}" for e, a in CASES])
@SEARCH
@given(data=st.data())
def test_a_bad_argument_is_refused_by_name(entry_name, arg, data):
    entry = ENTRIES[entry_name]
    value = data.draw(entry.bad[arg], label=arg)
    count_bad(f"class 9 range: {entry_name}.{arg}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = entry.call(**{**entry.valid, arg: value})
    except (TypeError, ValueError) as err:
        assert named(str(err), entry.names.get(arg, [arg])), f"{entry_name}({arg}={value!r}): {type(err).__name__}: {err}"
        return
    raise AssertionError(f"{entry_name}({arg}={value!r}) was accepted silently: {result!r}"[:500])


# options the chosen mode ignores -----------------------------------------------------------------

NODE = NodeConfig.from_options(models=("gcn",)).options()
#: A value other than NodeConfig's default for each option that only the graphattn models read.
NODE_OURS = {"architecture": st.just("transformer"), "hidden": st.sampled_from([16, 32, 128]),
             "heads": st.sampled_from([1, 2, 4]), "layers": st.integers(3, 5),
             "dropout": st.floats(0.0, 0.95).filter(lambda p: p != NODE["dropout"]),
             "encoding": st.sampled_from(["laplacian", "random_walk"]),
             "lr": st.floats(1e-5, 1.0).filter(lambda x: x != NODE["lr"]),
             "weight_decay": st.floats(0.0, 1.0).filter(lambda x: x != NODE["weight_decay"])}
OWN_TASKS = {name: (task.name, default) for task in SEQUENCE_TASKS.values() for name, default in task.options.items()}
SEQUENCE_VALUES = {"hop": st.integers(1, 400).filter(lambda h: h != 80), "max_length": st.integers(8, 4000).filter(
    lambda n: n != 128), "subwords": st.integers(1, 10**5), "word_dropout": st.floats(0.01, 0.9),
    "shift": st.integers(1, 5), "freq_mask": st.integers(1, 20), "time_mask": st.integers(1, 20)}


def _sequence(draw, option: str) -> tuple:
    """A task that does not read ``option`` and a value for it; the call on that task and on one that does."""
    readers = READ_BY.get(option) or (OWN_TASKS[option][0],)
    task = draw(st.sampled_from([t for t in SEQUENCE_TASKS if t not in readers]), label="task")
    value = draw(SEQUENCE_VALUES[option], label=option)
    return (lambda: SequenceConfig.from_options(task=task, **{option: value}),
            lambda: SequenceConfig.from_options(task=readers[0], **{option: value}))


def _node(draw, option: str) -> tuple:
    models = draw(st.sampled_from([("gcn",), ("gat",), ("gcn", "gat")]), label="models")
    value = draw(NODE_OURS[option], label=option)
    ours = draw(st.sampled_from(GRAPHATTN_MODELS), label="with")
    return (lambda: NodeConfig.from_options(models=models, **{option: value}),
            lambda: NodeConfig.from_options(models=(*models, ours), **{option: value}))


def _node_model_option(option: str, model: str, values: st.SearchStrategy):
    def case(draw, _: str) -> tuple:
        others = draw(st.lists(st.sampled_from([m for m in (*GRAPHATTN_MODELS, *BASELINE_MODELS) if m != model]),
                               min_size=1, max_size=3, unique=True), label="models")
        value = draw(values, label=option)
        return (lambda: NodeConfig.from_options(models=tuple(others), **{option: value}),
                lambda: NodeConfig.from_options(models=(*others, model), **{option: value}))
    return case


def _graph(option: str, model: str, value: object):
    def case(draw, _: str) -> tuple:
        others = draw(st.lists(st.sampled_from([m for m in ("gps", "transformer", "gin") if m != model]), min_size=1,
                               max_size=2, unique=True), label="models")
        return (lambda: GraphConfig.from_options(models=tuple(others), **{option: value}),
                lambda: GraphConfig.from_options(models=(*others, model), **{option: value}))
    return case


def _encoding_dim(config):
    def case(draw, _: str) -> tuple:
        dim = draw(st.integers(2, 9).filter(lambda d: d not in (8, 16)), label="encoding_dim")
        return (lambda: config.from_options(encoding="none", encoding_dim=dim),
                lambda: config.from_options(encoding="laplacian", encoding_dim=dim))
    return case


def _attention_option(option: str):
    def case(draw, _: str) -> tuple:
        h, c = draw(st.integers(1, 3), label="heads"), draw(st.integers(1, 4), label="channels")
        q = torch.randn(5, h, c)
        value = torch.randn(h, c) if option == "att" else draw(st.floats(1e-3, 10.0), label="scale")
        score, reads = ("dot", "additive") if option == "att" else ("additive", "dot")
        extra = {} if option == "att" else {"att": torch.randn(h, c)}
        return (lambda: ops.attention(q, q, q, Full(), score=score, **{option: value}, **extra),
                lambda: ops.attention(q, q, q, Full(), score=reads, **{option: value}))
    return case


def _layer_encoding(draw, _: str) -> tuple:
    layer = SelfAttentionConv(4, 4, heads=2)
    encoding = draw(st.sampled_from([lambda q, k: (q, k, None), ALiBi(2).prepare(AttentionGraph.build(Full(), 6))]))
    return (lambda: layer(X, Full(), encoding=encoding),
            lambda: SelfAttentionConv(4, 4, heads=2, position=ALiBi(2))(X, Full(), encoding=encoding))


def _conv_kwargs(draw, option: str) -> tuple:
    from torch_geometric.nn import GINEConv

    edge_index = Window(1).edge_index(6)
    attr = torch.randn(edge_index.size(1), draw(st.integers(1, 3), label="edge_dim"))
    local = GINEConv(nn.Linear(4, 4), edge_dim=attr.size(1))
    return (lambda: GPSConv(4, None, 2)(X, edge_index, edge_attr=attr),
            lambda: GPSConv(4, local, 2)(X, edge_index, edge_attr=attr))


def _gps_edge_attr(draw, option: str) -> tuple:
    edge_index = Window(1).edge_index(6)
    attr = torch.randn(edge_index.size(1), draw(st.integers(1, 3), label="edge_dim"))
    return (lambda: GraphGPS(4, 8, 2, heads=2)(X, edge_index, attr),
            lambda: GraphGPS(4, 8, 2, heads=2, edge_dim=attr.size(1))(X, edge_index, attr))


def _draw_seed(draw, option: str) -> tuple:
    seed, layout = draw(st.integers(1, 2**32 - 1), label="seed"), draw(st.sampled_from(["circular", "kamada_kawai"]))
    return (lambda: viz.draw_graph((Window(1), 5), layout=layout, seed=seed),
            lambda: viz.draw_graph((Window(1), 5), layout="spring", seed=seed))


def _dist_timeout(draw, option: str) -> tuple:
    seconds = draw(st.integers(1, 10**5).filter(lambda t: t != 300), label="dist_timeout")

    def under_torchrun():
        with pytest.MonkeyPatch.context() as env:
            env.setenv("WORLD_SIZE", "2")
            return NodeConfig.from_options(dist_timeout=seconds, workers=1)
    return lambda: NodeConfig.from_options(dist_timeout=seconds), under_torchrun


def _layer_bias(draw, option: str) -> tuple:
    width = draw(st.sampled_from([2, 4, 8]), label="width")
    return (lambda: SelfAttentionConv(width, width, projection="none", project_out=False, bias=False),
            lambda: SelfAttentionConv(width, width, projection="none", project_out=True, bias=False))


IGNORED = {
    **{f"SequenceConfig.{o}": (_sequence, o) for o in (*READ_BY, *OWN_TASKS)},
    **{f"NodeConfig.{o} (baselines only)": (_node, o) for o in NODE_OURS},
    "NodeConfig.virtual_nodes": (_node_model_option("virtual_nodes", "graph+virtual", st.integers(2, 8)), "virtual_nodes"),
    "NodeConfig.expander_degree": (_node_model_option("expander_degree", "graph+expander", st.sampled_from([2, 6, 8])),
                                   "expander_degree"),
    "NodeConfig.global_layers": (_node_model_option("global_layers", "local-global", st.integers(1, 2)),
                                 "global_layers"),
    "NodeConfig.encoding_dim": (_encoding_dim(NodeConfig), "encoding_dim"),
    "GraphConfig.attention": (_graph("attention", "gps", "Window(2)"), "attention"),
    "GraphConfig.add": (_graph("add", "transformer", "VirtualNodes(1)"), "add"),
    "GraphConfig.encoding_dim": (_encoding_dim(GraphConfig), "encoding_dim"),
    "ops.attention.att (dot scores)": (_attention_option("att"), "att"),
    "ops.attention.scale (additive scores)": (_attention_option("scale"), "scale"),
    "SelfAttentionConv.forward.encoding (no position)": (_layer_encoding, "encoding"),
    "GPSConv.forward.kwargs (conv=None)": (_conv_kwargs, "edge_attr"),
    "GraphGPS.forward.edge_attr (edge_dim=None)": (_gps_edge_attr, "edge_attr"),
    "draw_graph.seed (not spring)": (_draw_seed, "seed"),
    "NodeConfig.dist_timeout (no torchrun)": (_dist_timeout, "dist_timeout"),
    "SelfAttentionConv.bias (no projection)": (_layer_bias, "bias"),
}


@pytest.mark.parametrize("case", list(IGNORED))
@SEARCH
@given(data=st.data())
def test_an_option_the_mode_ignores_is_refused_by_name_and_read_where_it_applies(case, data):
    make, option = IGNORED[case]
    ignored, read = make(data.draw, option)
    count_bad(f"class 9 ignored option: {case}")
    with pytest.raises(ValueError) as err:
        ignored()
    assert named(str(err.value), [option]), f"{case}: {err.value}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read()  # the same option where the mode reads it is taken


# cls pooling reads the first node: it must hear the whole sequence ---------------------------

BLIND = st.one_of(st.builds(Window, st.integers(0, 6)), st.just(Causal()),
                  st.builds(lambda r: Window(left=r, right=0), st.integers(0, 8)),
                  st.builds(Stride, st.integers(2, 8)), st.builds(lambda r: Window(r) | Stride(16), st.integers(0, 3)))


def _hears(pattern, layers: int, n: int = 64) -> int:
    """Nodes whose features reach node 0 through ``layers`` layers (BFS along the edges, an oracle
    independent of the dense-mask product the model uses)."""
    import networkx as nx

    size = n + pattern.extra_nodes
    graph = nx.DiGraph()
    graph.add_nodes_from(range(size))
    graph.add_edges_from(pattern.edge_index(size).t().tolist())  # j -> i: i hears j
    reach = nx.single_source_shortest_path_length(graph.reverse(copy=False), 0, cutoff=layers)
    return sum(1 for node in reach if node < n)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=BLIND, layers=st.integers(1, 4), fix=st.sampled_from([None, Global((0,)), VirtualNodes(1), Full()]))
def test_cls_pooling_warns_exactly_when_the_first_node_cannot_hear_the_sequence(pattern, layers, fix):
    pattern = pattern if fix is None else pattern | fix
    count_bad("class 9 ignored option: cls pooling without a global token")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        GraphTransformer(4, 8, 2, num_layers=layers, heads=2, pattern=pattern, pooling="cls")
    warned = [w for w in seen if issubclass(w.category, UserWarning) and "pooling='cls'" in str(w.message)]
    assert bool(warned) == (_hears(pattern, layers) < 64), (pattern, layers, [str(w.message) for w in warned])
