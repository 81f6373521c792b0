"""Grid2D: the specification (mask) equals the generator (edge_index), and the neighbourhoods are right."""

import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphattn.patterns import Full, Grid2D, Window


def adjacency(pattern, n):
    """The ``[query, key]`` adjacency from the generator."""
    ei = pattern.edge_index(n)
    out = torch.zeros(n, n, dtype=torch.bool)
    out[ei[1], ei[0]] = True
    return out


@pytest.mark.parametrize("radius,width,rows", [
    (0, 3, 3), (1, 1, 7), (1, 7, 1), (1, 4, 4), (1, 5, 3), (2, 3, 7), (2, 7, 5), (3, 4, 2), (10, 3, 4),
])
def test_spec_equals_generator(radius, width, rows):
    p, n = Grid2D(radius, width), rows * width
    ei = p.edge_index(n)
    assert torch.equal(adjacency(p, n), p.dense_mask(n))
    code = ei[1] * n + ei[0]
    assert torch.equal(code, torch.unique(code))  # sorted by query then key, no duplicates
    assert ei.size(1) <= p.max_edges(n)


def test_empty():
    assert Grid2D(1, 4).edge_index(0).shape == (2, 0)


def test_neighbourhood_sizes():
    p, w = Grid2D(1, 5), 5
    deg = torch.bincount(p.edge_index(20)[1], minlength=20).view(4, 5)  # keys per query, as a grid
    assert deg[1:-1, 1:-1].eq(9).all()
    assert deg[0, 0] == deg[0, -1] == deg[-1, 0] == deg[-1, -1] == 4
    assert deg[0, 1:-1].eq(6).all() and deg[1:-1, 0].eq(6).all()
    keys = p.edge_index(20)
    assert keys[0][keys[1] == 1 * w + 2].tolist() == [1, 2, 3, 6, 7, 8, 11, 12, 13]


def test_identities():
    assert torch.equal(Grid2D(2, 1).dense_mask(9), Window(2).dense_mask(9))  # one column is a sequence
    assert torch.equal(Grid2D(3, 4).dense_mask(16), Full().dense_mask(16))
    g = nx.DiGraph(Grid2D(1, 4).edge_index(12).t().tolist())
    g.remove_edges_from(nx.selfloop_edges(g))
    king = nx.grid_2d_graph(3, 4)  # the king's graph: the grid plus diagonals
    diagonals = [((r, c), (r + 1, c + dc)) for r in range(2) for c in range(4) for dc in (-1, 1) if 0 <= c + dc < 4]
    king.add_edges_from(diagonals)
    king = nx.relabel_nodes(king, {(r, c): r * 4 + c for r, c in king.nodes})
    assert nx.utils.graphs_equal(g.to_undirected(), nx.Graph(king))


def test_repr_and_bad_input():
    assert repr(Grid2D(1, 7)) == "Grid2D(radius=1, width=7)"
    with pytest.raises(ValueError, match="multiple of the width"):
        Grid2D(1, 4).edge_index(10)
    with pytest.raises(ValueError, match="multiple of the width"):
        Grid2D(1, 4).dense_mask(10)
    with pytest.raises(ValueError, match="radius"):
        Grid2D(-1, 4)
    with pytest.raises(ValueError, match="width"):
        Grid2D(1, 0)
    with pytest.raises(TypeError, match="width"):
        Grid2D(1, 2.0)


@settings(max_examples=40, deadline=None)
@given(radius=st.integers(0, 4), width=st.integers(1, 9), rows=st.integers(0, 9))
def test_spec_equals_generator_property(radius, width, rows):
    p, n = Grid2D(radius, width), rows * width
    ei = p.edge_index(n)
    assert torch.equal(adjacency(p, n), p.dense_mask(n))
    assert torch.equal(ei[1] * max(n, 1) + ei[0], torch.unique(ei[1] * max(n, 1) + ei[0]))


def test_grid_without_width_is_square():
    p = Grid2D(1)
    assert repr(p) == "Grid2D(radius=1)"
    assert torch.equal(p.edge_index(49), Grid2D(1, 7).edge_index(49))
    assert torch.equal(p.dense_mask(49), Grid2D(1, 7).dense_mask(49))
    keys = p.dense_mask(49).sum(1)
    assert keys[8] == 9 and keys[0] == 4  # interior patch (1, 1) and a corner
    with pytest.raises(ValueError, match="perfect square"):
        p.edge_index(48)
