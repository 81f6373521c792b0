"""Every setting of every experiment, declared once: small frozen pieces composed into one config
per experiment.

A setting is a dataclass field made with :func:`option`: its default, its help text and its
choices live in the field, and ``graphattn <command> --help`` is generated from them
(:mod:`graphattn.cli`), so nothing is typed twice. The pieces (:class:`ModelConfig`,
:class:`TrainingConfig`, :class:`BatchTrainingConfig`, :class:`SplitConfig`,
:class:`EncodingConfig`, :class:`RunConfig`) validate their own fields once, in
``__post_init__``, with :mod:`graphattn.checks` (``TypeError`` for a wrong type, ``ValueError``
for a bad value); an experiment's config (:class:`NodeConfig`, :class:`SequenceConfig`,
:class:`GraphConfig`) adds its own fields and the checks that span pieces. Each experiment sets
its defaults by giving each piece a default instance.

Option names are flat and unique within a config (``hidden``, ``lr``, ``out``: the command
line's ``--hidden``, ``--lr``, ``--out``), so a config is also made from flat names::

    NodeConfig.from_options(dataset="Cora", models=("graph", "gat"), seeds=3, epochs=50)

This module imports neither torch nor the experiments, so building the command line is cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..checks import MAX_SEED, check_bool, check_choice, check_float, check_int, check_path, check_probability
from .options import Options, document, option, piece

__all__ = [
    "ModelConfig", "TrainingConfig", "BatchTrainingConfig", "SequenceTrainingConfig",
    "SplitConfig", "EncodingConfig", "RunConfig", "NodeConfig", "SequenceConfig", "GraphConfig",
    "DEVICES", "ENCODINGS", "MODELS", "GRAPHATTN_MODELS", "BASELINE_MODELS", "DEFAULT_MODELS",
    "NODE_DATASETS", "ARCHITECTURES", "TASKS", "TASK_EPOCHS", "TASK_RECIPES", "SequenceModelConfig",
    "DEFAULT_PATTERNS", "DEFAULT_POOLING", "POOLINGS", "POSITIONS",
    "GRAPH_DATASETS", "SCHEDULES", "StudyConfig", "STUDY_PATTERNS", "NodeBatchConfig", "LOADERS", "PLANETOID_DATASETS",
    "GRAPH_MODELS",
]

DEVICES = ("cpu", "cuda")
ENCODINGS = ("none", "laplacian", "random_walk")


# ------------------------------------------------------------------------------- the pieces


@dataclass(frozen=True)
class ModelConfig:
    """The attention model: width, heads, layers and dropout."""

    hidden: int = option(64, "model width H * C")
    heads: int = option(4, "attention heads H (must divide the width)")
    layers: int = option(2, "attention layers / blocks L")
    dropout: float = option(0.1, "dropout on the residual branches")

    def __post_init__(self) -> None:
        for name in ("hidden", "heads", "layers"):
            check_int(getattr(self, name), name)
        check_probability(self.dropout, "dropout")
        if self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation and early stopping (on validation accuracy)."""

    epochs: int = option(20, "most epochs")
    patience: int | None = option(5, "early-stopping patience: epochs without a better validation accuracy")
    lr: float = option(1e-3, "AdamW learning rate")
    weight_decay: float = option(0.01, "AdamW weight decay")

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs")
        if self.patience is not None:
            check_int(self.patience, "patience")
        check_float(self.lr, "lr", above=0)
        check_float(self.weight_decay, "weight_decay", minimum=0)


