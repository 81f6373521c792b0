"""The seed protocol: every model of a task trained with every seed, each run the harness's one
loop, results as rows and a summary over seeds (:mod:`.results`).

What the protocol gives every task that uses it: the output folder claimed against other runs
(:class:`~graphattn.files.FolderLock`) and checked before anything runs; a checkpoint per
``(model, seed)`` after every epoch (``save``) and a bit-identical ``resume``, refused before
anything runs when a checkpoint holds another experiment; several runs at once in one-thread
processes (``workers``); ``torchrun`` (one process group, rank 0 checks and writes, a refusal on
rank 0 stops every rank with its message); each run's own peak memory; a progress bar over the
runs, and per run over epochs and batches.

What a task gives the protocol is a :class:`~.registry.SeedTask`: its data, the run a
model name builds (:class:`SeedRun`), where its batches come from, its objective, the extra
keys of its rows and how its results are written. Its config holds the pieces ``repeats``
(seeds, save, resume), ``processes``, ``training`` (epochs, patience) and ``run``, a ``models``
tuple and an ``out_dir``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from ..files import FolderLock
from ..train import (
    TrainConfig,
    agree,
    all_reduce_sum,
    init_distributed,
    is_main,
    load_checkpoint,
    peak_memory_mb,
    rank,
    start_peak,
    world_size,
)
from .harness import Optimization, evaluate, train_model
from .pieces import resolve_workers
from .results import OUTPUT_FILES, run_row, summarise

__all__ = ["SeedRun", "run_seeds", "train_one", "checkpoint_path"]


@dataclass
class SeedRun:
    """One model of one seed, ready to train: the module (``model(x, graph)``), its optimiser, what
    is done to its training batches (``augment``: input dropout, ...), the pattern it attends
    along (its text, for the rows), the JSON-able identity its checkpoint must match, and what
    this run adds to its row (``row``: a width fitted to a parameter budget, ...)."""

    model: nn.Module
    optimization: Optimization
    pattern: str
    identity: dict[str, Any]
    augment: Any = None
    row: dict[str, Any] = field(default_factory=dict)


class SeedTaskLike(Protocol):
    """What the protocol reads of a task (:class:`~.registry.SeedTask` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def objective(self) -> Any: ...

    def data(self, config) -> Any: ...
    def build(self, name: str, data, config, seed: int) -> SeedRun: ...
    def identity(self, name: str, data, config, seed: int) -> dict[str, Any]: ...
    def batches(self, config, data, run: SeedRun, seed: int, splits: tuple[str, ...], *, train: bool) -> Any: ...
    def row(self, config, name: str) -> dict[str, Any]: ...
    def check(self, config) -> None: ...
    def write_outputs(self, config, runs: list[dict], summary: list[dict], wall_time_s: float) -> None: ...


def checkpoint_path(config, name: str, seed: int) -> Path:
    return config.out_dir / "checkpoints" / f"{name.replace('+', '_')}-seed{seed}.pt"


def train_one(task: SeedTaskLike, config, data, name: str, seed: int) -> dict[str, Any]:
    """Train model ``name`` with ``seed`` and return its row."""
    run = task.build(name, data, config, seed)
    train = task.batches(config, data, run, seed, ("train",), train=True)
    val = task.batches(config, data, run, seed, ("val",), train=False)
    path = checkpoint_path(config, name, seed)
    repeats = config.repeats
    fit_config = TrainConfig(epochs=config.training.epochs, patience=config.training.patience,
                             progress=config.run.progress, checkpoint=path if repeats.save or repeats.resume else None,
                             resume=repeats.resume and path.is_file())
    start_peak(config.run.device)
    history = train_model(run.model, train, val, task.objective, run.optimization, fit_config,
                          experiment=run.identity, augment=run.augment)
    final = task.batches(config, data, run, seed, ("val", "test"), train=False)
    device = next((p.device for p in run.model.parameters()), torch.device("cpu"))
    scores = evaluate(run.model, final, task.objective.metrics, ("val", "test"), device=device)
    peaks = [0.0] * world_size()  # every process's peak, gathered by a sum
    peaks[rank()] = peak_memory_mb(config.run.device)
    parameters = sum(p.numel() for p in run.model.parameters())
    return run_row(name, run.pattern, seed, scores, task.objective.metrics, history,
                   max(all_reduce_sum(peaks, config.run.device)), parameters, **task.row(config, name), **run.row)


def _preflight(task: SeedTaskLike, config, data) -> None:
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
            path = checkpoint_path(config, name, seed)
            if not path.is_file():
                continue
            found += 1
            expected = json.loads(json.dumps(task.identity(name, data, config, seed), sort_keys=True))
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


def _prepare(task: SeedTaskLike, config, claims: ExitStack):
    """The data, after the refusals of :func:`_preflight`, the output folder claimed first (held
    until ``claims`` closes). With several processes rank 0 goes first (it writes a generated
    dataset's cache once), and its refusal stops every process."""
    data, error = None, None
    if is_main():
        try:
            task.check(config)
            claims.enter_context(FolderLock(config.out_dir, outputs=OUTPUT_FILES))
            data = task.data(config)
            _preflight(task, config, data)
        except ValueError as err:  # DatasetUnavailableError is a RuntimeError and stops rank 0 alone
            error = err
    message = agree(None if error is None else str(error))
    if error is not None:
        raise error
    if message is not None:
        raise ValueError(message)
    return data if data is not None else task.data(config)


_WORKER: dict[str, Any] = {}


def _worker_init(task: SeedTaskLike, config) -> None:
    torch.set_num_threads(1)
    _WORKER.update(task=task, config=config, data=task.data(config))


def _worker_run(job: tuple[str, int]) -> dict[str, Any]:
    return train_one(_WORKER["task"], _WORKER["config"], _WORKER["data"], *job)


def _train_parallel(task: SeedTaskLike, jobs: list[tuple[str, int]], config, workers: int, bar) -> list[dict[str, Any]]:
    """Train ``jobs`` in ``workers`` fresh processes (spawned: no forked OpenMP state), one
    thread each, without per-epoch bars; results come back in ``jobs`` order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    quiet = config.with_options(progress=False)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(task, quiet)) as pool:
        futures = {pool.submit(_worker_run, job): i for i, job in enumerate(jobs)}
        runs: list[Any] = [None] * len(jobs)
        for future in as_completed(futures):
            runs[futures[future]] = future.result()
            bar.update()
    return runs


def run_seeds(task: SeedTaskLike, config) -> dict[str, Any]:
    """Train every model of ``config.models`` with seeds ``0 .. seeds - 1``; the task writes its
    outputs under ``config.out_dir`` (rank 0). Returns ``{"config", "runs", "summary",
    "wall_time_s", "out", "rank"}``: ``runs`` one row per run, ``summary`` one per model.

    Raises:
        ValueError: the output folder is held by another run or not writable; ``resume=True``
            without checkpoints, or with a checkpoint of another experiment; what the task's
            ``check`` refuses. Nothing is written in these cases.
    """
    tic = time.perf_counter()
    threads = torch.get_num_threads()
    if config.processes.threads is not None:
        torch.set_num_threads(config.processes.threads)
    joined = world_size() == 1 and init_distributed(config.run.device, config.processes.dist_timeout)
    try:
        with ExitStack() as claims:
            data = _prepare(task, config, claims)
            jobs = [(name, seed) for name in config.models for seed in range(config.repeats.seeds)]
            bar = tqdm(total=len(jobs), desc=f"{getattr(config, 'dataset', task.name)} runs", file=sys.stderr,
                       disable=not (config.run.progress and is_main()))
            workers = resolve_workers(config.processes, config.run.device)
            if workers == 1:
                runs = []
                for name, seed in jobs:
                    bar.set_postfix_str(f"{name}, seed {seed}")
                    runs.append(train_one(task, config, data, name, seed))
                    bar.update()
            else:
                runs = _train_parallel(task, jobs, config, workers, bar)
            bar.close()
            wall = time.perf_counter() - tic
            summary = summarise(runs, task.objective.metrics)
            me = rank()  # before the group is left: then every process is rank 0
            if is_main():
                task.write_outputs(config, runs, summary, wall)
    finally:
        torch.set_num_threads(threads)
        if joined:
            import torch.distributed as dist

            dist.destroy_process_group()
    return {"config": config.options(), "runs": runs, "summary": summary, "wall_time_s": wall,
            "out": str(config.out_dir), "rank": me}

