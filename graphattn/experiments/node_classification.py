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
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..train import (
    TrainConfig,
    agree,
    all_reduce_sum,
    fit,
    init_distributed,
    is_main,
    load_checkpoint,
    peak_memory_mb,
    rank,
    start_peak,
    world_size,
)
from .node_config import ARCHITECTURES, BASELINE_MODELS, GRAPHATTN_MODELS, MODELS, NodeConfig
from .node_config import NODE_DATASETS as DATASETS
from .node_setup import Run, Task, build
from .pieces import ENCODINGS

__all__ = ["NodeConfig", "run", "MODELS", "GRAPHATTN_MODELS", "DATASETS", "ENCODINGS", "ARCHITECTURES"]

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
    if not config.repeats.resume:
        return
    found = 0
    for name in config.models:
        for seed in range(config.repeats.seeds):
            path = _checkpoint(config, name, seed)
            if not path.is_file():
                continue
            found += 1
            expected = json.loads(json.dumps(build(name, task, config, seed).experiment, sort_keys=True))
            stored = load_checkpoint(path)["experiment"]  # verified: a corrupt file is refused by name
            if stored != expected:
                stored = stored or {}
                differ = sorted(k for k in set(expected) | set(stored) if stored.get(k) != expected.get(k))
                raise ValueError(f"checkpoint {str(path)!r} belongs to another experiment (differs in {differ}); "
                                 "use the same settings, another --out, or run without --resume; "
                                 "nothing was overwritten")
    if not found:
        raise ValueError(f"resume=True but there is no checkpoint under {str(out / 'checkpoints')!r}; "
                         "run with save=True first")


def _train_one(name: str, seed: int, task: Task, config: NodeConfig) -> dict[str, Any]:
    if config.batching.loader != "full" or world_size() > 1:
        return _train_batches(name, seed, task, config)
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

    start_peak(config.run.device)
    history = fit(model, optimizer, train_epoch, evaluate, _train_config(config, name, seed), experiment=built.experiment)
    model.eval()
    with torch.no_grad():
        logits = built.forward(task.x)
    return _result(name, seed, built, config, history,
                   {"val_acc": task.accuracy(logits, "val"), "test_acc": task.accuracy(logits, "test")})


def _train_batches(name: str, seed: int, task: Task, config: NodeConfig) -> dict[str, Any]:
    """One run on the global batches of ``config.batching`` (:mod:`.node_minibatch`), shared
    among the processes of ``torchrun`` (DistributedDataParallel) when there are several."""
    from .node_minibatch import Batches, score, train_epoch_fn

    built = build(name, task, config, seed)
    model = trained = built.model
    if world_size() > 1:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model)  # averages the gradients of the processes' shares
    optimizer = torch.optim.Adam(model.parameters(), lr=built.lr, weight_decay=built.weight_decay)
    batches = Batches(task, config, seed, ("train",), train=True)
    val = Batches(task, config, seed, ("val",), train=False)

    def evaluate() -> dict[str, float]:
        return score(built, val, config)

    start_peak(config.run.device)
    history = fit(model, optimizer, train_epoch_fn(built, trained, optimizer, batches, config), evaluate,
                  _train_config(config, name, seed), experiment=built.experiment, set_epoch=batches.set_epoch)
    final = score(built, Batches(task, config, seed, ("val", "test"), train=False), config)
    return _result(name, seed, built, config, history, {"val_acc": final["val_acc"], "test_acc": final["test_acc"]})


def _train_config(config: NodeConfig, name: str, seed: int) -> TrainConfig:
    path = _checkpoint(config, name, seed)
    return TrainConfig(epochs=config.training.epochs, patience=config.training.patience, monitor="val_acc",
                       mode="max", tie_break="val_loss", progress=config.run.progress,
                       checkpoint=path if config.repeats.save or config.repeats.resume else None,
                       resume=config.repeats.resume and path.is_file())


def _result(name: str, seed: int, built: Run, config: NodeConfig, history, accuracy: dict[str, float]) -> dict:
    peaks = [0.0] * world_size()  # every process's peak, gathered by a sum
    peaks[rank()] = peak_memory_mb(config.run.device)
    return {
        "model": name,
        "pattern": built.pattern,
        "seed": seed,
        **accuracy,
        "epochs": history.epochs_run,
        "best_epoch": history.best_epoch,
        "epoch_time_s": history.mean_epoch_time_s,
        "peak_mem_mb": max(all_reduce_sum(peaks, config.run.device)),
        "encoding": "none" if name in BASELINE_MODELS else config.positional.encoding,
        **({"loader": config.batching.loader, "batch_size": config.batching.batch_size, "processes": world_size()}
           if config.batching.loader != "full" or world_size() > 1 else {}),
    }


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

    quiet = config.with_options(progress=False)
    with ProcessPoolExecutor(config.processes.workers, mp_context=multiprocessing.get_context("spawn"),
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

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process joins one process group (gloo on
    CPU, nccl on CUDA, ``dist_timeout`` seconds for each collective) and trains every run on its
    share of each batch (:mod:`.node_minibatch`); only rank 0 checks and writes the output
    folder and the checkpoints. A refusal on rank 0 stops every process with its message.

    Raises:
        ValueError: the output folder is not writable; ``resume=True`` without checkpoints, or
            with a checkpoint of another experiment; the loader's optional extra is missing.
            Nothing is written in these cases.
    """
    if not isinstance(config, NodeConfig):
        raise TypeError(f"config must be a NodeConfig, got {type(config).__name__}")
    tic = time.perf_counter()
    threads = torch.get_num_threads()
    if config.processes.threads is not None:
        torch.set_num_threads(config.processes.threads)
    joined = world_size() == 1 and init_distributed(config.run.device, config.processes.dist_timeout)
    try:
        task = _prepare(config)
        jobs = [(name, seed) for name in config.models for seed in range(config.repeats.seeds)]
        bar = tqdm(total=len(jobs), desc=f"{config.dataset} runs", disable=not (config.run.progress and is_main()),
                   file=sys.stderr)
        if config.processes.workers == 1:
            runs = []
            for name, seed in jobs:
                runs.append(_train_one(name, seed, task, config))
                bar.update()
        else:
            runs = _train_parallel(jobs, config, bar)
        bar.close()
        wall = time.perf_counter() - tic
        summary = summarize(runs)
        me = rank()
        if is_main():
            from .node_report import write_outputs

            write_outputs(config, runs, summary, wall)
    finally:
        torch.set_num_threads(threads)
        if joined:
            import torch.distributed as dist

            dist.destroy_process_group()
    return {"config": config.options(), "runs": runs, "summary": summary, "wall_time_s": wall,
            "out": str(config.out_dir), "rank": me}


def _prepare(config: NodeConfig) -> Task:
    """The task, after the refusals of :func:`_preflight`. With several processes rank 0 goes
    first (it generates a synthetic graph's cache once), and its refusal stops every process."""
    from .node_minibatch import check_loader

    task, error = None, None
    if is_main():
        try:
            check_loader(config)
            task = Task(config)
            _preflight(config, task)
        except ValueError as err:  # DatasetUnavailableError is a RuntimeError and stops rank 0 alone
            error = err
    message = agree(None if error is None else str(error))
    if error is not None:
        raise error
    if message is not None:
        raise ValueError(message)
    return task if task is not None else Task(config)


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
