"""Graph classification on MUTAG with the same attention layer: the molecule is the pattern.

Each graph becomes a ``Data`` through :func:`graphattn.convert.graph_to_data`: node ``i``
attends over its bonded neighbours and itself, ``GraphEdges(edges, n) | SelfLoops()``, joined
with ``add`` if given (``"VirtualNodes(1)"``: a node that every atom sees and that sees every
atom; ``"Expander(4)"``: random expander edges, as Exphormer). Graphs differ, so there is no
single pattern to lay on a batch: the model gets the batch's list of patterns, one per
molecule (``AttentionGraph.build`` lays them block-diagonally), and learns the virtual nodes
that ``add`` asks for, inserted after each molecule and left out of the mean pooling. Optional positional
features: Laplacian eigenvectors (``encoding="laplacian"``, random signs while training,
one draw per batch) or random-walk return probabilities (``"random_walk"``).

Evaluation: stratified ``folds``-fold cross-validation (the folds depend only on ``seed``);
in each fold a stratified ``val_fraction`` of the training part picks the epoch (best
validation accuracy) and the held-out fold is scored once. Reported: mean and standard
deviation (over folds, ``ddof=0``) of the test accuracy; the majority class is 125 / 188 = 0.665.

    from graphattn.experiments.graph_classification import GraphConfig, run
    metrics = run(GraphConfig.from_options(folds=10, epochs=100, add="VirtualNodes(1)", out="runs/mutag"))
"""

from __future__ import annotations

import math
import statistics

import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import global_mean_pool
from torch_geometric.transforms import AddLaplacianEigenvectorPE, AddRandomWalkPE

from ..models import GraphTransformer
from ..nn.encodings import LaplacianEncoding, RandomWalkEncoding
from ..train import peak_memory_mb, reset_peak_memory, set_seed
from .common import EVAL_BATCH, evaluate, fit_minibatches, write_results
from .config import ENCODINGS, GraphConfig

__all__ = ["GraphConfig", "run", "ENCODINGS", "stratified_folds"]

def stratified_folds(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """A fold id in ``0 .. folds-1`` per example; each class is shuffled (``seed``) and dealt
    round-robin, so every fold holds each class in proportion (sizes differ by at most one)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.cat([idx[torch.randperm(idx.numel(), generator=gen)]
                       for idx in (torch.nonzero(labels == c).flatten() for c in labels.unique())])
    fold = torch.empty_like(labels)
    fold[order] = torch.arange(labels.numel()) % folds
    return fold


def _graphs(cfg: GraphConfig) -> list[Data]:
    from ..convert import graph_to_data
    from ..datasets import load_tudataset

    dataset = load_tudataset(cfg.dataset, progress=cfg.run.progress)
    dim = cfg.positional.encoding_dim
    transform = {"none": None,
                 "laplacian": AddLaplacianEigenvectorPE(dim, attr_name="pe", is_undirected=True),
                 "random_walk": AddRandomWalkPE(dim, attr_name="pe")}[cfg.positional.encoding]
    add = cfg.parsed_add()
    graphs = []
    for graph in dataset:
        graph = transform(graph) if transform is not None else graph
        graphs.append(graph_to_data(graph, add=add))
    return graphs


def _forward(model: GraphTransformer, batch, encoded: bool) -> torch.Tensor:
    # one pattern per molecule; the model inserts its learned virtual nodes and drops them again
    out = model(batch.x, batch.pattern, batch=batch.batch, pos=batch.pe if encoded else None)  # (N, classes)
    # The head is linear, so mean-pooling its per-node outputs equals the head of the mean.
    return global_mean_pool(out, batch.batch, size=batch.num_graphs)  # (B, classes)


def _split(fold: torch.Tensor, k: int, labels: torch.Tensor, cfg: GraphConfig) -> tuple[list[int], ...]:
    rest = torch.nonzero(fold != k).flatten()
    inner = stratified_folds(labels[rest], round(1 / cfg.split.val_fraction), cfg.split.seed + 1 + k)
    return rest[inner != 0].tolist(), rest[inner == 0].tolist(), torch.nonzero(fold == k).flatten().tolist()


def run(cfg: GraphConfig) -> dict:
    """Cross-validate one model configuration; returns the metrics (also written to ``cfg.run.out``)."""
    if not isinstance(cfg, GraphConfig):
        raise TypeError(f"cfg must be a GraphConfig, got {type(cfg).__name__}")
    device = torch.device(cfg.run.device)
    graphs = _graphs(cfg)
    labels = torch.cat([g.y for g in graphs])
    num_classes, in_channels = int(labels.max()) + 1, graphs[0].x.size(1)
    seed, m, positional = cfg.split.seed, cfg.model, cfg.positional
    fold = stratified_folds(labels, cfg.folds, seed)
    encoded = positional.encoding != "none"
    add = cfg.parsed_add()
    reset_peak_memory(device)

    def forward(model: torch.nn.Module, batch) -> torch.Tensor:
        return _forward(model, batch.to(device), encoded)

    results, rows = [], {}
    for k in range(cfg.folds):
        train, val, test = _split(fold, k, labels, cfg)
        set_seed(seed + k)
        encoding = {"none": None, "laplacian": LaplacianEncoding,
                    "random_walk": RandomWalkEncoding}[positional.encoding]
        model = GraphTransformer(in_channels, m.hidden, num_classes, num_layers=m.layers, heads=m.heads,
                                 dropout=m.dropout, virtual_nodes=add.extra_nodes if add is not None else 0,
                                 feature_encoding=encoding(positional.encoding_dim, m.hidden) if encoding else None)
        model = model.to(device)
        history = fit_minibatches(model, forward, [graphs[i] for i in train], [graphs[i] for i in val], cfg.training,
                                  seed=seed + k, progress=cfg.run.progress)
        test_acc, _ = evaluate(model, DataLoader([graphs[i] for i in test], batch_size=EVAL_BATCH), forward)
        results.append({"fold": k, "test_acc": test_acc, "best_val_acc": history.best_metrics.get("val_acc"),
                        "best_epoch": history.best_epoch, "epochs_run": history.epochs_run,
                        "time_per_epoch_s": history.mean_epoch_time_s,
                        "num_train": len(train), "num_val": len(val), "num_test": len(test)})
        for r in history.rows:
            row = rows.setdefault(r.epoch, {"epoch": r.epoch})
            row.update({f"loss_f{k}": r.loss, f"val_acc_f{k}": r.metrics["val_acc"]})

    accs = [r["test_acc"] for r in results]
    n_params = sum(p.numel() for p in model.parameters())
    epoch_times = [r["time_per_epoch_s"] for r in results if not math.isnan(r["time_per_epoch_s"])]
    metrics = {
        "task": "graph", "dataset": cfg.dataset,
        "pattern": "GraphEdges(<molecule>) | SelfLoops()" + (f" | {cfg.add}" if cfg.add else ""),
        "encoding": positional.encoding,
        "test_acc_mean": statistics.fmean(accs), "test_acc_std": statistics.pstdev(accs),
        "majority_baseline": float(labels.bincount().max()) / labels.numel(),
        "folds": results, "epochs_run_mean": statistics.fmean(r["epochs_run"] for r in results),
        "time_per_epoch_s": statistics.fmean(epoch_times) if epoch_times else float("nan"),
        "peak_memory_mb": peak_memory_mb(device), "device": str(device), "num_graphs": len(graphs),
        "num_classes": num_classes, "parameters": n_params, "config": cfg.options(),
    }
    if cfg.run.out is not None:
        write_results(cfg.run.out, metrics, [rows[e] for e in sorted(rows)])
    return metrics
