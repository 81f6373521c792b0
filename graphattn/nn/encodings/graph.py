"""Graphormer's spatial encoding: a learned score bias per head for each shortest-path distance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import shortest_path
from torch import Tensor, nn

from ...checks import MAX_INDEX, check_allocation, check_int
from ...ops import BiasFn, Plan
from ...patterns import check_edge_index
from ._pos import check_heads
from .base import Prepared, ScoreEncoding

__all__ = ["ShortestPathBias"]


class ShortestPathBias(ScoreEncoding["_Distances"]):
    r"""Shortest-path bias (Ying et al., 2021, Graphormer): one learned score per head and hop count.

    .. math::
        b^h_{ij} = w^h\big[\min(d_{ij}, \text{max\_distance})\big], \qquad
        b^h_{ij} = w^h[\text{unreachable}] \text{ when no path leads from } j \text{ to } i

    where ``d_ij`` is the number of edges on a shortest path from key ``j`` to query ``i``
    (the hops a message needs; symmetric for undirected graphs, which PyG stores with both
    directions). Distances come from the graph, not from an order, so the module takes the
    ``[N, N]`` distance matrix of :meth:`distances` as its ``pos``: row ``i`` is node ``i``'s
    position in the graph, its distance to every node. Build it once per graph (or per batch:
    nodes of different graphs are unreachable) and pass it on::

        spd = ShortestPathBias.distances(data.edge_index, data.num_nodes)
        conv = SelfAttentionConv(F, 64, heads=4, position=ShortestPathBias(4))
        out = conv(x, Full(), batch=data.batch, pos=spd)

    The module stays stateless: the same model runs on any graph (a prepared graph checks its
    matrix once). Memory is O(N^2) for the matrix (and the
    BFS), meant for small graphs such as molecules.

    Args:
        heads: number of heads ``H``.
        max_distance: distances beyond it share its bucket. (default: ``8``)
    """

    def __init__(self, heads: int, max_distance: int = 8):
        super().__init__()
        self.heads = check_int(heads, "heads")
        self.max_distance = check_int(max_distance, "max_distance", 0)
        check_allocation((max_distance + 2) * heads * 4, f"ShortestPathBias(max_distance={max_distance})'s table",
                         "cpu", "use a smaller max_distance (farther hops share its bucket)")
        self.weight = nn.Parameter(torch.empty(max_distance + 2, heads))  # 0 .. max_distance, unreachable
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.02)

    @staticmethod
    def distances(edge_index: Tensor, num_nodes: int) -> Tensor:
        """``[N, N]`` hop counts indexed ``[query i, key j]`` along edges ``j -> i``; ``-1`` where
        no path exists, ``0`` on the diagonal. Breadth-first search (scipy), O(N^2) memory."""
        check_int(num_nodes, "num_nodes", 0, MAX_INDEX)
        # scipy's float64 hop matrix, then the int64 result and its transposed copy
        check_allocation(24 * num_nodes**2, f"ShortestPathBias.distances on {num_nodes} nodes, an [N, N] matrix", "cpu",
                         "use it per graph of a batch (molecules), or an encoding without an N x N matrix "
                         "(RandomWalkEncoding, LaplacianEncoding)")
        edge_index = check_edge_index(edge_index, num_nodes)
        src, dst = edge_index.cpu().numpy()
        adj = coo_matrix((np.ones(src.size), (src, dst)), shape=(num_nodes, num_nodes)).tocsr()
        hops = shortest_path(adj, method="D", directed=True, unweighted=True)  # [source j, target i]
        out = torch.from_numpy(np.where(np.isinf(hops), -1, hops).astype(np.int64).T.copy())
        return out.to(edge_index.device)

    def forward(self, q: Tensor, k: Tensor, pos: Tensor) -> tuple[Tensor, Tensor, BiasFn | None]:
        n = q.size(0) if isinstance(q, Tensor) and q.dim() else 0
        if not isinstance(pos, Tensor) or pos.shape != (n, n):
            got = list(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
            raise ValueError(f"ShortestPathBias: pos must be the [N, N] = [{n}, {n}] integer distance matrix from "
                             f"ShortestPathBias.distances(edge_index, num_nodes), got {got}")
        return super().forward(q, k, pos)

    def positions(self, pos: Tensor) -> _Distances:
        if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.size(0) != pos.size(1) or pos.is_floating_point() \
                or pos.dtype == torch.bool:
            got = list(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
            raise ValueError(f"ShortestPathBias: pos must be the [N, N] integer distance matrix from "
                             f"ShortestPathBias.distances(edge_index, num_nodes), got {got}")
        return _Distances(pos)

    def bind(self, state: _Distances) -> Prepared:
        top, hops = self.max_distance, state.hops

        def bias(q_idx: Tensor, k_idx: Tensor) -> Tensor:
            d = hops[q_idx, k_idx]
            return self.weight[torch.where(d < 0, top + 1, d.clamp(max=top))]  # (..., H)

        def encode(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor, BiasFn]:
            check_heads(q, self.heads, "ShortestPathBias")
            if hops.size(0) != q.size(0):
                raise ValueError(f"ShortestPathBias: pos must be the [N, N] = [{q.size(0)}, {q.size(0)}] distance "
                                 f"matrix, got {list(hops.shape)}")
            return q, k, bias

        return encode

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.heads}, max_distance={self.max_distance})"


@dataclass(frozen=True)
class _Distances(Plan):
    """The checked ``[N, N]`` hop matrix."""

    hops: Tensor