#: ``constant``: the learning rate ``lr`` after the warmup; ``cosine``: decayed from ``lr`` to 0 at the last epoch.
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class BatchTrainingConfig(TrainingConfig):
    """Training on shuffled mini-batches.

    The learning rate at optimiser step ``t`` of ``T = epochs * batches`` is
    ``lr * t / W`` during the ``W = warmup * batches`` warmup steps, then ``lr`` (``constant``)
    or ``lr * (1 + cos(pi * (t - W) / (T - W))) / 2`` (``cosine``); a warmup as long as the
    run never reaches ``lr``. The loss is the
    cross-entropy against labels smoothed by ``label_smoothing`` = ``eps``: the target puts
    ``1 - eps + eps / K`` on the true class and ``eps / K`` on each of the ``K`` classes.
    """

    batch_size: int = option(64, "examples per batch")
    warmup: int = option(0, "epochs over which the learning rate rises linearly from 0 to lr")
    schedule: str = option("constant", "learning rate after the warmup: constant, or cosine decay to 0 at the "
                                       "last epoch", choices=SCHEDULES)
    label_smoothing: float = option(0.0, "share of each training target spread evenly over the classes")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int(self.batch_size, "batch_size")
        check_int(self.warmup, "warmup", 0)
        check_choice(self.schedule, "schedule", SCHEDULES)
        check_float(self.label_smoothing, "label_smoothing", minimum=0, below=1)


@dataclass(frozen=True)
class SequenceTrainingConfig(BatchTrainingConfig):
    """Mini-batch training whose ``epochs``, ``lr`` and ``label_smoothing`` may be left unset, for
    the experiment to fill in its task's recipe (:data:`TASK_EPOCHS`, :data:`TASK_RECIPES`);
    the fields are checked once all three are set."""

    epochs: int | None = option(None, "most epochs; unset: the task's budget")
    lr: float | None = option(None, "AdamW learning rate; unset: the task's")
    label_smoothing: float | None = option(None, "share of each training target spread evenly over the classes; "
                                                 "unset: the task's")

    def __post_init__(self) -> None:
        if None not in (self.epochs, self.lr, self.label_smoothing):
            super().__post_init__()


@dataclass(frozen=True)
class SequenceModelConfig(ModelConfig):
    """The sequence model, whose ``dropout`` may be left unset for the task's recipe."""

    dropout: float | None = option(None, "dropout on the residual branches; unset: the task's")

    def __post_init__(self) -> None:
        if self.dropout is not None:
            super().__post_init__()


@dataclass(frozen=True)
class SplitConfig:
    """The seed and the validation split carved from the training data."""

    seed: int = option(0, "seeds weights, splits and batch order")
    val_fraction: float = option(0.1, "share of the training data held out for validation")

    def __post_init__(self) -> None:
        check_int(self.seed, "seed", 0, MAX_SEED)
        check_float(self.val_fraction, "val_fraction", above=0, below=1)


@dataclass(frozen=True)
class EncodingConfig:
    """Positional features of graph nodes (PyG's ``AddLaplacianEigenvectorPE`` / ``AddRandomWalkPE``)."""

    encoding: str = option("none", "positional features", choices=ENCODINGS)
    encoding_dim: int = option(8, "Laplacian eigenvectors or random-walk steps")

    def __post_init__(self) -> None:
        check_choice(self.encoding, "encoding", ENCODINGS)
        check_int(self.encoding_dim, "encoding_dim")


@dataclass(frozen=True)
class RunConfig:
    """Where results go, progress bars, the device."""

    out: str | None = option(None, "write results.json and pictures to this folder; unset: nothing is written",
                             metavar="DIR")
    progress: bool = option(True, "progress bars")
    device: str = option("cpu", "where to train", choices=DEVICES)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", check_path(self.out, "out", optional=True))
        check_bool(self.progress, "progress")
        check_choice(self.device, "device", DEVICES)
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ValueError("device='cuda' but CUDA is not available; use device='cpu'")



# ------------------------------------------------------------------------------- node classification

