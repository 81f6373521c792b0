"""The settings of node classification (:mod:`.node_classification`): its datasets, models and
loaders, and :class:`NodeConfig`. Imports no torch."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..checks import check_bool, check_choice, check_int
from .options import Options, document, option, piece, refuse_unused
from .pieces import (
    DataConfig,
    EncodingConfig,
    ModelConfig,
    ProcessConfig,
    RepeatConfig,
    RunConfig,
    TrainingConfig,
    resolve_workers,
)

__all__ = ["NodeConfig", "NodeBatchConfig", "GRAPHATTN_MODELS", "LOCAL_GLOBAL_MODELS", "BASELINE_MODELS", "TUNED_MODELS",
           "MODELS", "DEFAULT_MODELS", "PLANETOID_DATASETS", "SHCHUR_DATASETS", "NODE_DATASETS", "LOADERS", "ARCHITECTURES",
           "SPLITS", "NORMS", "DEFAULT_BATCH_SIZE", "DEFAULT_NEIGHBORS"]

#: graphattn models, named after the pattern they attend along (see ``node_models.pattern_for``);
#: ``exphormer`` is Exphormer's interaction graph: the graph, virtual nodes and an expander.
GRAPHATTN_MODELS = ("graph", "graph+virtual", "graph+expander", "exphormer", "graph+bigbird", "full")
#: graphattn's :class:`~graphattn.models.LocalGlobalNetwork` (SGFormer's and Polynormer's shape): GCN message
#: passing beside linear global attention over every node of the step's graph (the whole graph, or the
#: mini-batch's subgraph), Polynormer's sigmoid kernel; ``local-only`` is the same model without the global
#: branch, the twin its cost and accuracy are measured against. They read ``hidden``, ``heads``, ``layers``,
#: ``dropout``, ``lr`` and ``weight_decay`` (neither ``architecture`` nor positional features).
LOCAL_GLOBAL_MODELS = ("local-global", "local-only")
#: ``gcn`` and ``gat`` keep their published Planetoid recipes (.baselines); ``gcn+`` and ``gat+`` are
#: Luo et al.'s tuned GCN and GAT (graphattn.models.GNNPlus without attention), trained with the
#: run's own width, depth, dropout, norm, residual, lr and weight decay, as the plus architecture is.
TUNED_MODELS = ("gcn+", "gat+")
BASELINE_MODELS = ("gcn", "gat", *TUNED_MODELS)
MODELS = (*GRAPHATTN_MODELS, *LOCAL_GLOBAL_MODELS, *BASELINE_MODELS)
#: ``full`` is left out by default: dense attention over all N nodes costs N^2 per head and
#: layer (7.3M scores on Cora), minutes per run on a laptop CPU; ask for it with ``models``.
#: ``graph+bigbird`` (global attention made for batches of nodes) and the local-global pair are asked for
#: by name too.
DEFAULT_MODELS = tuple(m for m in MODELS if m not in ("full", "graph+bigbird", *LOCAL_GLOBAL_MODELS))
PLANETOID_DATASETS = ("Cora", "CiteSeer", "PubMed")
#: Shchur et al.'s co-purchase and co-author graphs; no split is published.
SHCHUR_DATASETS = ("Amazon-Computers", "Amazon-Photo", "Coauthor-CS", "Coauthor-Physics")
#: Planetoid; Shchur's graphs; the synthetic stochastic block models (generated on first use);
#: ogbn-arxiv (needs ``ogb``).
NODE_DATASETS = (*PLANETOID_DATASETS, *SHCHUR_DATASETS, "SBM-10k", "SBM-100k", "SBM-1M", "ogbn-arxiv")
#: ``public``: the dataset's own split (Planetoid's, SBM's, OGB's); ``random``: 60 / 20 / 20 % of
#: the nodes drawn afresh for each seed (the split Exphormer and NAGphormer report on Amazon and
#: Coauthor); ``per-class``: 20 training and 30 validation nodes per class, the rest test, per seed
#: (Shchur et al.'s protocol).
SPLITS = ("public", "random", "per-class")
NORMS = ("layer_norm", "batch_norm", "none")
#: ``full``: the whole graph in every step; ``random``: PyG's ``RandomNodeLoader`` partitions;
#: ``neighbor``: PyG's ``NeighborLoader`` (needs torch-sparse or pyg-lib).
LOADERS = ("full", "random", "neighbor")
DEFAULT_BATCH_SIZE = 4096
DEFAULT_NEIGHBORS = 10
#: ``attention``: GraphAttentionNetwork (GAT form, shared projections); ``transformer``:
#: GraphTransformer (pre-norm blocks with feed-forward layers, ``ffn_ratio=1``); ``plus``:
#: GNNPlus, Luo et al.'s tuned GCN with the attention summed with its messages in every layer.
ARCHITECTURES = ("attention", "transformer", "plus")


@dataclass(frozen=True)
class NodeBatchConfig:
    """Mini-batches of nodes for graphs too large for one step (PyG's loaders).

    ``batch_size`` is the global batch, the same whatever the number of processes: each of P
    processes (``torchrun``) scores its share of the batch's target nodes.
    """

    loader: str | None = option(None, "full: the whole graph per step; random: RandomNodeLoader partitions of "
                                      "batch-size nodes; neighbor: NeighborLoader around batch-size training "
                                      "seeds (needs torch-sparse or pyg-lib); unset: full for Planetoid, "
                                      "Amazon and Coauthor, random otherwise", choices=LOADERS)
    batch_size: int | None = option(None, f"random: nodes per partition; neighbor: seed nodes per batch; "
                                          f"unset: {DEFAULT_BATCH_SIZE} (not with --loader full)")
    num_neighbors: tuple[int, ...] | None = option(None, f"neighbor: neighbours sampled per hop, one number per "
                                                         f"hop; unset: {DEFAULT_NEIGHBORS} per layer", metavar="K")
    disjoint: bool = option(False, "neighbor: every seed gets its own subgraph and attends only within it "
                                   "(NeighborLoader disjoint=True; needs pyg-lib)")

    def __post_init__(self) -> None:
        if self.loader is not None:
            check_choice(self.loader, "loader", LOADERS)
        if self.batch_size is not None:
            check_int(self.batch_size, "batch_size")
        if self.num_neighbors is not None:
            hops = (self.num_neighbors,) if isinstance(self.num_neighbors, (int, str)) else tuple(self.num_neighbors)
            try:  # the command line hands over strings
                hops = tuple(int(k) if isinstance(k, str) else k for k in hops)
            except ValueError:
                raise ValueError(f"num_neighbors must be ints (-1: all neighbours), got {self.num_neighbors!r}") from None
            if not hops:
                raise ValueError("num_neighbors must give at least one hop")
            for k in hops:
                check_int(k, "num_neighbors", -1)
                if k == 0:
                    raise ValueError("num_neighbors must be positive or -1 (all neighbours), got 0")
            object.__setattr__(self, "num_neighbors", hops)
        check_bool(self.disjoint, "disjoint")


@document
@dataclass(frozen=True)
class NodeConfig(Options):
    """A node-classification run: which data, which models, how they train, where results go
    (:mod:`graphattn.experiments.node_classification`).

    ``model`` and ``training`` set the graphattn models and the tuned ``gcn+`` / ``gat+``; GCN and
    GAT keep their published recipes (:mod:`~graphattn.experiments.baselines`). ``split`` unset
    is the dataset's own split, or ``random`` (60 / 20 / 20, drawn per seed) for Amazon and
    Coauthor, which publish none. ``dropout`` acts on the input features,
    the hidden layers (residual branches of the transformer) and the attention weights, as GAT
    uses one rate everywhere. ``resume`` continues every run whose checkpoint exists (implies
    ``save``; the others start from scratch) and is refused, before anything runs, if a
    checkpoint holds another experiment. ``workers > 1`` trains runs at once, each in its own
    one-thread process (CPU only; results do not depend on it).
    """

    dataset: str = option("Cora", f"{', '.join(NODE_DATASETS)} (case-insensitive)")
    models: tuple[str, ...] = option(DEFAULT_MODELS, f"models to compare, space- or comma-separated, from "
                                                     f"{', '.join(MODELS)}", metavar="MODEL")
    split: str | None = option(None, "public: the dataset's own; random: 60/20/20 drawn per seed (Exphormer's and "
                                     "NAGphormer's split); per-class: 20 training and 30 validation nodes per class, "
                                     "per seed; unset: public, or random for Amazon and Coauthor", choices=SPLITS)
    architecture: str = option("attention", "graphattn model: GraphAttentionNetwork (GAT form), GraphTransformer, or "
                                            "plus (Luo et al.'s tuned GCN with attention beside it)",
                               choices=ARCHITECTURES)
    norm: str = option("layer_norm", "plus, gcn+, gat+: the norm of every layer", choices=NORMS)
    residual: bool = option(True, "plus, gcn+, gat+: a linear residual in every layer",
                            negative="plus, gcn+, gat+: no residual")
    virtual_nodes: int = option(1, "virtual nodes of graph+virtual")
    expander_degree: int = option(4, "in-degree of the expander of graph+expander (even; drawn with the run's seed)")
    global_layers: int | None = option(None, "local-global: the first this many layers have the global branch "
                                             "(1: SGFormer's single global layer); unset: every layer")
    model: ModelConfig = piece(ModelConfig(heads=8, dropout=0.6), "graphattn models",
                               dropout="dropout on inputs, hidden layers and attention weights")
    positional: EncodingConfig = piece(EncodingConfig(), "positional features (after the input projection)")
    training: TrainingConfig = piece(
        TrainingConfig(epochs=200, patience=50, lr=0.005, weight_decay=5e-4), "training of the graphattn models",
        patience="early stopping on validation accuracy, ties broken by validation loss",
        lr="Adam learning rate", weight_decay="Adam weight decay")
    batching: NodeBatchConfig = piece(NodeBatchConfig(), "mini-batches (large graphs)")
    repeats: RepeatConfig = piece(RepeatConfig(), "runs and checkpoints")
    processes: ProcessConfig = piece(
        ProcessConfig(), "processes and threads",
        workers="runs trained at once in separate one-thread processes (which show no per-epoch progress); unset: "
                "CPU cores, at most 2, for whole-graph training; 1 for mini-batches (long epochs: their progress "
                "shows), on CUDA and under torchrun")
    data: DataConfig = piece(DataConfig(), "data")
    run: RunConfig = piece(RunConfig(), "output and device", out="output folder; unset: runs/node/<dataset>")

    def __post_init__(self) -> None:
        canonical = {d.lower(): d for d in NODE_DATASETS}.get(str(self.dataset).lower())
        if canonical is None:
            raise ValueError(f"dataset must be one of {NODE_DATASETS}, got {self.dataset!r}")
        object.__setattr__(self, "dataset", canonical)
        models = (self.models,) if isinstance(self.models, str) else tuple(self.models)
        unknown = [m for m in models if m not in MODELS]
        if not models or unknown or len(set(models)) != len(models):
            raise ValueError(f"models must be distinct names from {MODELS}, got {self.models!r}"
                             + (f" (unknown: {unknown})" if unknown else ""))
        object.__setattr__(self, "models", models)
        check_choice(self.architecture, "architecture", ARCHITECTURES)
        check_choice(self.norm, "norm", NORMS)
        check_bool(self.residual, "residual")
        split = self.split or ("random" if self.dataset in SHCHUR_DATASETS else "public")
        check_choice(split, "split", SPLITS)
        if split == "public" and self.dataset in SHCHUR_DATASETS:
            raise ValueError(f"split='public': {self.dataset} publishes no split; use split='random' (60/20/20) or "
                             "'per-class' (20 per class)")
        object.__setattr__(self, "split", split)
        if self.architecture == "plus" and self.positional.encoding != "none":
            raise ValueError("architecture='plus' takes no positional features; leave encoding='none'")
        check_int(self.virtual_nodes, "virtual_nodes")
        check_int(self.expander_degree, "expander_degree", 2)
        if self.global_layers is not None:
            check_int(self.global_layers, "global_layers")
            if self.global_layers > self.model.layers:
                raise ValueError(f"global_layers must be at most layers ({self.model.layers}), got {self.global_layers}")
        if self.expander_degree % 2:
            raise ValueError(f"expander_degree must be even, got {self.expander_degree}")
        self._refuse_unused()
        b = self.batching
        loader = b.loader or ("full" if self.dataset in (*PLANETOID_DATASETS, *SHCHUR_DATASETS) else "random")
        workers = resolve_workers(self.processes, self.run.device, one=loader != "full")
        object.__setattr__(self, "processes", replace(self.processes, workers=workers))
        if loader == "full" and b.batch_size is not None:
            raise ValueError(f"batch_size={b.batch_size} needs loader='random' or 'neighbor' (loader='full' "
                             "trains on the whole graph)")
        if loader != "neighbor" and (b.num_neighbors is not None or b.disjoint):
            raise ValueError(f"num_neighbors and disjoint need loader='neighbor', got loader={loader!r}")
        hops = b.num_neighbors or (DEFAULT_NEIGHBORS,) * self.model.layers
        size = b.batch_size if b.batch_size is not None or loader == "full" else DEFAULT_BATCH_SIZE
        object.__setattr__(self, "batching", replace(b, loader=loader, batch_size=size,
                                                     num_neighbors=hops if loader == "neighbor" else None))

    def _refuse_unused(self) -> None:
        """Options that none of ``models`` reads are refused, never dropped (:func:`refuse_unused`)."""
        refuse_unused(self, ("dist_timeout",), int(os.environ.get("WORLD_SIZE", "1")) > 1, "it applies under torchrun")
        refuse_unused(self, ("virtual_nodes",), "graph+virtual" in self.models, "it sets model graph+virtual")
        refuse_unused(self, ("expander_degree",), "graph+expander" in self.models, "it sets model graph+expander")
        refuse_unused(self, ("global_layers",), "local-global" in self.models, "it sets model local-global")
        refuse_unused(self, ("encoding_dim",), self.positional.encoding != "none",
                      "there are no positional features (encoding='none')")
        # the layers also set the neighbour loader's default hops, which the baselines read too
        neighbor = self.batching.loader == "neighbor"
        ours = any(m in GRAPHATTN_MODELS for m in self.models)
        local_global = any(m in LOCAL_GLOBAL_MODELS for m in self.models)
        refuse_unused(self, ("architecture", "encoding"), ours,
                      f"they set the models of {GRAPHATTN_MODELS}, and models={self.models} has none "
                      f"({', '.join(LOCAL_GLOBAL_MODELS)} have their own architecture and no positional features)")
        refuse_unused(self, ("hidden", *(() if neighbor else ("layers",)), "dropout", "lr", "weight_decay"),
                      ours or local_global or any(m in TUNED_MODELS for m in self.models),
                      f"they set the graphattn models and gcn+ / gat+, and models={self.models} has none (GCN and "
                      "GAT keep their published recipes)")
        refuse_unused(self, ("heads",), ours or local_global or "gat+" in self.models,
                      f"they set the graphattn models and gat+, and models={self.models} has none")

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out) if self.run.out is not None else Path("runs") / "node" / self.dataset
