"""Graph classification on MUTAG: GraphGPS with graphattn's attention, PyG's GIN as the control.

Models (``models``, all on the same folds, validation splits and seeds):

* ``gps`` (the default, and the best we measured): :class:`~graphattn.models.GraphGPS`, GINE on
  the bonds with their types as edge features, a :class:`~graphattn.nn.SelfAttentionConv`
  globally along ``attention`` (``Full()``; any pattern, e.g. ``"VirtualNodes(1) | Expander(4)"``)
  laid on each molecule, random-walk return probabilities as node features (GraphGPS's RWSE,
  ``encoding="random_walk"``), sum pooling.
* ``transformer``: the :class:`~graphattn.models.GraphTransformer` whose attention runs along
  the bonds, ``GraphEdges(edges, n) | SelfLoops()`` joined with ``add`` (one pattern per
  molecule, block-diagonal in a batch; the model learns the virtual nodes ``add`` asks for);
  the encoding is added to the input projection.
* ``gin``: PyG's ``GIN`` (Xu et al., 2019) with ``layers + 1`` GIN layers, jumping knowledge
  over all of them (``jk="cat"``, GIN's readout of every layer), sum pooling and an MLP head;
  atom features only, as in the paper.

Evaluation: stratified ``folds``-fold cross-validation (the folds depend only on ``seed``);
in each fold a stratified ``val_fraction`` of the training part picks the epoch (best
validation accuracy) and the held-out fold is scored once. Reported per model: mean and
standard deviation (over folds, ``ddof=0``) of the test accuracy, and its wall time; the
majority class is 125 / 188 = 0.665. (Xu et al. report GIN's 89.4 +- 5.6 with a different
protocol: the epoch with the best *test* accuracy averaged over the 10 folds, so the held-out
folds also pick the epoch.)

    from graphattn.experiments.graph_classification import GraphConfig, run
    metrics = run(GraphConfig.from_options(models=("gps", "gin"), out="runs/mutag"))
"""

from __future__ import annotations

import math
import statistics
import time

import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GIN, global_add_pool, global_mean_pool
from torch_geometric.transforms import AddLaplacianEigenvectorPE, AddRandomWalkPE

from ..models import GraphGPS, GraphTransformer
from ..nn.encodings import LaplacianEncoding, RandomWalkEncoding
from ..train import peak_memory_mb, reset_peak_memory, set_seed
from .common import EVAL_BATCH, evaluate, fit_minibatches, write_results
from .graph_config import GRAPH_MODELS, GraphConfig
from .pieces import ENCODINGS

__all__ = ["GraphConfig", "run", "ENCODINGS", "GRAPH_MODELS", "stratified_folds", "GINClassifier"]


def stratified_folds(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """A fold id in ``0 .. folds-1`` per example; each class is shuffled (``seed``) and dealt
    round-robin, so every fold holds each class in proportion (sizes differ by at most one)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.cat([idx[torch.randperm(idx.numel(), generator=gen)]
                       for idx in (torch.nonzero(labels == c).flatten() for c in labels.unique())])
    fold = torch.empty_like(labels)
    fold[order] = torch.arange(labels.numel()) % folds
    return fold


class GINClassifier(nn.Module):
    """The control: PyG's ``GIN`` (``num_layers`` GIN layers with batch norm, jumping knowledge
    ``"cat"``), sum pooling, ``Linear -> ReLU -> Dropout -> Linear``."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int, dropout: float):
        super().__init__()
        self.gin = GIN(in_channels, hidden_channels, num_layers, dropout=dropout, norm="batch_norm", jk="cat")
        self.head = nn.Sequential(nn.Linear(hidden_channels, hidden_channels), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden_channels, out_channels))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(global_add_pool(self.gin(x, edge_index), batch))  # (B, classes)


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


def _model(name: str, cfg: GraphConfig, in_channels: int, edge_dim: int, num_classes: int) -> nn.Module:
    m, positional = cfg.model, cfg.positional
    pe_dim = 0 if positional.encoding == "none" else positional.encoding_dim
    if name == "gps":
        return GraphGPS(in_channels, m.hidden, num_classes, num_layers=m.layers, heads=m.heads,
                        pattern=cfg.parsed_attention(), edge_dim=edge_dim, pe_dim=pe_dim, dropout=m.dropout)
    if name == "gin":
        return GINClassifier(in_channels, m.hidden, num_classes, num_layers=m.layers + 1, dropout=m.dropout)
    add = cfg.parsed_add()
    encoding = {"none": None, "laplacian": LaplacianEncoding, "random_walk": RandomWalkEncoding}[positional.encoding]
    return GraphTransformer(in_channels, m.hidden, num_classes, num_layers=m.layers, heads=m.heads,
                            dropout=m.dropout, virtual_nodes=add.extra_nodes if add is not None else 0,
                            feature_encoding=encoding(pe_dim, m.hidden) if encoding else None)


