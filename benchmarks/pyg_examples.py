"""PyG's example recipes, run once with ``torch_geometric.nn`` and once with ``graphattn.nn``: only
the module the layers come from changes, the seeds and epochs are the same.

* ``gat``: PyG's ``examples/gat.py`` on Cora (``GATConv(F, 8, heads=8, dropout=0.6)`` then
  ``GATConv(64, C, heads=1, concat=False, dropout=0.6)``, feature dropout 0.6, Adam lr 0.005,
  weight decay 5e-4, 200 epochs, test accuracy at the best validation accuracy);
* ``hetero``: PyG's ``examples/hetero/to_hetero_mag.py`` recipe (a ``Sequential`` of two lazy
  ``TransformerConv((-1, -1), 64)`` with ReLU and a lazy ``Linear``, made heterogeneous by
  ``to_hetero(aggr="sum")``, Adam lr 0.01) on Cora as a heterogeneous graph of papers and the words
  they contain (``paper -cites- paper``, ``paper -has- word``, ``word -in- paper``; a word's
  features are its one-hot id), full batch, 100 epochs;
* ``neighbor``: PyG's ``examples/reddit.py`` recipe on Cora with ``TransformerConv`` for
  ``SAGEConv`` (``NeighborLoader`` with 25 and 10 neighbours, batches of 1024, hidden 256, dropout
  0.5, Adam lr 0.01, exact layer-wise inference over all edges), 50 epochs.

Each recipe prints both test accuracies (at the epoch of the best validation accuracy) for each
seed. Data: the offline Cora of ``graphattn.datasets`` (``GRAPHATTN_MIRROR``).

    python benchmarks/pyg_examples.py                   # every recipe, seeds 0 1 2
    python benchmarks/pyg_examples.py --recipes gat --seeds 0
"""

from __future__ import annotations

import argparse
import copy
import sys
from types import ModuleType

import torch
import torch.nn.functional as F
import torch_geometric.nn as pyg_nn
import torch_geometric.transforms as T
from torch_geometric.data import HeteroData
from torch_geometric.loader import NeighborLoader

import graphattn.nn as ga_nn
from graphattn.datasets import load_planetoid

RECIPES = ("gat", "hetero", "neighbor")


def cora(transform=None):
    return load_planetoid("Cora", transform=transform, progress=False)[0]


