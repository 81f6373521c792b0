"""Adjacencies prepared once per tensor: a raw edge_index every step is prepared on the first call only,
an edit in place or a new tensor is never served a stale graph, the table stays small and forgets
freed tensors, an EdgeIndex keeps its own (not pickled with it)."""

from __future__ import annotations

import copy
import gc
import io

import pytest
import torch
from torch_geometric import EdgeIndex

from graphattn.nn import GATConv, SelfAttentionConv, TransformerConv, edges

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def builds(monkeypatch):
    """The adjacencies prepared from scratch during a test."""
    seen = []
    real = edges._build
    monkeypatch.setattr(edges, "_build", lambda adj, *a: seen.append(adj) or real(adj, *a))
    return seen


def graph(n: int = 12, e: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.randint(n, (2, e), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("make", [lambda: GATConv(4, 3, heads=2), lambda: TransformerConv(4, 3, heads=2),
                                  lambda: SelfAttentionConv(4, 6, heads=2)])
def test_a_raw_edge_index_is_prepared_on_the_first_call_only(make, builds):
    layer, ei, x = make(), graph(), torch.randn(12, 4)
    first = layer(x, ei)
    for _ in range(3):
        torch.testing.assert_close(layer(x, ei), first)
    assert len(builds) == 1
    other = make()  # another layer on the same edges with the same rule shares the preparation
    other(x, ei)
    assert len(builds) == 1


def test_an_edit_in_place_or_a_new_tensor_is_prepared_again(builds):
    layer, x = GATConv(4, 3, heads=2), torch.randn(12, 4)
    ei = graph()
    layer(x, ei)
    ei[0, :10] = torch.arange(10)  # in place: the version counter moves
    torch.testing.assert_close(layer(x, ei), layer(x, ei.clone()))
    assert len(builds) == 3
    layer(x, ei)
    assert len(builds) == 3
    layer(torch.randn(15, 4), ei)  # the same tensor on more nodes: its own preparation
    assert len(builds) == 4


def test_the_table_is_bounded_and_forgets_freed_tensors():
    layer, x = TransformerConv(4, 3), torch.randn(12, 4)
    for seed in range(3 * edges.CACHE_SIZE):
        layer(x, graph(seed=seed))
    assert len(edges._CACHE) <= edges.CACHE_SIZE
    ei = graph(seed=99)
    layer(x, ei)
    key = next(k for k in edges._CACHE if k[0] == id(ei))
    del ei
    gc.collect()
    assert key not in edges._CACHE


def test_an_edge_index_keeps_its_preparation_and_a_copy_or_a_pickle_starts_empty(builds):
    layer, x = GATConv(4, 3, heads=2), torch.randn(12, 4)
    ei = EdgeIndex(graph(), sparse_size=(12, 12))
    first = layer(x, ei)
    layer(x, ei)
    assert len(builds) == 1
    for clone in (copy.deepcopy(ei), _pickled(ei)):
        assert not clone._graphattn_edges.entries
        torch.testing.assert_close(layer(x, clone), first)


def _pickled(t: torch.Tensor) -> torch.Tensor:
    buffer = io.BytesIO()
    torch.save(t, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_an_edge_index_is_trusted_a_raw_one_is_checked_once():
    layer, x = TransformerConv(4, 3), torch.randn(5, 4)
    with pytest.raises(ValueError, match=r"edge_index has node id 7 but there are only 5 nodes"):
        layer(x, torch.tensor([[0, 7], [1, 2]]))
    with pytest.raises(ValueError, match=r"edge_index\[1\] has node id 3 but there are only 3 destination nodes"):
        layer((x, torch.randn(3, 4)), torch.tensor([[0, 4], [1, 3]]))