GRAPHATTN_MODELS = ("graph", "graph+virtual", "graph+expander", "graph+bigbird", "full")
BASELINE_MODELS = ("gcn", "gat")  # recipes in .baselines
MODELS = (*GRAPHATTN_MODELS, *BASELINE_MODELS)
#: ``full`` is left out by default: dense attention over all N nodes costs N^2 per head and
#: layer (7.3M scores on Cora), minutes per run on a laptop CPU; ask for it with ``models``.
#: ``graph+bigbird`` (global attention made for batches of nodes) is asked for by name too.
DEFAULT_MODELS = tuple(m for m in MODELS if m not in ("full", "graph+bigbird"))
PLANETOID_DATASETS = ("Cora", "CiteSeer", "PubMed")
#: Planetoid; the synthetic stochastic block models (generated on first use); ogbn-arxiv (needs ``ogb``).
NODE_DATASETS = (*PLANETOID_DATASETS, "SBM-10k", "SBM-100k", "SBM-1M", "ogbn-arxiv")
#: ``full``: the whole graph in every step; ``random``: PyG's ``RandomNodeLoader`` partitions;
#: ``neighbor``: PyG's ``NeighborLoader`` (needs torch-sparse or pyg-lib).
LOADERS = ("full", "random", "neighbor")
DEFAULT_BATCH_SIZE = 4096
DEFAULT_NEIGHBORS = 10


@dataclass(frozen=True)
class NodeBatchConfig:
    """Mini-batches of nodes for graphs too large for one step (PyG's loaders).

    ``batch_size`` is the global batch, the same whatever the number of processes: each of P
    processes (``torchrun``) scores its share of the batch's target nodes.
    """

    loader: str | None = option(None, "full: the whole graph per step; random: RandomNodeLoader partitions of "
                                      "batch-size nodes; neighbor: NeighborLoader around batch-size training "
                                      "seeds (needs torch-sparse or pyg-lib); unset: full for Planetoid, "
                                      "random otherwise", choices=LOADERS)
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
#: ``attention``: GraphAttentionNetwork (GAT form, shared projections); ``transformer``:
#: GraphTransformer (pre-norm blocks with feed-forward layers, ``ffn_ratio=1``).
ARCHITECTURES = ("attention", "transformer")