def accuracy(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    return int((pred[mask] == y[mask]).sum()) / int(mask.sum())


def gat(nn: ModuleType, seed: int) -> float:
    """``examples/gat.py``: the test accuracy at the best validation accuracy."""
    data = cora(T.NormalizeFeatures())
    torch.manual_seed(seed)

    class GAT(torch.nn.Module):
        def __init__(self, in_channels, hidden_channels, out_channels, heads):
            super().__init__()
            self.conv1 = nn.GATConv(in_channels, hidden_channels, heads, dropout=0.6)
            self.conv2 = nn.GATConv(hidden_channels * heads, out_channels, heads=1, concat=False, dropout=0.6)

        def forward(self, x, edge_index):
            x = F.dropout(x, p=0.6, training=self.training)
            x = F.elu(self.conv1(x, edge_index))
            x = F.dropout(x, p=0.6, training=self.training)
            return self.conv2(x, edge_index)

    model = GAT(data.num_features, 8, int(data.y.max()) + 1, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=5e-4)
    best_val = test_acc = 0.0
    for _ in range(200):
        model.train()
        optimizer.zero_grad()
        F.cross_entropy(model(data.x, data.edge_index)[data.train_mask], data.y[data.train_mask]).backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            pred = model(data.x, data.edge_index).argmax(dim=-1)
        val = accuracy(pred, data.y, data.val_mask)
        if val > best_val:
            best_val, test_acc = val, accuracy(pred, data.y, data.test_mask)
    return test_acc


def hetero_cora() -> HeteroData:
    """Cora's papers and the words they contain as a heterogeneous graph."""
    data = cora(T.NormalizeFeatures())
    out = HeteroData()
    out["paper"].x, out["paper"].y = data.x, data.y
    for name in ("train_mask", "val_mask", "test_mask"):
        out["paper"][name] = data[name]
    out["word"].x = torch.eye(data.num_features)
    has = (data.x > 0).nonzero().T  # (paper, word)
    out["paper", "cites", "paper"].edge_index = data.edge_index
    out["paper", "has", "word"].edge_index = has
    out["word", "in", "paper"].edge_index = has.flip(0)
    return out


def hetero(nn: ModuleType, seed: int) -> float:
    """``examples/hetero/to_hetero_mag.py``'s model and loop, full batch."""
    data = hetero_cora()
    torch.manual_seed(seed)
    model = pyg_nn.Sequential("x, edge_index", [
        (nn.TransformerConv((-1, -1), 64), "x, edge_index -> x"),
        torch.nn.ReLU(inplace=True),
        (nn.TransformerConv((-1, -1), 64), "x, edge_index -> x"),
        torch.nn.ReLU(inplace=True),
        (pyg_nn.Linear(-1, int(data["paper"].y.max()) + 1), "x -> x"),
    ])
    model = pyg_nn.to_hetero(model, data.metadata(), aggr="sum")
    with torch.no_grad():  # lazy parameters
        model(data.x_dict, data.edge_index_dict)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    paper = data["paper"]
    best_val = test_acc = 0.0
    for _ in range(100):
        model.train()
        optimizer.zero_grad()
        out = model(data.x_dict, data.edge_index_dict)["paper"]
        F.cross_entropy(out[paper.train_mask], paper.y[paper.train_mask]).backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            pred = model(data.x_dict, data.edge_index_dict)["paper"].argmax(dim=-1)
        val = accuracy(pred, paper.y, paper.val_mask)
        if val > best_val:
            best_val, test_acc = val, accuracy(pred, paper.y, paper.test_mask)
    return test_acc


def neighbor(nn: ModuleType, seed: int) -> float:
    """``examples/reddit.py``'s sampled training and exact layer-wise inference, on Cora."""
    data = cora()
    torch.manual_seed(seed)
    train_loader = NeighborLoader(data, input_nodes=data.train_mask, num_neighbors=[25, 10], shuffle=True,
                                  batch_size=1024)
    subgraph_loader = NeighborLoader(copy.copy(data), input_nodes=None, num_neighbors=[-1], shuffle=False,
                                     batch_size=1024)
    del subgraph_loader.data.x, subgraph_loader.data.y
    subgraph_loader.data.num_nodes = data.num_nodes
    subgraph_loader.data.n_id = torch.arange(data.num_nodes)

    class Net(torch.nn.Module):
        def __init__(self, in_channels, hidden_channels, out_channels):
            super().__init__()
            self.convs = torch.nn.ModuleList([nn.TransformerConv(in_channels, hidden_channels),
                                              nn.TransformerConv(hidden_channels, out_channels)])

        def forward(self, x, edge_index):
            for i, conv in enumerate(self.convs):
                x = conv(x, edge_index)
                if i < len(self.convs) - 1:
                    x = F.dropout(x.relu_(), p=0.5, training=self.training)
            return x

        @torch.no_grad()
        def inference(self, x_all):
            for i, conv in enumerate(self.convs):
                xs = []
                for batch in subgraph_loader:
                    x = conv(x_all[batch.n_id], batch.edge_index)
                    xs.append((x.relu_() if i < len(self.convs) - 1 else x)[: batch.batch_size])
                x_all = torch.cat(xs, dim=0)
            return x_all

    model = Net(data.num_features, 256, int(data.y.max()) + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    best_val = test_acc = 0.0
    for _ in range(50):
        model.train()
        for batch in train_loader:
            optimizer.zero_grad()
            out = model(batch.x, batch.edge_index)[: batch.batch_size]
            F.cross_entropy(out, batch.y[: batch.batch_size]).backward()
            optimizer.step()
        model.eval()
        pred = model.inference(data.x).argmax(dim=-1)
        val = accuracy(pred, data.y, data.val_mask)
        if val > best_val:
            best_val, test_acc = val, accuracy(pred, data.y, data.test_mask)
    return test_acc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    args = parser.parse_args(argv)
    print("| recipe | seed | torch_geometric.nn | graphattn.nn | difference (points) |")
    print("| --- | --- | --- | --- | --- |")
    for recipe in args.recipes:
        run = globals()[recipe]
        for seed in args.seeds:
            theirs, ours = run(pyg_nn, seed), run(ga_nn, seed)
            print(f"| {recipe} | {seed} | {theirs:.3f} | {ours:.3f} | {100 * (ours - theirs):+.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
