"""The PyG baselines of the node-classification experiment, as their papers and PyG's examples set them.

* ``GCN`` (Kipf & Welling, 2017): ``GCNConv(F, 16) -> ReLU -> Dropout(0.5) -> GCNConv(16, K)``,
  Adam lr 0.01, weight decay 5e-4 (PyG's ``examples/gcn.py``).
* ``GAT`` (Velickovic et al., 2018): ``GATConv(F, 8, heads=8) -> ELU -> Dropout(0.6) ->
  GATConv(64, K, heads=1)``, attention dropout 0.6, Adam lr 0.005, weight decay 5e-4
  (PyG's ``examples/gat.py``).

Dropout on the *input* features is left to the caller (the experiment drops the non-zero
entries of a sparse feature matrix, which is the same distribution and much cheaper), so
``forward`` sees already-dropped features. Both convolutions add self-loops, so the
attention graph of GAT is the same as graphattn's ``graph`` pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv

__all__ = ["GCN", "GAT", "Baseline", "BASELINES"]


class GCN(nn.Module):
    """Two ``GCNConv`` layers with ReLU and dropout between them."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, dropout: float, cached: bool = True):
        super().__init__()
        self.dropout = dropout
        self.conv1 = GCNConv(in_channels, hidden_channels, cached=cached)
        self.conv2 = GCNConv(hidden_channels, out_channels, cached=cached)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


class GAT(nn.Module):
    """Two ``GATConv`` layers: ``heads`` x ``hidden_channels`` concatenated, ELU, one output head."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, heads: int, dropout: float):
        super().__init__()
        self.dropout = dropout
        self.conv1 = GATConv(in_channels, hidden_channels, heads=heads, dropout=dropout)
        self.conv2 = GATConv(hidden_channels * heads, out_channels, heads=1, concat=False, dropout=dropout)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = F.elu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


@dataclass(frozen=True)
class Baseline:
    """A baseline's fixed recipe: width, heads, dropout (input and hidden), Adam lr and weight decay."""

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