@document
@dataclass(frozen=True)
class NodeConfig(Options):
    """A node-classification run: which data, which models, how they train, where results go
    (:mod:`graphattn.experiments.node_classification`).

    ``model`` and ``training`` set the graphattn models only; GCN and GAT keep their published
    recipes (:mod:`~graphattn.experiments.baselines`). ``dropout`` acts on the input features,
    the hidden layers (residual branches of the transformer) and the attention weights, as GAT
    uses one rate everywhere. ``resume`` continues every run whose checkpoint exists (implies
    ``save``; the others start from scratch) and is refused, before anything runs, if a
    checkpoint holds another experiment. ``workers > 1`` trains runs at once, each in its own
    one-thread process (CPU only; results do not depend on it).
    """

    dataset: str = option("Cora", f"{', '.join(NODE_DATASETS)} (case-insensitive)")
    models: tuple[str, ...] = option(DEFAULT_MODELS, f"models to compare, space- or comma-separated, from "
                                                     f"{', '.join(MODELS)}", metavar="MODEL")
    architecture: str = option("attention", "graphattn model: GraphAttentionNetwork (GAT form) or GraphTransformer",
                               choices=ARCHITECTURES)
    seeds: int = option(10, "runs per model, seeds 0..N-1")
    virtual_nodes: int = option(1, "virtual nodes of graph+virtual")
    expander_degree: int = option(4, "in-degree of the expander of graph+expander (even; drawn with the run's seed)")
    model: ModelConfig = piece(ModelConfig(heads=8, dropout=0.6), "graphattn models",
                               dropout="dropout on inputs, hidden layers and attention weights")
    positional: EncodingConfig = piece(EncodingConfig(), "positional features (after the input projection)")
    training: TrainingConfig = piece(
        TrainingConfig(epochs=200, patience=50, lr=0.005, weight_decay=5e-4), "training of the graphattn models",
        patience="early stopping on validation accuracy, ties broken by validation loss",
        lr="Adam learning rate", weight_decay="Adam weight decay")
    batching: NodeBatchConfig = piece(NodeBatchConfig(), "mini-batches (large graphs)")
    run: RunConfig = piece(RunConfig(), "output and device", out="output folder; unset: runs/node/<dataset>")
    save: bool = option(False, "checkpoint every (model, seed) under DIR/checkpoints after each epoch")
    resume: bool = option(False, "continue the runs saved with --save (same settings; more --epochs allowed)")
    root: str | None = option(None, "data root; unset: $GRAPHATTN_DATA or datasets/", metavar="DIR")
    mirror: str | None = option(None, "offline mirror; unset: $GRAPHATTN_MIRROR", metavar="DIR")
    threads: int | None = option(None, "torch CPU threads; unset: leave torch's setting")
    workers: int | None = option(None, "runs trained at once in separate one-thread processes; "
                                       "unset: CPU cores, at most 2 (1 on CUDA or under torchrun)")
    dist_timeout: int = option(300, "torchrun: seconds a process waits for the others before the job stops")

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
        check_int(self.seeds, "seeds")
        check_int(self.virtual_nodes, "virtual_nodes")
        check_int(self.expander_degree, "expander_degree", 2)
        if self.expander_degree % 2:
            raise ValueError(f"expander_degree must be even, got {self.expander_degree}")
        check_bool(self.save, "save")
        check_bool(self.resume, "resume")
        for name in ("root", "mirror"):
            object.__setattr__(self, name, check_path(getattr(self, name), name, optional=True))
        if self.threads is not None:
            check_int(self.threads, "threads")
        cuda = self.run.device == "cuda"
        distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.workers is None:
            object.__setattr__(self, "workers", 1 if cuda or distributed else max(1, min(2, os.cpu_count() or 1)))
        check_int(self.workers, "workers")
        if self.workers > 1 and cuda:
            raise ValueError(f"workers > 1 needs device='cpu', got device={self.run.device!r}")
        if self.workers > 1 and distributed:
            raise ValueError("workers > 1 cannot run under torchrun (each process trains every run in turn); "
                             "leave workers unset")
        check_int(self.dist_timeout, "dist_timeout")
        b = self.batching
        loader = b.loader or ("full" if self.dataset in PLANETOID_DATASETS else "random")
        if loader == "full" and b.batch_size is not None:
            raise ValueError(f"batch_size={b.batch_size} needs loader='random' or 'neighbor' (loader='full' "
                             "trains on the whole graph)")
        if loader != "neighbor" and (b.num_neighbors is not None or b.disjoint):
            raise ValueError(f"num_neighbors and disjoint need loader='neighbor', got loader={loader!r}")
        hops = b.num_neighbors or (DEFAULT_NEIGHBORS,) * self.model.layers
        size = b.batch_size if b.batch_size is not None or loader == "full" else DEFAULT_BATCH_SIZE
        object.__setattr__(self, "batching", replace(b, loader=loader, batch_size=size,
                                                     num_neighbors=hops if loader == "neighbor" else None))

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out) if self.run.out is not None else Path("runs") / "node" / self.dataset


# ------------------------------------------------------------------------------- sequence classification

TASKS = ("text", "speech", "image", "listops", "pixels")
DEFAULT_PATTERNS = {"text": "Window(2) | Global([0])", "speech": "Window(8)", "image": "Full()",
                    "listops": "Full()", "pixels": "Full()"}
