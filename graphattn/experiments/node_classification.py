"""Node classification on Planetoid (Cora, CiteSeer, PubMed), graphattn against PyG's GCN and GAT.

One protocol for every model: the public Planetoid split with ``NormalizeFeatures``, full-batch
Adam, at most ``epochs`` epochs, early stopping on validation accuracy (``patience``; an epoch
that ties the best accuracy with a lower validation loss also counts, as in GAT's protocol), the
weights of the best validation epoch kept, test accuracy read once at the end, ``seeds`` seeds.

Models (``NodeConfig.models``), each a graphattn model of ``NodeConfig.architecture``
(:class:`~graphattn.models.GraphAttentionNetwork` by default, or
:class:`~graphattn.models.GraphTransformer`):

* ``graph``: attention along the graph's edges with self-loops,
  ``GraphEdges(edge_index) | SelfLoops()``;
* ``graph+virtual``: the same plus learned virtual global nodes, ``... | VirtualNodes(k)``;
* ``graph+expander``: the same plus a random expander, ``... | Expander(d, seed)``;
* ``full``: full attention over all nodes, ``Full()``, without attention dropout (so the fused
  kernel runs), with residual skips (attention network) or an input LayerNorm (transformer):
  near-uniform attention over N nodes would otherwise hand every node the same global mean;
* ``gcn``, ``gat``: PyG baselines with their published hyper-parameters
  (:mod:`graphattn.experiments.baselines`).

The graphattn models share ``lr``, ``weight_decay``, ``hidden``, ``heads``, ``layers`` and
``dropout`` (on the input features, the hidden layers or residual branches and the attention
weights, as GAT uses one rate everywhere); the baselines keep their own recipes. Input dropout is applied to the
non-zero entries of a sparse (CSR) feature matrix, for every model: zeros stay zero under
dropout, so this is ``F.dropout`` on the dense matrix, at ~1% of the cost on bag-of-words
features.

Example::

    from graphattn.experiments.node_classification import NodeConfig, run
    metrics = run(NodeConfig(dataset="Cora", models=("graph", "gat"), seeds=3))
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checks import check_int
from ..train import TrainConfig, fit, peak_memory_mb, reset_peak_memory
from .node_setup import Task, build

__all__ = ["NodeConfig", "run", "MODELS", "GRAPHATTN_MODELS", "DATASETS", "ENCODINGS", "ARCHITECTURES"]

GRAPHATTN_MODELS = ("graph", "graph+virtual", "graph+expander", "full")
BASELINE_MODELS = ("gcn", "gat")  # recipes in .baselines
MODELS = (*GRAPHATTN_MODELS, *BASELINE_MODELS)
#: ``full`` is left out by default: dense attention over all N nodes costs N^2 per head and
#: layer (7.3M scores on Cora), minutes per run on a laptop CPU; ask for it with ``models``.
DEFAULT_MODELS = tuple(m for m in MODELS if m != "full")
DATASETS = ("Cora", "CiteSeer", "PubMed")
#: ``attention``: GraphAttentionNetwork (GAT form, shared projections); ``transformer``:
#: GraphTransformer (pre-norm blocks with feed-forward layers, ``ffn_ratio=1``).
ARCHITECTURES = ("attention", "transformer")
ENCODINGS = ("none", "laplacian", "randomwalk")


@dataclass(frozen=True)
class NodeConfig:
    """A node-classification run: which data, which models, how they train, where results go.

    Args:
        dataset: ``"Cora"``, ``"CiteSeer"`` or ``"PubMed"`` (case-insensitive). (default: ``"Cora"``)
        models: names from :data:`MODELS`. (default: all but ``full``, see :data:`DEFAULT_MODELS`)
        architecture: the graphattn model, ``"attention"`` (:class:`GraphAttentionNetwork`) or
            ``"transformer"`` (:class:`GraphTransformer`). (default: ``"attention"``)
        seeds: runs per model, with seeds ``0 .. seeds - 1``. (default: ``10``)
        epochs: most epochs per run. (default: ``200``)
        patience: stop after this many epochs without a better validation accuracy; ``None``
            runs all ``epochs``. (default: ``50``)
        lr, weight_decay: Adam settings of the graphattn models. (default: ``0.005``, ``5e-4``)
        hidden, heads, layers: width ``H * C``, heads ``H`` and layers / blocks ``L`` of the
            graphattn models. (default: ``64``, ``8``, ``2``)
        dropout: graphattn dropout on input features, hidden layers (residual branches of the
            transformer) and attention weights. (default: ``0.6``)
        encoding: positional features added after the input projection: ``"none"``,
            ``"laplacian"`` (``encoding_dim`` Laplacian eigenvectors) or ``"randomwalk"``
            (``encoding_dim`` random-walk steps). (default: ``"none"``)
        encoding_dim: eigenvectors / walk length of ``encoding``. (default: ``8``)
        virtual_nodes: virtual nodes of ``graph+virtual``. (default: ``1``)
        expander_degree: in-degree of the expander of ``graph+expander`` (even); the expander
            is drawn with the run's seed. (default: ``4``)
        out: output folder; ``None`` means ``runs/node/<dataset>``. (default: ``None``)
        save: write a checkpoint per (model, seed) to ``<out>/checkpoints/`` after every epoch.
        resume: continue every run whose checkpoint exists (implies ``save``); the others start
            from scratch. Refused, before anything runs, if a checkpoint holds another experiment.
        root, mirror: data root and offline mirror for :func:`graphattn.datasets.load_planetoid`.
        progress: show progress bars (runs, and epochs within a run). (default: ``True``)
        threads: ``torch.set_num_threads`` for the run, ``None`` to leave it. (default: ``None``)
        workers: runs trained at once, each in its own process with one thread (``workers > 1``
            is CPU only; small full-batch graphs keep one core busy each, so ``workers`` = cores
            is the fastest setting). Results do not depend on it. ``None``: one per CPU core, at
            most 2, on CPU; 1 on CUDA. (default: ``None``)
        device: ``"cpu"`` or ``"cuda"``. (default: ``"cpu"``)
    """

    dataset: str = "Cora"
    models: tuple[str, ...] = DEFAULT_MODELS
    architecture: str = "attention"
    seeds: int = 10
    epochs: int = 200
    patience: int | None = 50
    lr: float = 0.005
    weight_decay: float = 5e-4
    hidden: int = 64
    heads: int = 8
    layers: int = 2
    dropout: float = 0.6
    encoding: str = "none"
    encoding_dim: int = 8
    virtual_nodes: int = 1
    expander_degree: int = 4
    out: str | None = None
    save: bool = False
    resume: bool = False
    root: str | None = None
    mirror: str | None = None
    progress: bool = True
    threads: int | None = None
    workers: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        canonical = {d.lower(): d for d in DATASETS}.get(str(self.dataset).lower())
        if canonical is None:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        object.__setattr__(self, "dataset", canonical)
        models = (self.models,) if isinstance(self.models, str) else tuple(self.models)
        unknown = [m for m in models if m not in MODELS]
        if not models or unknown or len(set(models)) != len(models):
            raise ValueError(f"models must be distinct names from {MODELS}, got {self.models!r}"
                             + (f" (unknown: {unknown})" if unknown else ""))
        object.__setattr__(self, "models", models)
        for name, low in (("seeds", 1), ("epochs", 1), ("hidden", 1), ("heads", 1), ("layers", 1),
                          ("encoding_dim", 1), ("virtual_nodes", 1), ("expander_degree", 2)):
            check_int(getattr(self, name), name, low)
        if self.patience is not None:
            check_int(self.patience, "patience", 1)
        if self.threads is not None:
            check_int(self.threads, "threads", 1)
        if self.workers is None:
            object.__setattr__(self, "workers", 1 if self.device == "cuda" else max(1, min(2, os.cpu_count() or 1)))
        check_int(self.workers, "workers", 1)
        if self.workers > 1 and self.device != "cpu":
            raise ValueError(f"workers > 1 needs device='cpu', got device={self.device!r}")
        if self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")
        if self.expander_degree % 2:
            raise ValueError(f"expander_degree must be even, got {self.expander_degree}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        for name in ("save", "resume", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path("runs") / "node" / self.dataset


# ------------------------------------------------------------------------------------ running


def _checkpoint(config: NodeConfig, name: str, seed: int) -> Path:
    return config.out_dir / "checkpoints" / f"{name.replace('+', '_')}-seed{seed}.pt"


def _preflight(config: NodeConfig, task: Task) -> None:
    """Everything that can be refused is refused here, before any run writes anything: an
    unwritable output folder, and checkpoints that belong to another experiment."""
    out = config.out_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe."):
            pass
    except OSError as err:
        raise ValueError(f"out={str(out)!r} is not a writable folder ({err})") from None
    if not config.resume:
        return
    found = 0
    for name in config.models:
        for seed in range(config.seeds):
            path = _checkpoint(config, name, seed)
            if not path.is_file():
                continue
            found += 1
            expected = json.loads(json.dumps(build(name, task, config, seed).experiment, sort_keys=True))
            stored = torch.load(path, map_location="cpu", weights_only=True).get("experiment")
            if stored != expected:
                differ = sorted(k for k in set(expected) | set(stored or {}) if (stored or {}).get(k) != expected.get(k))
                raise ValueError(f"checkpoint {str(path)!r} belongs to another experiment (differs in {differ}); "
                                 "use the same settings, another --out, or run without --resume; nothing was overwritten")
    if not found:
        raise ValueError(f"resume=True but there is no checkpoint under {str(out / 'checkpoints')!r}; "
                         "run with save=True first")


def _train_one(name: str, seed: int, task: Task, config: NodeConfig) -> dict[str, Any]:
    built = build(name, task, config, seed)
    model = built.model
    optimizer = torch.optim.Adam(model.parameters(), lr=built.lr, weight_decay=built.weight_decay)

    def train_epoch() -> float:
        optimizer.zero_grad()
        logits = built.forward(task.dropped_x(built.input_dropout))
        mask = task.masks["train"]
        loss = F.cross_entropy(logits[mask], task.y[mask])
        loss.backward()
        optimizer.step()
        return loss.item()

    def evaluate() -> dict[str, float]:
        logits = built.forward(task.x)
        mask = task.masks["val"]
        return {"val_acc": task.accuracy(logits, "val"), "val_loss": F.cross_entropy(logits[mask], task.y[mask]).item()}

    path = _checkpoint(config, name, seed)
    saving = config.save or config.resume
    train_config = TrainConfig(epochs=config.epochs, patience=config.patience, monitor="val_acc", mode="max",
                               tie_break="val_loss",
                               progress=config.progress, checkpoint=path if saving else None,
                               resume=config.resume and path.is_file())
    _reset_peak(config.device)
    history = fit(model, optimizer, train_epoch, evaluate, train_config, experiment=built.experiment)
    model.eval()
    with torch.no_grad():
        logits = built.forward(task.x)
    return {
        "model": name,
        "pattern": built.pattern,
        "seed": seed,
        "val_acc": task.accuracy(logits, "val"),
        "test_acc": task.accuracy(logits, "test"),
        "epochs": history.epochs_run,
        "best_epoch": history.best_epoch,
        "epoch_time_s": history.mean_epoch_time_s,
        "peak_mem_mb": peak_memory_mb(config.device),
        "encoding": "none" if name in BASELINE_MODELS else config.encoding,
    }


def _reset_peak(device: str) -> None:
    """Start a new memory peak: CUDA's allocator peak, or on Linux the process's peak resident
    set (``/proc/self/clear_refs``), so each run reports its own peak, not the process's."""
    reset_peak_memory(device)
    if device == "cpu":
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:  # not Linux: the peak stays the whole process's
            pass


