"""Graph classification on MUTAG with the same attention layer: the molecule is the pattern.

Each graph becomes a ``Data`` through :func:`graphattn.convert.graph_to_data`: node ``i``
attends over its bonded neighbours and itself, ``GraphEdges(edges, n) | SelfLoops()``, joined
with ``add`` if given (``"VirtualNodes(1)"``: a node that every atom sees and that sees every
atom; ``"Expander(4)"``: random expander edges, as Exphormer). Graphs differ, so there is no
single pattern to lay on a batch: the model gets the batch's block-diagonal ``edge_index``,
and the converter's virtual nodes enter as ordinary nodes (zero features, so they all start
from the input projection's bias) that are left out of the mean pooling. Optional positional
features: Laplacian eigenvectors (``encoding="laplacian"``, random signs while training,
one draw per batch) or random-walk return probabilities (``"random_walk"``).

Evaluation: stratified ``folds``-fold cross-validation (the folds depend only on ``seed``);
in each fold a stratified ``val_fraction`` of the training part picks the epoch (best
validation accuracy) and the held-out fold is scored once. Reported: mean and standard
deviation (over folds, ``ddof=0``) of the test accuracy; the majority class is 125 / 188 = 0.665.

    from graphattn.experiments.graph_classification import GraphConfig, run
    metrics = run(GraphConfig(folds=10, epochs=100, add="VirtualNodes(1)", out="runs/mutag"))
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import global_mean_pool
from torch_geometric.transforms import AddLaplacianEigenvectorPE, AddRandomWalkPE

from ..models import GraphTransformer
from ..nn.encodings import LaplacianEncoding, RandomWalkEncoding
from ..patterns import Pattern, parse_pattern, positions, sizes_from_batch
from ..train import TrainConfig, fit, peak_memory_mb, reset_peak_memory, set_seed
from .sequence_classification import evaluate, train_epoch_fn, write_results

__all__ = ["GraphConfig", "run", "ENCODINGS", "stratified_folds"]

ENCODINGS = ("none", "laplacian", "random_walk")
DATASETS = ("MUTAG",)


@dataclass
class GraphConfig:
    """One cross-validated graph-classification run.

    Args:
        dataset: a catalogued TUDataset; only ``"MUTAG"``. (default: ``"MUTAG"``)
        add: a pattern (text) joined to the graph's edges and self-loops, e.g.
            ``"VirtualNodes(1)"`` or ``"Expander(4)"``; ``None`` adds nothing. (default: ``None``)
        encoding: ``"none"``, ``"laplacian"`` or ``"random_walk"`` positional features. (default: ``"none"``)
        encoding_dim: eigenvectors ``k`` or walk length (MUTAG's smallest graph has 10 nodes,
            so ``k <= 9``). (default: ``8``)
        hidden, heads, layers, dropout: the model. (default: ``64, 4, 3, 0.1``)
        folds: cross-validation folds (>= 2). (default: ``10``)
        epochs, patience, batch_size, lr, weight_decay: training per fold (AdamW, early
            stopping on ``val_acc``). (default: ``100, 30, 32, 1e-3, 0.01``)
        seed: seeds the folds, the validation splits, the weights and the batch order. (default: ``0``)
        val_fraction: stratified share of each fold's training part held out for validation. (default: ``0.1``)
        out, progress, device: as in :class:`~graphattn.experiments.sequence_classification.SequenceConfig`.
    """

    dataset: str = "MUTAG"
    add: str | None = None
    encoding: str = "none"
    encoding_dim: int = 8
    hidden: int = 64
    heads: int = 4
    layers: int = 3
    dropout: float = 0.1
    folds: int = 10
    epochs: int = 100
    patience: int | None = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    val_fraction: float = 0.1
    out: str | None = None
    progress: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        if str(self.dataset).upper() not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        self.dataset = str(self.dataset).upper()
        if self.add is not None:
            self.add = repr(self.parsed_add())
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        for name in ("encoding_dim", "hidden", "heads", "layers", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ValueError(f"patience must be a positive int or None, got {self.patience!r}")
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ValueError(f"folds must be an int >= 2, got {self.folds!r}")
        if self.encoding == "laplacian" and self.encoding_dim > 9:
            raise ValueError(f"encoding_dim={self.encoding_dim}: Laplacian eigenvectors need k < 10 "
                             f"(MUTAG's smallest graph has 10 nodes)")
        if self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction!r}")
        if not (self.lr > 0 and self.weight_decay >= 0 and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"need lr > 0, weight_decay >= 0, 0 <= dropout < 1; got lr={self.lr}, "
                             f"weight_decay={self.weight_decay}, dropout={self.dropout}")
        if self.device not in ("cpu", "cuda") or (self.device == "cuda" and not torch.cuda.is_available()):
            raise ValueError(f"device must be 'cpu' or an available 'cuda', got {self.device!r}")

    def parsed_add(self) -> Pattern | None:
        if self.add is None:
            return None
        try:
            return parse_pattern(self.add)
        except (TypeError, ValueError) as e:
            raise ValueError(f"add: {e}") from None


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

    dataset = load_tudataset(cfg.dataset, progress=cfg.progress)
    transform = {"none": None,
                 "laplacian": AddLaplacianEigenvectorPE(cfg.encoding_dim, attr_name="pe", is_undirected=True),
                 "random_walk": AddRandomWalkPE(cfg.encoding_dim, attr_name="pe")}[cfg.encoding]
    add = cfg.parsed_add()
    graphs = []
    for graph in dataset:
        graph = transform(graph) if transform is not None else graph
        data = graph_to_data(graph, add=add)
        extra = data.num_nodes - data.num_real_nodes
        if transform is not None and extra:  # virtual nodes have no position: zeros
            data.pe = torch.cat([data.pe, data.pe.new_zeros(extra, data.pe.size(1))])
        graphs.append(data)
    return graphs


def _forward(model: GraphTransformer, batch, encoded: bool) -> torch.Tensor:
    out = model(batch.x, batch.edge_index, batch=batch.batch, pos=batch.pe if encoded else None)  # (N, classes)
    real = positions(sizes_from_batch(batch.batch, out.size(0))).to(out.device) < batch.num_real_nodes[batch.batch]
    # The head is linear, so mean-pooling its per-node outputs equals the head of the mean.
    return global_mean_pool(out[real], batch.batch[real], size=batch.num_graphs)  # (B, classes)


def _split(fold: torch.Tensor, k: int, labels: torch.Tensor, cfg: GraphConfig) -> tuple[list[int], ...]:
    rest = torch.nonzero(fold != k).flatten()
    inner = stratified_folds(labels[rest], round(1 / cfg.val_fraction), cfg.seed + 1 + k)
    return rest[inner != 0].tolist(), rest[inner == 0].tolist(), torch.nonzero(fold == k).flatten().tolist()


def run(cfg: GraphConfig) -> dict:
    """Cross-validate one model configuration; returns the metrics (also written to ``cfg.out``)."""
    if not isinstance(cfg, GraphConfig):
        raise TypeError(f"cfg must be a GraphConfig, got {type(cfg).__name__}")
    device = torch.device(cfg.device)
    graphs = _graphs(cfg)
    labels = torch.cat([g.y for g in graphs])
    num_classes, in_channels = int(labels.max()) + 1, graphs[0].x.size(1)
    fold = stratified_folds(labels, cfg.folds, cfg.seed)
    encoded = cfg.encoding != "none"
    reset_peak_memory(device)

    def forward(m: torch.nn.Module, batch) -> torch.Tensor:
        return _forward(m, batch.to(device), encoded)

    results, rows = [], {}
    for k in range(cfg.folds):
        train, val, test = _split(fold, k, labels, cfg)
        set_seed(cfg.seed + k)
        encoding = {"none": None, "laplacian": LaplacianEncoding, "random_walk": RandomWalkEncoding}[cfg.encoding]
        model = GraphTransformer(in_channels, cfg.hidden, num_classes, num_layers=cfg.layers, heads=cfg.heads,
                                 dropout=cfg.dropout,
                                 feature_encoding=encoding(cfg.encoding_dim, cfg.hidden) if encoding else None).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        shuffled = DataLoader([graphs[i] for i in train], batch_size=cfg.batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(cfg.seed + k))
        val_loader = DataLoader([graphs[i] for i in val], batch_size=256)

        def validate() -> dict[str, float]:
            acc, loss = evaluate(model, val_loader, forward)
            return {"val_acc": acc, "val_loss": loss}

        history = fit(model, optimizer, train_epoch_fn(model, optimizer, shuffled, forward), validate,
                      TrainConfig(epochs=cfg.epochs, patience=cfg.patience, progress=cfg.progress))
        test_acc, _ = evaluate(model, DataLoader([graphs[i] for i in test], batch_size=256), forward)
        results.append({"fold": k, "test_acc": test_acc, "best_val_acc": history.best_metrics.get("val_acc"),
                        "best_epoch": history.best_epoch, "epochs_run": history.epochs_run,
                        "time_per_epoch_s": history.mean_epoch_time_s,
                        "num_train": len(train), "num_val": len(val), "num_test": len(test)})
        for r in history.rows:
            rows.setdefault(r.epoch, {"epoch": r.epoch}).update({f"loss_f{k}": r.loss, f"val_acc_f{k}": r.metrics["val_acc"]})

    accs = [r["test_acc"] for r in results]
    n_params = sum(p.numel() for p in model.parameters())
    epoch_times = [r["time_per_epoch_s"] for r in results if not math.isnan(r["time_per_epoch_s"])]
    metrics = {
        "task": "graph", "dataset": cfg.dataset, "pattern": "GraphEdges(<molecule>) | SelfLoops()" + (f" | {cfg.add}" if cfg.add else ""),
        "encoding": cfg.encoding,
        "test_acc_mean": statistics.fmean(accs), "test_acc_std": statistics.pstdev(accs),
        "majority_baseline": float(labels.bincount().max()) / labels.numel(),
        "folds": results, "epochs_run_mean": statistics.fmean(r["epochs_run"] for r in results),
        "time_per_epoch_s": statistics.fmean(epoch_times) if epoch_times else float("nan"),
        "peak_memory_mb": peak_memory_mb(device), "device": str(device), "num_graphs": len(graphs),
        "num_classes": num_classes, "parameters": n_params, "config": asdict(cfg),
    }
    if cfg.out is not None:
        write_results(cfg.out, metrics, [rows[e] for e in sorted(rows)])
    return metrics