DEFAULT_POOLING = {"text": "cls", "speech": "mean", "image": "mean", "listops": "mean", "pixels": "mean"}
POOLINGS = ("cls", "mean", "max")
POSITIONS = ("sinusoidal", "rope", "none")
#: The default budget of each task: the cosine schedule decays the learning rate to 0 at its end.
TASK_EPOCHS = {"text": 30, "speech": 40, "image": 60, "listops": 20, "pixels": 20}
#: Each task's learning rate, label smoothing, dropout and ensemble size when unset (the first
#: three chosen on validation accuracy: TREC's 4,907 training questions need the stronger
#: regularisation; its single models disagree enough that the mean of five, a conventional
#: size, classifies better than any one of them).
TASK_RECIPES = {task: {"lr": 1e-3, "label_smoothing": 0.0, "dropout": 0.1, "ensemble": 1} for task in TASKS} | {
    "text": {"lr": 2e-3, "label_smoothing": 0.1, "dropout": 0.3, "ensemble": 5}}
#: The options that apply to one task, with their defaults there (0: off; elsewhere always 0): the
#: hash buckets of TREC's character trigrams and the word dropout (training words read as
#: ``<unk>``); random shifts of MNIST images in pixels; SpecAugment mask widths in mel channels and frames.
TASK_OPTIONS = {"text": {"subwords": 4096, "word_dropout": 0.1}, "image": {"shift": 2},
                "speech": {"freq_mask": 8, "time_mask": 10}}
#: Nodes per example where every example has the same length: 7 x 7 patches; 28 x 28 pixels.
FIXED_NODES = {"image": 49, "pixels": 784}
#: ListOps training examples drawn when ``limit`` is unset (LRA draws 96,000; see ``max_length``).
LISTOPS_TRAIN = 8000
#: The offline default: expressions of 33..127 tokens train in minutes on a 2-core CPU;
#: ``max_length=2000`` is LRA's setting (500..1999 tokens), for a GPU.
LISTOPS_MAX_LENGTH = 128


