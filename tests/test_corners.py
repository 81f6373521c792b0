"""Every backend gives the same answer on the same corner: a query whose every score bias is
``-inf`` outputs zeros (weights 0, finite gradients), and duplicate entries follow one rule in
every adjacency form."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_support import SWEPT_KERNELS
from torch_geometric import EdgeIndex

from graphattn import AttentionGraph, ops
from graphattn.patterns import Full, Stride, Window, bigbird, longformer

SETTINGS = settings(max_examples=30, deadline=None)
PATTERNS = {"full": Full(), "window": Window(2), "stride": Stride(3), "longformer": longformer(2, (0,)),
            "bigbird": bigbird(1, (0,), 2)}


@SETTINGS
@given(name=st.sampled_from(sorted(PATTERNS) + ["edges"]), n=st.integers(4, 80), seed=st.integers(0, 999),
       dead=st.lists(st.integers(0, 79), min_size=1, max_size=5))
def test_a_query_whose_every_score_is_minus_inf_gets_zeros_on_every_kernel(name, n, seed, dead):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n, 2, 4, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3))
    killed = torch.zeros(n, dtype=torch.bool)
    killed[[d % n for d in dead]] = True

    def bias(i, j):  # -inf on every key of the killed queries, 0 elsewhere
        shape = (*torch.broadcast_shapes(i.shape, j.shape), 2)
        return torch.where(killed[i][..., None].expand(shape), float("-inf"), torch.zeros(shape, dtype=torch.float64))

    edges = torch.randint(n, (2, 4 * n), generator=gen) if name == "edges" else PATTERNS[name]
    ref = ops.attention(q, k, v, edges, bias=bias, backend="reference", return_weights=True)
    assert torch.equal(ref.out[killed], torch.zeros_like(ref.out[killed]))
    for backend in SWEPT_KERNELS:
        try:
            got = ops.attention(q, k, v, edges, bias=bias, backend=backend, return_weights=True)
        except NotImplementedError:
            continue
        torch.testing.assert_close(got.out, ref.out, atol=1e-10, rtol=0, msg=backend)
        torch.testing.assert_close(got.weights[1], ref.weights[1], atol=1e-10, rtol=0, msg=backend)
        grads = torch.autograd.grad(got.out.sum() + got.weights[1].sum(), (q, k, v))
        assert all(torch.isfinite(g).all() for g in grads), backend


def forms(edge_index: torch.Tensor, n: int) -> dict[str, object]:
    """The same adjacency in every form PyG accepts (``adj_t``: rows are queries)."""
    src, dst = edge_index
    values = torch.ones(src.numel())
    out = {
        "edge_index": edge_index,
        "EdgeIndex": EdgeIndex(edge_index, sparse_size=(n, n)),
        "coo": torch.sparse_coo_tensor(torch.stack([dst, src]), values, (n, n)),
        "coo_coalesced": torch.sparse_coo_tensor(torch.stack([dst, src]), values, (n, n)).coalesce(),
    }
    order = torch.sort(dst * n + src, stable=True).indices  # CSR with the duplicates as separate entries
    crow = torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(dst, minlength=n).cumsum(0)])
    out["csr"] = torch.sparse_csr_tensor(crow, src[order], values, (n, n))
    try:
        from torch_sparse import SparseTensor
    except ImportError:
        return out
    out["SparseTensor"] = SparseTensor(row=dst, col=src, value=values, sparse_sizes=(n, n))
    return out


@pytest.mark.parametrize("backend", ["auto", "dense", "sparse", "scatter", "reference"])
def test_duplicates_follow_one_rule_in_every_adjacency_form(backend):
    """An edge list lists messages: each column counts, duplicates too. A sparse matrix (COO,
    coalesced or not, CSR, SparseTensor) holds one entry per (query, key) pair: its duplicate
    entries are merged, as ``coalesce()`` merges them."""
    n = 12
    gen = torch.Generator().manual_seed(0)
    ei = torch.randint(n, (2, 40), generator=gen)
    ei = torch.cat([ei, ei[:, :10]], dim=1)  # ten duplicates
    unique = torch.unique(ei[1] * n + ei[0])
    merged = torch.stack([unique % n, unique // n])
    q, k, v = (torch.randn(n, 2, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    as_list = ops.attention(q, k, v, ei, backend="reference").out
    as_matrix = ops.attention(q, k, v, merged, backend="reference").out
    assert not torch.allclose(as_list, as_matrix)  # the rule matters on this graph
    for name, edges in forms(ei, n).items():
        got = ops.attention(q, k, v, edges, backend=backend, return_weights=True)
        want = as_list if name in ("edge_index", "EdgeIndex") else as_matrix
        torch.testing.assert_close(got.out, want, atol=1e-10, rtol=0, msg=name)
        graph = AttentionGraph.build(edges, n)
        assert graph.num_edges == (ei.size(1) if name in ("edge_index", "EdgeIndex") else merged.size(1)), name
