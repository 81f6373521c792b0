"""No host round trip on a prepared graph: a 4-layer GraphTransformer's forward and backward ask
the device for no value (``.item()``, ``bool(tensor)``, ``nonzero``) on any kernel or encoding, so
a GPU never stalls; and value checks happen where a graph is built, or in debug mode."""

from __future__ import annotations

import pytest
import torch
from kernel_support import SyncCounter

import graphattn
from graphattn import AttentionGraph
from graphattn.models import GraphTransformer
from graphattn.nn import ALiBi, RelativePositionBias, RotaryEncoding
from graphattn.patterns import Full, Pattern, Stride, Window, longformer

pytestmark = pytest.mark.usefixtures("one_thread")



class EvenBand(Pattern):
    """A user's mask-only pattern (the tile kernel)."""

    def mask(self, q_idx, k_idx, n):
        d = k_idx - q_idx
        return (d.abs() <= 24) & (d % 2 == 0)


N = 1024


def graph_for(kernel: str) -> AttentionGraph:
    """A batch of two sequences (600 and 424 nodes) on which ``auto`` picks ``kernel``."""
    batch = torch.tensor([0] * 600 + [1] * 424)
    if kernel == "sparse":
        edges = torch.randint(0, N, (2, 8 * N), generator=torch.Generator().manual_seed(0))
        return AttentionGraph.build(torch.cat([edges, torch.arange(N).repeat(2, 1)], dim=1), N)
    pattern = {"dense": Full(), "band": longformer(8, (0,)), "stride": Stride(4), "tiles": EvenBand()}[kernel]
    return AttentionGraph.build(pattern, N, batch=batch)


ENCODINGS = {"none": lambda: None, "alibi": lambda: ALiBi(4), "t5": lambda: RelativePositionBias(4),
             "rope": lambda: RotaryEncoding(8)}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("kernel", ["dense", "band", "stride", "tiles", "sparse"])
def test_forward_and_backward_on_a_prepared_graph_make_no_host_round_trip(kernel, encoding):
    torch.manual_seed(0)
    model = GraphTransformer(16, 32, 3, num_layers=4, heads=4, pooling="mean", position=ENCODINGS[encoding]())
    graph = graph_for(kernel)
    x = torch.randn(N, 16)
    model(x, graph).sum().backward()  # the first forward builds the plans: that may sync, once per graph
    counter = SyncCounter()
    with counter:
        out = model(x, graph)
        out.sum().backward()
    assert counter.calls == [], counter.calls
    assert {choice.name for choice in graph.choices.values()} == {kernel}  # the kernel the case is meant for ran
    with graphattn.debug(), SyncCounter() as checked:  # and the counter does see the debug mode's value checks
        model(x, graph)
    assert checked.calls


def test_the_counter_sees_a_round_trip():
    counter = SyncCounter()
    with counter:
        torch.randn(3).sum().item()
        bool(torch.randn(3).sum() > 0)
        torch.arange(4).nonzero()
    assert len(counter.calls) == 3


def test_values_are_checked_where_the_graph_is_built_and_everywhere_in_debug_mode():
    model = GraphTransformer(4, 8, 2, num_layers=1, heads=2, pattern=Window(1))
    bad = torch.randn(10, 4)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        model(bad)  # the model builds the graph: values checked
    graph = AttentionGraph.build(Window(1), 10)
    out = model(bad, graph)  # a prepared graph: metadata only; the NaN reaches nodes 2..4 and nothing else
    assert torch.isnan(out).any(dim=1).nonzero().flatten().tolist() == [2, 3, 4]
    with graphattn.debug(), pytest.raises(ValueError, match="x contains NaN"):
        model(bad, graph)
    with pytest.raises(TypeError, match="enabled must be a bool"):
        with graphattn.debug("yes"):
            pass