@document
@dataclass(frozen=True)
class SequenceConfig(Options):
    """One sequence-classification run (:mod:`graphattn.experiments.sequence_classification`).

    ``task`` is ``"text"`` (TREC), ``"speech"`` (FSDD), ``"image"`` (MNIST patches),
    ``"listops"`` (generated ListOps, :mod:`graphattn.datasets.listops`) or ``"pixels"`` (MNIST
    as 784-pixel sequences); the command line takes it from the command. ``pattern`` is stored
    canonically (its ``repr``) after validation; ``pooling`` unset is ``"cls"`` for text (the
    ``<cls>`` token), ``"mean"`` otherwise. The test split is always scored in full.
    ``ensemble = K`` trains ``K`` models from the seeds ``seed .. seed + K - 1`` (weights, batch
    order and augmentation; the validation split stays ``seed``'s) and classifies by the mean
    of their probabilities.
    """

    task: str = "text"
    pattern: str | None = option(None, 'attention pattern, e.g. "Window(4)"; unset: the task\'s default')
    pooling: str | None = option(None, "cls (text only), mean or max (feature-wise over the nodes); unset: "
                                       "the task's default", choices=POOLINGS)
    position: str = option("sinusoidal", "positional encoding (2-D for images)", choices=POSITIONS)
    limit: int | None = option(None, f"use at most N training examples (validation is carved from them); "
                                     f"unset: all, ListOps {LISTOPS_TRAIN}")
    max_length: int = option(LISTOPS_MAX_LENGTH, "listops: expressions shorter than this many tokens and longer "
                                                 "than a quarter of it (LRA: 2000)")
    ensemble: int | None = option(None, "models trained from seeds seed, seed + 1, ... that classify by their mean "
                                        "probabilities; unset: text 5, others 1")
    hop: int = option(80, "speech: frame hop in samples at 8 kHz (80: 10 ms; 20: 2.5 ms, hundreds of frames)")
    subwords: int | None = option(None, f"text: hash buckets of the words' character trigrams (0: words only); "
                                        f"unset: {TASK_OPTIONS['text']['subwords']}")
    word_dropout: float | None = option(None, f"text: share of training words read as <unk> (their trigrams kept); "
                                              f"unset: {TASK_OPTIONS['text']['word_dropout']}")
    shift: int | None = option(None, f"image: shift each training image by up to N pixels each way (random "
                                     f"translation); unset: {TASK_OPTIONS['image']['shift']}")
    freq_mask: int | None = option(None, f"speech: SpecAugment, zero up to N adjacent mel channels of each training "
                                         f"clip; unset: {TASK_OPTIONS['speech']['freq_mask']}")
    time_mask: int | None = option(None, f"speech: SpecAugment, zero up to N adjacent frames of each training clip; "
                                         f"unset: {TASK_OPTIONS['speech']['time_mask']}")
    model: SequenceModelConfig = piece(SequenceModelConfig(), "model",
                                       dropout="dropout on the residual branches; unset: text 0.3, others 0.1")
    training: SequenceTrainingConfig = piece(
        SequenceTrainingConfig(patience=None, warmup=2, schedule="cosine"), "training",
        epochs=f"most epochs; unset: {', '.join(f'{t} {n}' for t, n in TASK_EPOCHS.items())}",
        lr="AdamW learning rate; unset: text 0.002, others 0.001",
        label_smoothing="share of each training target spread evenly over the classes; unset: text 0.1, others 0")
    split: SplitConfig = piece(SplitConfig(), "seed and validation split")
    run: RunConfig = piece(RunConfig(), "output and device")

    def __post_init__(self) -> None:
        check_choice(self.task, "task", TASKS)
        recipe = {"epochs": TASK_EPOCHS[self.task], **TASK_RECIPES[self.task]}
        unset = {name: recipe[name] for name in ("epochs", "lr", "label_smoothing") if getattr(self.training, name) is None}
        object.__setattr__(self, "training", replace(self.training, **unset))  # replace checks the result
        model_unset = {"dropout": recipe["dropout"]} if self.model.dropout is None else {}
        object.__setattr__(self, "model", replace(self.model, **model_unset))
        if self.ensemble is None:
            object.__setattr__(self, "ensemble", recipe["ensemble"])
        check_int(self.ensemble, "ensemble", 1, MAX_SEED - self.split.seed + 1)  # every member's seed is valid
        object.__setattr__(self, "pattern", repr(self.parsed_pattern()))
        if self.pooling is None:
            object.__setattr__(self, "pooling", DEFAULT_POOLING[self.task])
        check_choice(self.pooling, "pooling", POOLINGS)
        if self.pooling == "cls" and self.task != "text":
            raise ValueError(f"pooling='cls' needs a <cls> token, which only the text task has; "
                             f"use pooling='mean' for task={self.task!r}")
        check_choice(self.position, "position", POSITIONS)
        if self.limit is not None:
            check_int(self.limit, "limit")
        check_int(self.max_length, "max_length", 8)
        check_int(self.hop, "hop")
        for name in ("subwords", "word_dropout", "shift", "freq_mask", "time_mask"):
            self._task_option(name)
        hidden, heads = self.model.hidden, self.model.heads
        if self.position == "rope" and (hidden // heads) % (4 if self.task == "image" else 2):
            raise ValueError(f"position='rope' needs hidden / heads divisible by {4 if self.task == 'image' else 2}")
        if self.position == "sinusoidal" and self.task == "image" and hidden % 2:
            raise ValueError("2-D sinusoidal positions need an even hidden")

    def _task_option(self, name: str) -> None:
        """Resolve option ``name`` of :data:`TASK_OPTIONS` (unset: its task's default, 0 on other
        tasks) and check it: a rate in [0, 1) or an int >= 0, nonzero only on its own task."""
        task = next(t for t, settings in TASK_OPTIONS.items() if name in settings)
        value = getattr(self, name)
        if value is None:
            value = TASK_OPTIONS[task][name] if self.task == task else 0
        if isinstance(TASK_OPTIONS[task][name], float):
            value = check_probability(value, name)
        else:
            check_int(value, name, 0)
        if value and self.task != task:
            raise ValueError(f"{name}={value} applies to task={task!r} only, got task={self.task!r}")
        object.__setattr__(self, name, value)

    @property
    def train_limit(self) -> int | None:
        """The training examples asked for: ``limit``, else the task's default (``None``: all)."""
        return LISTOPS_TRAIN if self.limit is None and self.task == "listops" else self.limit

    def parsed_pattern(self):
        """The pattern object (raises ``ValueError`` naming the problem)."""
        from ..patterns import parse_pattern

        text = DEFAULT_PATTERNS[self.task] if self.pattern is None else self.pattern
        try:
            pattern = parse_pattern(text)
            if self.task in FIXED_NODES:
                pattern.validate(FIXED_NODES[self.task])  # a Grid2D must have the grid's width (7 or 28)
        except (TypeError, ValueError) as e:
            raise ValueError(f"pattern: {e}") from None
        return pattern


#: What ``graphattn study TASK`` compares when ``patterns`` is unset: full attention, a local
#: window, the Sparse Transformer's strided pattern (window + stride), Longformer, BigBird; on
#: pixels also Grid2D (the 2-D neighbourhood); on speech truncated (causal-local) windows.
STUDY_PATTERNS = {
    "listops": ("Full()", "Window(8)", "Window(8) | Stride(8)", "longformer(8, [0])", "bigbird(8, [0], 3)"),
    "pixels": ("Full()", "Window(14)", "Window(14) | Stride(28)", "longformer(14, [0])", "bigbird(14, [0], 4)",
               "Grid2D(2, 28)"),
    "speech": ("Full()", "Window(left=16, right=0)", "Window(left=64, right=0)", "longformer(16, [0])"),
    "text": ("Full()", "Window(2) | Global([0])", "Window(2)"),
    "image": ("Full()", "Grid2D(1, 7)", "Grid2D(2, 7)", "longformer(7, [0])"),
}


@document
@dataclass(frozen=True)
class StudyConfig(SequenceConfig):
    """Patterns side by side (:mod:`graphattn.experiments.study`): one :class:`SequenceConfig`
    run per pattern and seed, everything else equal. Seeds are ``seed``, ``seed + 1``, ...;
    results go to ``out`` (unset: ``runs/study/<task>``), one folder per run, and a run whose
    ``results.json`` is there with the same settings is not run again (resume by rerunning).
    """

    pattern: str | None = None  # one per run, from ``patterns``
    patterns: tuple[str, ...] | None = option(None, "the patterns compared; unset: the task's study set",
                                              metavar="PATTERN")
    training: SequenceTrainingConfig = piece(SequenceTrainingConfig(epochs=20, patience=5), "training")
    seeds: int = option(2, "runs per pattern (seeds seed, seed + 1, ...)")
    ensemble: int | None = option(1, "models per run, classifying by their mean probabilities (unset: the task's)")
    isolate: bool = option(True, "each run in a fresh process, so the CPU peak memory is that run's own")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "pattern", None)
        patterns = STUDY_PATTERNS.get(self.task, (DEFAULT_PATTERNS[self.task],)) if self.patterns is None \
            else self.patterns
        if isinstance(patterns, str) or not patterns:
            raise ValueError(f"patterns must be a non-empty list of pattern texts, got {patterns!r}")
        object.__setattr__(self, "patterns", tuple(self.run_config(p, self.split.seed).pattern for p in patterns))
        check_int(self.seeds, "seeds")
        check_bool(self.isolate, "isolate")

    def run_config(self, pattern: str, seed: int, out: str | None = None) -> SequenceConfig:
        """The :class:`SequenceConfig` of one run (validates ``pattern``)."""
        from dataclasses import fields

        own = {f.name: getattr(self, f.name) for f in fields(SequenceConfig)}
        return SequenceConfig(**{**own, "pattern": pattern, "split": replace(self.split, seed=seed),
                                 "run": replace(self.run, out=out)})

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out) if self.run.out is not None else Path("runs") / "study" / self.task


