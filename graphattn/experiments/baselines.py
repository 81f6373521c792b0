"""The message-passing baselines, called as every model of the harness is: ``model(x, graph)``
with ``graph`` the batch's PyG ``Data`` / ``Batch`` (they read its ``edge_index`` and ``batch``).

* ``GCN`` (Kipf & Welling, 2017): ``GCNConv(F, 16) -> ReLU -> Dropout(0.5) -> GCNConv(16, K)``,
  Adam lr 0.01, weight decay 5e-4 (PyG's ``examples/gcn.py``).
* ``GAT`` (Velickovic et al., 2018): ``GATConv(F, 8, heads=8) -> ELU -> Dropout(0.6) ->
  GATConv(64, K, heads=1)``, attention dropout 0.6, Adam lr 0.005, weight decay 5e-4
  (PyG's ``examples/gat.py``).
* ``GIN`` (Xu et al., 2019), for whole graphs: PyG's ``GIN`` with batch norm and jumping
  knowledge over every layer (``jk="cat"``), sum pooling, ``Linear -> ReLU -> Dropout -> Linear``.

Dropout on the *input* features is the harness's (:func:`~.harness.drop_input`, as an
augmentation of training batches), so ``forward`` sees already-dropped features. GCN and GAT add
self-loops, so the attention graph of GAT is the same as graphattn's ``graph`` pattern. Each node
baseline also says how far a node's output reaches (``hops``) and which edges it reads on a
subgraph (:meth:`attention_edges`, :meth:`on_edges`), so a process of ``torchrun`` can score its
share of a batch on the ``hops``-hop subgraph around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import GIN as PyGGIN
from torch_geometric.nn import GATConv, GCNConv, global_add_pool

__all__ = ["GCN", "GAT", "GIN", "Baseline", "BASELINES"]


class _OnEdges:
    """What a local node model tells the mini-batch harness: it reads the graph's own edges."""

    hops: int

    def attention_edges(self, graph: Data) -> Tensor:
        """The edges the model reads on ``graph``: its own."""
        return graph.edge_index

    def on_edges(self, edges: Tensor, num_nodes: int, pos: Tensor | None, device) -> Data:
        """The graph input that reads exactly ``edges`` (a subgraph around a process's targets)."""
        return Data(edge_index=edges.to(device), num_nodes=num_nodes)


class GCN(_OnEdges, nn.Module):
    """Two ``GCNConv`` layers with ReLU and dropout between them. A node's output reads three hops:
    the normalisation reads the degree one hop further than the two layers."""

    hops = 3

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, dropout: float, cached: bool = True):
        super().__init__()
        self.dropout = dropout
        self.conv1 = GCNConv(in_channels, hidden_channels, cached=cached)
        self.conv2 = GCNConv(hidden_channels, out_channels, cached=cached)

    def forward(self, x: Tensor, graph: Data) -> Tensor:
        x = F.relu(self.conv1(x, graph.edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, graph.edge_index)


class GAT(_OnEdges, nn.Module):
    """Two ``GATConv`` layers: ``heads`` x ``hidden_channels`` concatenated, ELU, one output head."""

    hops = 2

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, heads: int, dropout: float):
        super().__init__()
        self.dropout = dropout
        self.conv1 = GATConv(in_channels, hidden_channels, heads=heads, dropout=dropout)
        self.conv2 = GATConv(hidden_channels * heads, out_channels, heads=1, concat=False, dropout=dropout)

    def forward(self, x: Tensor, graph: Data) -> Tensor:
        x = F.elu(self.conv1(x, graph.edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, graph.edge_index)


class GIN(nn.Module):
    """Graph classification's control: PyG's ``GIN`` (``num_layers`` GIN layers with batch norm,
    jumping knowledge ``"cat"``), sum pooling per graph of ``graph.batch``, then
    ``Linear -> ReLU -> Dropout -> Linear``: ``(B, out_channels)``."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int, dropout: float):
        super().__init__()
        self.gin = PyGGIN(in_channels, hidden_channels, num_layers, dropout=dropout, norm="batch_norm", jk="cat")
        self.head = nn.Sequential(nn.Linear(hidden_channels, hidden_channels), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden_channels, out_channels))

    def forward(self, x: Tensor, graph: Data) -> Tensor:
        return self.head(global_add_pool(self.gin(x, graph.edge_index), graph.batch))  # (B, classes)


@dataclass(frozen=True)
class Baseline:
    """A node baseline's fixed recipe: width, heads, dropout (input and hidden), Adam lr and weight decay."""

    hidden: int
    heads: int
    dropout: float
    lr: float
    weight_decay: float

    def build(self, name: str, in_channels: int, out_channels: int, *, cached: bool = True) -> nn.Module:
        """The model; ``cached=False`` for mini-batches (GCN may cache its normalisation only for one graph)."""
        if name == "gcn":
            return GCN(in_channels, self.hidden, out_channels, self.dropout, cached=cached)
        return GAT(in_channels, self.hidden, out_channels, self.heads, self.dropout)


#: name -> recipe, the published hyper-parameters.
BASELINES: dict[str, Baseline] = {
    "gcn": Baseline(hidden=16, heads=1, dropout=0.5, lr=0.01, weight_decay=5e-4),
    "gat": Baseline(hidden=8, heads=8, dropout=0.6, lr=0.005, weight_decay=5e-4),
}
