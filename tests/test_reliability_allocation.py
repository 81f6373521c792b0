"""Impossible work is refused before it is allocated (issue 25, class 7).

Every route a user can take to O(N^2) memory (or to a table sized by an argument) goes through
:func:`graphattn.checks.check_allocation`: it is refused with a ``ValueError`` that gives the
estimate and the alternative, before anything is allocated. Two searches over the table of
:data:`ROUTES`:

* under a small ``GRAPHATTN_MEMORY_BUDGET`` each route is refused for generated sizes past the
  budget and answers for sizes well inside it, so the estimate is neither missing nor a blanket
  refusal;
* with the machine's own memory as the budget, sizes that would need terabytes are refused at
  once (a route without an estimate would reach the allocator and fail there, or hang).
"""
from __future__ import annotations

import re
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import bad_input_report, count_bad  # noqa: F401
from torch_geometric.data import Data

from graphattn import ops, viz
from graphattn.cli import main
from graphattn.convert import to_networkx
from graphattn.datasets import sbm_graph
from graphattn.models import GraphTransformer
from graphattn.nn import SelfAttentionConv
from graphattn.nn.encodings import LearnedEncoding, RandomWalkEncoding, RelativePositionBias, ShortestPathBias
from graphattn.ops import AttentionGraph
from graphattn.patterns import Full, Window, batch_dense_mask

pytestmark = pytest.mark.usefixtures("bad_input_report")

BUDGET = 1 << 20  # 1 MiB: the searches' budget, so that refusals come at small sizes


def _qkv(n: int) -> torch.Tensor:
    return torch.randn(n, 1, 2)


def _ring(n: int) -> torch.Tensor:
    idx = torch.arange(n)
    return torch.stack([idx, (idx + 1) % n])