# ------------------------------------------------------------------------------- graph classification

GRAPH_DATASETS = ("MUTAG",)
#: ``gps``: GraphGPS (GINE on the bonds with their types, ``attention`` globally, the
#: positional features); ``transformer``: the GraphTransformer along the bonds (``add`` joined);
#: ``gin``: PyG's GIN, the control.
GRAPH_MODELS = ("gps", "transformer", "gin")


@document
@dataclass(frozen=True)
class GraphConfig(Options):
    """One cross-validated graph-classification run (:mod:`graphattn.experiments.graph_classification`):
    every model in ``models`` on the same folds and validation splits.

    ``add`` and ``attention`` are stored canonically (their ``repr``). MUTAG's smallest graph
    has 10 nodes, so Laplacian encodings take ``encoding_dim <= 9``; ``val_fraction`` is the
    stratified share of each fold's training part held out for validation (below 0.5).
    """

    dataset: str = option("MUTAG", "TUDataset name (only MUTAG)")
    models: tuple[str, ...] = option(("gps", "gin"), f"models to cross-validate, space- or comma-separated, from "
                                                     f"{', '.join(GRAPH_MODELS)}", metavar="MODEL")
    attention: str = option("Full()", "gps: pattern of the global attention, laid on each molecule")
    add: str | None = option(None, 'transformer: pattern joined to the bonds and self-loops, e.g. "VirtualNodes(1)"')
    folds: int = option(10, "cross-validation folds (>= 2)")
    positional: EncodingConfig = piece(EncodingConfig(encoding="random_walk", encoding_dim=16), "positional features")
    model: ModelConfig = piece(ModelConfig(layers=3), "model")
    training: BatchTrainingConfig = piece(BatchTrainingConfig(epochs=100, patience=30, batch_size=32),
                                          "training, per fold")
    split: SplitConfig = piece(SplitConfig(), "seed and validation split",
                               seed="seeds the folds, the validation splits, the weights and the batch order")
    run: RunConfig = piece(RunConfig(), "output and device")

    def __post_init__(self) -> None:
        if str(self.dataset).upper() not in GRAPH_DATASETS:
            check_choice(self.dataset, "dataset", GRAPH_DATASETS)
        object.__setattr__(self, "dataset", str(self.dataset).upper())
        models = (self.models,) if isinstance(self.models, str) else tuple(self.models)
        if not models:
            raise ValueError(f"models must name at least one of {GRAPH_MODELS}")
        for name in models:
            check_choice(name, "models", GRAPH_MODELS)
        object.__setattr__(self, "models", tuple(dict.fromkeys(models)))
        if self.add is not None:
            object.__setattr__(self, "add", repr(self.parsed_add()))
        object.__setattr__(self, "attention", repr(self.parsed_attention()))
        check_int(self.folds, "folds", 2)
        if self.positional.encoding == "laplacian" and self.positional.encoding_dim > 9:
            raise ValueError(f"encoding_dim={self.positional.encoding_dim}: Laplacian eigenvectors need k < 10 "
                             f"(MUTAG's smallest graph has 10 nodes)")
        if not self.split.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.split.val_fraction!r}")

    def parsed_attention(self):
        """The pattern of GraphGPS's global attention."""
        from ..patterns import parse_pattern

        try:
            return parse_pattern(self.attention)
        except (TypeError, ValueError) as e:
            raise ValueError(f"attention: {e}") from None

    def parsed_add(self):
        """The pattern joined to each molecule's edges, or ``None``."""
        from ..patterns import parse_pattern

        if self.add is None:
            return None
        try:
            return parse_pattern(self.add)
        except (TypeError, ValueError) as e:
            raise ValueError(f"add: {e}") from None