def _forward(name: str, model: nn.Module, batch, encoded: bool) -> torch.Tensor:
    """``(B, classes)`` logits of one collated batch."""
    pe = batch.pe if encoded else None
    if name == "gps":
        return model(batch.x, batch.edge_index, batch.edge_attr, batch.batch, pe=pe)
    if name == "gin":
        return model(batch.x, batch.edge_index, batch.batch)
    # one pattern per molecule; the model inserts its learned virtual nodes and drops them again
    out = model(batch.x, batch.pattern, batch=batch.batch, pos=pe)  # (N, classes)
    # The head is linear, so mean-pooling its per-node outputs equals the head of the mean.
    return global_mean_pool(out, batch.batch, size=batch.num_graphs)  # (B, classes)


def _split(fold: torch.Tensor, k: int, labels: torch.Tensor, cfg: GraphConfig) -> tuple[list[int], ...]:
    rest = torch.nonzero(fold != k).flatten()
    inner = stratified_folds(labels[rest], round(1 / cfg.split.val_fraction), cfg.split.seed + 1 + k)
    return rest[inner != 0].tolist(), rest[inner == 0].tolist(), torch.nonzero(fold == k).flatten().tolist()


def _cross_validate(name: str, cfg: GraphConfig, graphs: list[Data], fold: torch.Tensor,
                    labels: torch.Tensor, rows: dict) -> dict:
    device = torch.device(cfg.run.device)
    num_classes, in_channels = int(labels.max()) + 1, graphs[0].x.size(1)
    edge_dim = graphs[0].edge_attr.size(1) if graphs[0].edge_attr is not None else None
    encoded, seed = cfg.positional.encoding != "none", cfg.split.seed

    def forward(model: nn.Module, batch) -> torch.Tensor:
        return _forward(name, model, batch.to(device), encoded)

    start, results = time.perf_counter(), []
    for k in range(cfg.folds):
        train, val, test = _split(fold, k, labels, cfg)
        set_seed(seed + k)
        model = _model(name, cfg, in_channels, edge_dim, num_classes).to(device)
        history = fit_minibatches(model, forward, [graphs[i] for i in train], [graphs[i] for i in val], cfg.training,
                                  seed=seed + k, progress=cfg.run.progress)
        test_acc, _ = evaluate(model, DataLoader([graphs[i] for i in test], batch_size=EVAL_BATCH), forward)
        results.append({"fold": k, "test_acc": test_acc, "best_val_acc": history.best_metrics.get("val_acc"),
                        "best_epoch": history.best_epoch, "epochs_run": history.epochs_run,
                        "time_per_epoch_s": history.mean_epoch_time_s,
                        "num_train": len(train), "num_val": len(val), "num_test": len(test)})
        for r in history.rows:
            row = rows.setdefault(r.epoch, {"epoch": r.epoch})
            row.update({f"{name}_loss_f{k}": r.loss, f"{name}_val_acc_f{k}": r.metrics["val_acc"]})
    accs = [r["test_acc"] for r in results]
    epoch_times = [r["time_per_epoch_s"] for r in results if not math.isnan(r["time_per_epoch_s"])]
    pattern = {"gps": f"bonds (GINE) + attention along {cfg.attention}",
               "transformer": "GraphEdges(<molecule>) | SelfLoops()" + (f" | {cfg.add}" if cfg.add else ""),
               "gin": "bonds (GIN)"}[name]
    return {"model": name, "pattern": pattern,
            "test_acc_mean": statistics.fmean(accs), "test_acc_std": statistics.pstdev(accs), "folds": results,
            "epochs_run_mean": statistics.fmean(r["epochs_run"] for r in results),
            "time_per_epoch_s": statistics.fmean(epoch_times) if epoch_times else float("nan"),
            "run_time_s": time.perf_counter() - start, "parameters": sum(p.numel() for p in model.parameters())}


def run(cfg: GraphConfig) -> dict:
    """Cross-validate every model of ``cfg.models`` on the same folds; returns the metrics (also
    written to ``cfg.run.out``). The top-level accuracy keys are those of the first model."""
    if not isinstance(cfg, GraphConfig):
        raise TypeError(f"cfg must be a GraphConfig, got {type(cfg).__name__}")
    device = torch.device(cfg.run.device)
    graphs = _graphs(cfg)
    labels = torch.cat([g.y for g in graphs])
    fold = stratified_folds(labels, cfg.folds, cfg.split.seed)
    reset_peak_memory(device)
    rows: dict[int, dict] = {}
    models = {name: _cross_validate(name, cfg, graphs, fold, labels, rows) for name in cfg.models}
    first = models[cfg.models[0]]
    metrics = {
        "task": "graph", "dataset": cfg.dataset, "encoding": cfg.positional.encoding,
        **{key: first[key] for key in ("model", "pattern", "test_acc_mean", "test_acc_std", "folds",
                                       "epochs_run_mean", "time_per_epoch_s", "run_time_s", "parameters")},
        "models": models,
        "majority_baseline": float(labels.bincount().max()) / labels.numel(),
        "peak_memory_mb": peak_memory_mb(device), "device": str(device), "num_graphs": len(graphs),
        "num_classes": int(labels.max()) + 1, "config": cfg.options(),
    }
    if cfg.run.out is not None:
        write_results(cfg.run.out, metrics, [rows[e] for e in sorted(rows)])
    return metrics
