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
  atom features only, as in the paper (:class:`~.baselines.GIN`).

Evaluation: stratified ``folds``-fold cross-validation (the folds depend only on ``seed``);
in each fold a stratified ``val_fraction`` of the training part picks the epoch (best
validation accuracy) and the held-out fold is scored once. Reported per model: mean and
standard deviation (over folds, ``ddof=0``) of the test accuracy, and its wall time; the
majority class is 125 / 188 = 0.665. (Xu et al. report GIN's 89.4 +- 5.6 with a different
protocol: the epoch with the best *test* accuracy averaged over the 10 folds, so the held-out
folds also pick the epoch.)

Every model is called as the harness calls models, ``model(x, graph)`` on a collated batch of
molecules, and trained by its one loop (:func:`~.harness.train_model`).

    from graphattn.experiments.graph_classification import GraphConfig, run
    metrics = run(GraphConfig.from_options(models=("gps", "gin"), out="runs/mutag"))
"""

from __future__ import annotations

import math
import statistics
import time
from contextlib import nullcontext

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import global_mean_pool
from torch_geometric.transforms import AddLaplacianEigenvectorPE, AddRandomWalkPE

from ..files import FolderLock
from ..models import GraphGPS, GraphTransformer
from ..nn.encodings import LaplacianEncoding, RandomWalkEncoding
from ..train import TrainConfig, peak_memory_mb, reset_peak_memory, set_seed
from .baselines import GIN
from .graph_config import GRAPH_MODELS, GraphConfig
from .harness import EVAL_BATCH, ExampleBatches, Optimization, evaluate, train_model
from .metrics import classification
from .registry import Task
from .results import OUTPUT_FILES, key_value_table, write_results
from .splits import stratified_folds

__all__ = ["GraphConfig", "run", "report", "GRAPH", "GRAPH_MODELS", "MoleculeGPS", "MoleculeTransformer"]


class MoleculeGPS(GraphGPS):
    """:class:`~graphattn.models.GraphGPS` that also takes the harness's call ``model(x, graph)``
    on a collated batch of molecules (its bonds, bond features if the local layer reads them,
    ``batch`` and ``pe``)."""

    def forward(self, x: Tensor, graph, *args, **kwargs) -> Tensor:  # type: ignore[override]
        if not isinstance(graph, Data):
            return super().forward(x, graph, *args, **kwargs)
        pe = graph.pe if self.pe_dim else None
        edge_attr = graph.edge_attr if self.reads_edges else None
        return super().forward(x, graph.edge_index, edge_attr, graph.batch, pe=pe)


class MoleculeTransformer(GraphTransformer):
    """:class:`~graphattn.models.GraphTransformer` that also takes ``model(x, graph)`` on a
    collated batch of molecules: attention along each molecule's own ``pattern`` (bonds,
    self-loops and what ``add`` joins), ``pe`` as positions, the per-node outputs mean-pooled
    per molecule (the head is linear, so this equals the head of the mean)."""

    def forward(self, x: Tensor, edges=None, *args, **kwargs):  # type: ignore[override]
        if not isinstance(edges, Data):
            return super().forward(x, edges, *args, **kwargs)
        pos = edges.pe if self.feature_encoding is not None else None
        out = super().forward(x, edges.pattern, batch=edges.batch, pos=pos)  # (N, classes)
        return global_mean_pool(out, edges.batch, size=edges.num_graphs)  # (B, classes)


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
        return MoleculeGPS(in_channels, m.hidden, num_classes, num_layers=m.layers, heads=m.heads,
                           pattern=cfg.parsed_attention(), edge_dim=edge_dim, pe_dim=pe_dim, dropout=m.dropout)
    if name == "gin":
        return GIN(in_channels, m.hidden, num_classes, num_layers=m.layers + 1, dropout=m.dropout)
    add = cfg.parsed_add()
    encoding = {"none": None, "laplacian": LaplacianEncoding, "random_walk": RandomWalkEncoding}[positional.encoding]
    return MoleculeTransformer(in_channels, m.hidden, num_classes, num_layers=m.layers, heads=m.heads,
                               dropout=m.dropout, virtual_nodes=add.extra_nodes if add is not None else 0,
                               feature_encoding=encoding(pe_dim, m.hidden) if encoding else None)


def _split(fold: torch.Tensor, k: int, labels: torch.Tensor, cfg: GraphConfig) -> tuple[list[int], ...]:
    rest = torch.nonzero(fold != k).flatten()
    inner = stratified_folds(labels[rest], round(1 / cfg.split.val_fraction), cfg.split.seed + 1 + k)
    return rest[inner != 0].tolist(), rest[inner == 0].tolist(), torch.nonzero(fold == k).flatten().tolist()


def _cross_validate(name: str, cfg: GraphConfig, graphs: list[Data], fold: torch.Tensor,
                    labels: torch.Tensor, rows: dict) -> dict:
    device = torch.device(cfg.run.device)
    num_classes, in_channels = int(labels.max()) + 1, graphs[0].x.size(1)
    edge_dim = graphs[0].edge_attr.size(1) if graphs[0].edge_attr is not None else None
    seed, t = cfg.split.seed, cfg.training
    objective = classification(t.label_smoothing)
    optimization = Optimization("adamw", t.lr, t.weight_decay, clip=1.0, warmup=t.warmup, schedule=t.schedule)
    start, results = time.perf_counter(), []
    for k in range(cfg.folds):
        train, val, test = _split(fold, k, labels, cfg)
        set_seed(seed + k)
        model = _model(name, cfg, in_channels, edge_dim, num_classes).to(device)
        history = train_model(model, ExampleBatches([graphs[i] for i in train], t.batch_size, shuffle=True, seed=seed + k),
                              ExampleBatches([graphs[i] for i in val], EVAL_BATCH), objective, optimization,
                              TrainConfig(epochs=t.epochs, patience=t.patience, progress=cfg.run.progress))
        scores = evaluate(model, ExampleBatches([graphs[i] for i in test], EVAL_BATCH), objective.metrics, ("test",),
                          device=device)
        results.append({"fold": k, "test_acc": scores["test_acc"], "best_val_acc": history.best_metrics.get("val_acc"),
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
    written to ``cfg.run.out``, which the run holds against other runs). The top-level accuracy
    keys are those of the first model."""
    if not isinstance(cfg, GraphConfig):
        raise TypeError(f"cfg must be a GraphConfig, got {type(cfg).__name__}")
    with FolderLock(cfg.run.out, outputs=OUTPUT_FILES) if cfg.run.out is not None else nullcontext():
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


def report(m: dict) -> str:
    """What ``graphattn graph`` prints: per model its pattern, test accuracy over the folds, epochs
    and run time, parameters; the majority class, peak memory, where results went."""
    rows = [("task", f"graph ({m['dataset']}), {len(m['folds'])}-fold cross-validation"), ("encoding", m["encoding"]),
            ("majority class", m["majority_baseline"])]
    for name, r in m["models"].items():  # the first is the default model, the rest its controls
        rows += [(name, r["pattern"]), (f"{name} test_acc", f"{r['test_acc_mean']:.4f} +- {r['test_acc_std']:.4f}"),
                 (f"{name} epochs / run time (s)", f"{r['epochs_run_mean']:.1f} / {r['run_time_s']:.0f}"),
                 (f"{name} parameters", r["parameters"])]
    out = m["config"]["out"]
    return key_value_table(rows + [("peak memory (MB)", m["peak_memory_mb"])] + ([("wrote", out)] if out else []))


GRAPH = Task(name="graph", config=GraphConfig, runner=run, report=report,
             help="graph classification (MUTAG), k-fold cross-validated",
             description="Classify molecules; attention runs along bonds plus self-loops.")