#: route -> (call on size n, a size range that fits the 1 MiB budget, one that does not). The
#: sizes are what the route scales with: nodes, a table's reach, a picture's inches.
ROUTES = {
    "ops.attention backend='reference'": (lambda n: ops.attention(_qkv(n), _qkv(n), _qkv(n), Full(),
                                                                  backend="reference"), (2, 40), (600, 3000)),
    "ops.attention Full() with weights": (lambda n: ops.attention(_qkv(n), _qkv(n), _qkv(n), Full(),
                                                                  return_weights=True), (2, 40), (1500, 5000)),
    "ops.attention Full() with dropout": (lambda n: ops.attention(_qkv(n), _qkv(n), _qkv(n), Full(), dropout=0.5,
                                                                  training=True), (2, 40), (1500, 5000)),
    "SelfAttentionConv backend='reference'": (lambda n: SelfAttentionConv(2, 2, backend="reference")(
        torch.randn(n, 2), Full()), (2, 40), (600, 3000)),
    "GraphTransformer Full() weights": (lambda n: GraphTransformer(2, 2, 2, num_layers=1, heads=1, pattern=Full())(
        torch.randn(n, 2), return_attention_weights=True), (2, 40), (1500, 5000)),
    "batch ids with gaps": (lambda n: AttentionGraph.build(Window(1), batch=torch.tensor([0, n])), (2, 1000),
                            (10**5, 10**7)),
    "Pattern.dense_mask": (lambda n: Window(1).dense_mask(n), (2, 200), (1100, 5000)),
    "batch_dense_mask": (lambda n: batch_dense_mask(Window(1), torch.tensor([n // 2, n - n // 2])), (2, 200),
                         (1100, 5000)),
    "Full().edge_index": (lambda n: Full().edge_index(n), (2, 60), (200, 3000)),
    "ShortestPathBias.distances": (lambda n: ShortestPathBias.distances(_ring(n), n), (2, 60), (220, 3000)),
    "attention_to_dense": (lambda n: viz.attention_to_dense(_ring(n), torch.rand(n, 2), n), (2, 120), (400, 3000)),
    "to_networkx (a pattern)": (lambda n: to_networkx(Full(), n), (2, 20), (60, 400)),
    "to_networkx (a Data)": (lambda n: to_networkx(Data(edge_index=Full().edge_index(n), num_nodes=n)), (2, 20),
                             (60, 300)),
    "plot_pattern figsize": (lambda n: viz.plot_pattern(Window(1), 4, figsize=(n, n)), (1, 3), (6, 1000)),
    "RelativePositionBias max_distance": (lambda n: RelativePositionBias(2, max_distance=n), (64, 5000),
                                          (40000, 10**6)),
    "ShortestPathBias max_distance": (lambda n: ShortestPathBias(2, max_distance=n), (1, 5000), (140000, 10**7)),
    "LearnedEncoding max_len": (lambda n: LearnedEncoding(n, 4), (1, 5000), (70000, 10**7)),
    "RandomWalkEncoding.transform": (lambda n: RandomWalkEncoding(4, 4).transform()(Data(edge_index=_ring(n),
                                                                                         num_nodes=n)),
                                     (2, 80), (200, 2000)),
    "sbm_graph num_nodes": (lambda n: sbm_graph(n, num_classes=2, num_features=2, degree=2), (20, 300),
                            (20000, 10**6)),
}
ESTIMATE = re.compile(r"needs about [\d.]+ (bytes|KB|MB|GB|TB), more than the [\d.]+ (bytes|KB|MB|GB|TB) this \w+ has "
                      r"\(GRAPHATTN_MEMORY_BUDGET\); (?P<alternative>.{12,})")
SEARCH = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _refused(call, n: int) -> str:
    with pytest.raises(ValueError) as err:
        call(n)
    message = str(err.value)
    assert ESTIMATE.search(message), f"no estimate and alternative in: {message}"
    return message


@pytest.mark.parametrize("route", list(ROUTES))
@SEARCH
@given(data=st.data())
def test_a_route_past_the_budget_is_refused_with_its_estimate_and_answers_inside_it(route, data):
    call, fits, too_big = ROUTES[route]
    count_bad(f"class 7 allocation: {route}")
    with pytest.MonkeyPatch.context() as env, warnings.catch_warnings():
        env.setenv("GRAPHATTN_MEMORY_BUDGET", str(BUDGET))
        _refused(call, data.draw(st.integers(*too_big), label="too big"))
        warnings.simplefilter("ignore")
        call(data.draw(st.integers(*fits), label="fits"))


#: Sizes no machine holds: each route would need terabytes.
IMPOSSIBLE = {"ops.attention backend='reference'": 10**6, "ops.attention Full() with weights": 10**7,
              "Pattern.dense_mask": 10**7, "Full().edge_index": 10**6, "ShortestPathBias.distances": 10**6,
              "attention_to_dense": 10**6, "to_networkx (a pattern)": 10**6, "plot_pattern figsize": 10**6,
              "LearnedEncoding max_len": 10**12,
              "sbm_graph num_nodes": 10**12, "batch ids with gaps": 10**12}


@pytest.mark.parametrize("route", list(IMPOSSIBLE))
def test_terabytes_are_refused_at_once_on_this_machine(route, monkeypatch):
    monkeypatch.delenv("GRAPHATTN_MEMORY_BUDGET", raising=False)
    count_bad(f"class 7 allocation: {route} (terabytes)")
    call, *_ = ROUTES[route]
    if route.startswith(("ops.attention", "attention_to")):  # q, k, v of 10**6 rows are real: make them cheap
        call = {"ops.attention backend='reference'": lambda n: ops.attention(
                    *(torch.zeros(1, 1, 1).expand(n, 1, 1),) * 3, Full(), backend="reference"),
                "ops.attention Full() with weights": lambda n: ops.attention(
                    *(torch.zeros(1, 1, 1).expand(n, 1, 1),) * 3, Full(), return_weights=True),
                "attention_to_dense": lambda n: viz.attention_to_dense(torch.zeros(2, 1, dtype=torch.long),
                                                                       torch.rand(1, 4), n)}[route]
    _refused(call, IMPOSSIBLE[route])


def test_the_budget_variable_is_read_with_units_and_refused_when_unreadable(monkeypatch):
    from graphattn.checks import memory_budget

    for text, expected in (("4096", 4096), ("2K", 2048), ("1.5M", 3 << 19), ("3G", 3 << 30), ("1T", 1 << 40)):
        monkeypatch.setenv("GRAPHATTN_MEMORY_BUDGET", text)
        assert memory_budget("cpu") == expected
    monkeypatch.setenv("GRAPHATTN_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="GRAPHATTN_MEMORY_BUDGET"):
        memory_budget("cpu")


@pytest.mark.parametrize("argv, message", [
    (["patterns", "show", "Full()", "--n", "100000"], "edges"),
    (["patterns", "show", "Window(1)", "--n", "5000", "--png", "big.png"], "--png draws"),
    (["patterns", "show", "Expander(1000000)", "--n", "1000"], "degree"),
])
def test_patterns_show_refuses_a_large_n_before_any_work(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    count_bad("class 7 allocation: patterns show")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written