_WORKER: dict[str, Any] = {}


def _worker_init(config: NodeConfig) -> None:
    torch.set_num_threads(1)
    _WORKER["config"] = config
    _WORKER["task"] = Task(config)


def _worker_run(job: tuple[str, int]) -> dict[str, Any]:
    return _train_one(*job, _WORKER["task"], _WORKER["config"])


def _train_parallel(jobs: list[tuple[str, int]], config: NodeConfig, bar) -> list[dict[str, Any]]:
    """Train ``jobs`` in ``config.workers`` fresh processes (spawned: no forked OpenMP state),
    one thread each, without per-epoch bars; results come back in ``jobs`` order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    quiet = NodeConfig(**{**{f.name: getattr(config, f.name) for f in fields(config)}, "progress": False})
    with ProcessPoolExecutor(config.workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(quiet,)) as pool:
        futures = {pool.submit(_worker_run, job): i for i, job in enumerate(jobs)}
        runs: list[Any] = [None] * len(jobs)
        for future in as_completed(futures):
            runs[futures[future]] = future.result()
            bar.update()
    return runs


def run(config: NodeConfig) -> dict[str, Any]:
    """Train every model of ``config`` with every seed; write ``results.json`` (one object per
    run), ``results.md`` (a table) and ``accuracy.png`` under ``config.out_dir``.

    Returns ``{"config", "runs", "summary", "wall_time_s", "out"}``: ``runs`` as in
    ``results.json``; ``summary`` one row per model (mean and std of test accuracy over seeds,
    mean validation accuracy, epochs and epoch time, largest peak memory).

    Raises:
        ValueError: the output folder is not writable; ``resume=True`` without checkpoints, or
            with a checkpoint of another experiment. Nothing is written in these cases.
    """
    if not isinstance(config, NodeConfig):
        raise TypeError(f"config must be a NodeConfig, got {type(config).__name__}")
    tic = time.perf_counter()
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        task = Task(config)
        _preflight(config, task)
        jobs = [(name, seed) for name in config.models for seed in range(config.seeds)]
        bar = tqdm(total=len(jobs), desc=f"{config.dataset} runs", disable=not config.progress, file=sys.stderr)
        if config.workers == 1:
            runs = []
            for name, seed in jobs:
                runs.append(_train_one(name, seed, task, config))
                bar.update()
        else:
            runs = _train_parallel(jobs, config, bar)
        bar.close()
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - tic
    summary = summarize(runs)
    from .node_report import write_outputs

    write_outputs(config, runs, summary, wall)
    return {"config": asdict(config), "runs": runs, "summary": summary, "wall_time_s": wall, "out": str(config.out_dir)}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model, in first-seen order: mean and sample std of test accuracy over seeds,
    mean validation accuracy, mean epochs run, mean epoch time, largest peak memory."""
    rows = []
    for name in dict.fromkeys(r["model"] for r in runs):
        group = [r for r in runs if r["model"] == name]
        test = [r["test_acc"] for r in group]
        rows.append({
            "model": name,
            "pattern": group[0]["pattern"],
            "runs": len(group),
            "test_acc_mean": statistics.fmean(test),
            "test_acc_std": statistics.stdev(test) if len(test) > 1 else 0.0,
            "val_acc_mean": statistics.fmean(r["val_acc"] for r in group),
            "epochs_mean": statistics.fmean(r["epochs"] for r in group),
            "epoch_time_s": statistics.fmean(r["epoch_time_s"] for r in group),
            "peak_mem_mb": max(r["peak_mem_mb"] for r in group),
        })
    return rows
