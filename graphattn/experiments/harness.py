"""The one training loop of every experiment: batches in, a trained model and its history out.

Every task hands the loop the same things: a model called as ``model(x, graph)``, sources of
:class:`Batch` for training and validation, an :class:`~.metrics.Objective` (loss, metrics, the
metric that picks the epoch) and an :class:`Optimization`. One training step is the same for
every task::

    batch = augment(batch)            # training only (input dropout, word dropout, shifts, ...)
    out = model(batch.x, batch.graph)
    loss(out[rows], batch.y[rows])    # rows: the batch's training targets (None: every row)

The loop moves each batch to the model's device after ``augment`` (augmenters draw on the CPU).
A batch shared among the processes of ``torchrun`` (``counts`` set: the targets of the global
batch) contributes its share's summed loss times ``P / n``, so the step equals one process's on
the whole batch; a batch of one process contributes its mean loss. Under ``torchrun`` the model
is wrapped in ``DistributedDataParallel``; :func:`graphattn.train.fit` runs the epochs (early
stopping, checkpoints, exact resume).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..train import History, TrainConfig, all_reduce_sum, fit, is_main, world_size
from ..train.distributed import gather_objects
from .metrics import Loss, Metric, Objective

__all__ = ["Batch", "Batches", "ExampleBatches", "SplitExampleBatches", "BUCKET_POOL", "Optimization", "train_model",
           "train_epoch", "evaluate", "predict", "drop_input", "InputDropout", "lr_factor", "EVAL_BATCH"]

EVAL_BATCH = 256  # examples per batch when scoring: no gradients, so larger than in training


@dataclass
class Batch:
    """One step's input.

    Args:
        x: features of the rows (dense, sparse CSR, or token ids).
        graph: what the model takes beside ``x`` (a PyG ``Data`` / ``Batch``, an ``AttentionGraph``).
        y: labels of the model's output rows (nodes, or one per graph / sequence).
        targets: split name -> the output rows this process scores for it (an index or a boolean
            mask); ``None``: every row, for every split.
        counts: split name -> targets of the global batch over every process; ``None``: the batch
            is this process's alone.
    """

    x: Tensor
    graph: Any
    y: Tensor
    targets: Mapping[str, Tensor] | None = None
    counts: Mapping[str, int] | None = None

    def rows(self, split: str) -> Tensor | None:
        return None if self.targets is None else self.targets[split]

    def count(self, split: str) -> int:
        """How many targets of ``split`` the global batch holds."""
        if self.counts is not None:
            return self.counts[split]
        rows = self.rows(split)
        if rows is None:
            return int(self.y.size(0))
        return int(rows.sum()) if rows.dtype == torch.bool else int(rows.numel())

    def to(self, device: torch.device) -> Batch:
        targets = None if self.targets is None else {k: v.to(device) for k, v in self.targets.items()}
        return replace(self, x=self.x.to(device), graph=self.graph.to(device), y=self.y.to(device), targets=targets)


class Batches(Protocol):
    """A source of batches: iterated once per epoch. Optional: ``set_epoch(epoch)`` (called before
    each training epoch, so the order can come from the epoch number and a resumed run sees the
    batches of an uninterrupted one), ``__len__`` (batches per epoch: needed by a learning-rate
    schedule, shown in the progress bar), and ``whole = True`` for one batch that is the whole
    data (its splits are then scored by each metric's ``value`` on one forward)."""

    def __iter__(self) -> Iterator[Batch]: ...


class ExampleBatches:
    """Batches of whole examples (graphs, sequences) from a list of PyG ``Data``: PyG's
    ``DataLoader`` lays them block-diagonally; ``x`` and ``y`` are the batch's, ``graph`` the
    collated ``Batch`` itself. ``shuffle`` draws the order from a generator seeded by ``seed``,
    which runs on from epoch to epoch, or with ``by_epoch`` is seeded again from ``(seed,
    epoch)`` before each epoch (:meth:`set_epoch`), so a resumed run draws the batches of an
    uninterrupted one.

    ``bucket`` groups examples of similar size (number of nodes), as sequence models bucket by
    length: the shuffled order is cut into pools of ``BUCKET_POOL`` batches, each pool sorted by
    size and cut into batches, and the batches of the epoch shuffled; without ``shuffle`` the
    examples are sorted by size. Attention over each graph's nodes (``Full()`` on a batch) pads
    every graph to the batch's largest, so this cuts its cost several times on graphs of very
    different sizes (Peptides-func: 9 to 435 atoms)."""

    def __init__(self, examples: Sequence, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 by_epoch: bool = False, bucket: bool = False):
        from torch_geometric.loader import DataLoader

        self.generator = torch.Generator().manual_seed(seed) if shuffle else None
        self.seed, self.by_epoch = seed, by_epoch
        if bucket:
            sampler = _Buckets([int(e.num_nodes) for e in examples], batch_size, self.generator)
            self.loader = DataLoader(examples, batch_sampler=sampler)
        else:
            self.loader = DataLoader(examples, batch_size=batch_size, shuffle=shuffle, generator=self.generator)

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        if self.by_epoch and self.generator is not None:
            self.generator.manual_seed((self.seed * 1_000_003 + epoch) % (1 << 62))

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.loader:
            yield Batch(batch.x, batch, batch.y)


#: Batches per pool that :class:`ExampleBatches` sorts by size when bucketing.
BUCKET_POOL = 50


class _Buckets:
    """Index batches of examples of similar ``sizes`` (see :class:`ExampleBatches`)."""

    def __init__(self, sizes: Sequence[int], batch_size: int, generator: torch.Generator | None):
        self.sizes, self.batch_size, self.generator = torch.tensor(sizes), batch_size, generator

    def __len__(self) -> int:
        return math.ceil(len(self.sizes) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        n, b = len(self.sizes), self.batch_size
        if self.generator is None:
            order = torch.argsort(self.sizes, stable=True)
            yield from (order[i:i + b].tolist() for i in range(0, n, b))
            return
        order = torch.randperm(n, generator=self.generator)
        batches = []
        for start in range(0, n, b * BUCKET_POOL):
            pool = order[start:start + b * BUCKET_POOL]
            pool = pool[torch.argsort(self.sizes[pool], stable=True)]
            batches += [pool[i:i + b].tolist() for i in range(0, len(pool), b)]
        for i in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[i]


class SplitExampleBatches:
    """Batches of whole examples of several splits, to score them in one pass: each batch holds
    examples of one split (:class:`ExampleBatches` of ``batch_size``, sorted by size with
    ``bucket``: the scores do not depend on the order), and its rows are that split's targets
    only, so ``val_*`` and ``test_*`` are each scored on their own examples."""

    def __init__(self, parts: Mapping[str, Sequence], batch_size: int, *, bucket: bool = False):
        self.parts = {split: ExampleBatches(examples, batch_size, bucket=bucket) for split, examples in parts.items()}

    def __len__(self) -> int:
        return sum(len(batches) for batches in self.parts.values())

    def __iter__(self) -> Iterator[Batch]:
        for split, batches in self.parts.items():
            for batch in batches:
                every = torch.arange(batch.y.size(0))
                yield replace(batch, targets={s: every if s == split else every[:0] for s in self.parts})


def drop_input(x: Tensor, p: float) -> Tensor:
    """``F.dropout(x, p)`` in training; on a sparse CSR matrix (bag-of-words features) drawn on
    its stored entries only, which is the same distribution (a zero stays zero) at ~1% of the
    cost on Planetoid's features."""
    if p == 0:
        return x
    if x.layout == torch.strided:
        return F.dropout(x, p)
    if x.layout != torch.sparse_csr:
        raise ValueError(f"x must be dense or sparse CSR for input dropout, got layout {x.layout}")
    values = x.values()
    keep = torch.rand(values.shape, device=values.device) >= p
    with warnings.catch_warnings():  # "sparse CSR support is in beta": building one is stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values * keep / (1 - p), x.shape,
                                       check_invariants=False)


@dataclass(frozen=True)
class InputDropout:
    """The augmentation that drops input features of training batches (:func:`drop_input`)."""

    p: float

    def __call__(self, batch: Batch) -> Batch:
        return replace(batch, x=drop_input(batch.x, self.p)) if self.p else batch


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """The multiple of the base learning rate at optimiser step ``step`` (0-based): linear
    warmup ``(step + 1) / warmup_steps``, then 1 (``constant``) or the half cosine
    ``(1 + cos(pi * p)) / 2`` with ``p`` the share of the post-warmup steps done (``cosine``)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    done = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


@dataclass(frozen=True)
class Optimization:
    """The optimiser and its schedule.

    Args:
        optimizer: ``"adam"`` or ``"adamw"``.
        lr, weight_decay: the optimiser's.
        clip: gradients clipped to this norm before each step, or ``None``.
        warmup: epochs of linear warmup; ``schedule``: ``"constant"`` or ``"cosine"`` after it
            (:func:`lr_factor`, stepped per batch).
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    clip: float | None = None
    warmup: int = 0
    schedule: str = "constant"

    def build(self, model: nn.Module) -> torch.optim.Optimizer:
        kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[self.optimizer]
        return kind(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def scheduler(self, optimizer: torch.optim.Optimizer, batches: Batches, epochs: int):
        """The per-batch schedule, or ``None`` for a constant rate without warmup."""
        if not self.warmup and self.schedule == "constant":
            return None
        steps = len(batches)  # type: ignore[arg-type]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: lr_factor(
            t, self.warmup * steps, epochs * steps, self.schedule))


def _shown(batches: Iterable[Batch], desc: str, progress: bool) -> Iterable[Batch]:
    """``batches`` with a progress bar (batches done, rate, ETA) when there are several."""
    total = len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]
    if not progress or not is_main() or total == 1:
        return batches
    return tqdm(batches, total=total, desc=desc, leave=False, file=sys.stderr)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Batches, loss: Loss, *,
                device: torch.device, scheduler=None, clip: float | None = None,
                augment: Callable[[Batch], Batch] | None = None, progress: bool = False) -> float:
    """One pass over ``batches`` with one optimiser step per batch; returns the mean training
    loss per target (summed over the processes)."""
    total, count = 0.0, 0
    for batch in _shown(batches, "batches", progress):
        n = batch.count("train")
        if n == 0:  # the same in every process: nobody steps
            continue
        if augment is not None:
            batch = augment(batch)
        batch = batch.to(device)
        optimizer.zero_grad()
        out = model(batch.x, batch.graph)
        rows = batch.rows("train")
        if batch.counts is None:
            value = loss(out, batch.y) if rows is None else loss(out[rows], batch.y[rows])
            value.backward()
            done = value.item() * n
        else:  # this process's share of a global batch
            assert rows is not None, "a share of a global batch names its targets"
            if rows.numel():
                summed = loss(out[rows], batch.y[rows], reduction="sum")
            else:  # nothing to score here, but DDP needs every process's backward
                summed = out.sum() * 0.0
            (summed * (world_size() / n)).backward()
            done = float(summed.detach())
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total, count = total + done, count + n
    (total,) = all_reduce_sum([total], device)  # count: the global batches', the same everywhere
    return total / max(count, 1)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Batches, metrics: Sequence[Metric], splits: Sequence[str] = ("val",), *,
             device: torch.device, progress: bool = False) -> dict[str, float]:
    """``{f"{split}_{metric.name}": value}`` of ``model`` over ``batches``, in eval mode.

    A ``whole`` source (one batch on one process) is scored by each metric's ``value`` on its one
    forward; otherwise each metric's float64 ``sums`` add up over batches and processes, and a
    metric without sums scores the gathered predictions of every batch and process."""
    model.eval()
    if getattr(batches, "whole", False) and world_size() == 1:
        (batch,) = list(batches)
        batch = batch.to(device)
        out = model(batch.x, batch.graph)
        return {f"{split}_{m.name}": m.value(*_rows(out, batch, split)) for split in splits for m in metrics}
    sums = torch.zeros(len(splits), len(metrics), 2, dtype=torch.float64)
    gathered: dict[tuple[int, int], list[tuple[Tensor, Tensor]]] = {}
    for batch in _shown(batches, "scoring", progress):
        if all(_none_of(batch, s) for s in splits):
            continue
        batch = batch.to(device)
        out = model(batch.x, batch.graph)
        for i, split in enumerate(splits):
            o, y = _rows(out, batch, split)
            if not y.size(0):
                continue
            for j, metric in enumerate(metrics):
                if metric.additive:
                    sums[i, j] += torch.tensor(metric.sums(o, y), dtype=torch.float64)
                else:
                    gathered.setdefault((i, j), []).append((o.cpu(), y.cpu()))
    flat = all_reduce_sum(sums.view(-1).tolist(), device)
    sums = torch.tensor(flat, dtype=torch.float64).view(len(splits), len(metrics), 2)
    out_metrics = {}
    for i, split in enumerate(splits):
        for j, metric in enumerate(metrics):
            if not metric.additive:
                parts = [p for rank_parts in gather_objects(gathered.get((i, j), [])) for p in rank_parts]
                value = metric.value(torch.cat([o for o, _ in parts]), torch.cat([y for _, y in parts]))
            else:
                value = float(sums[i, j, 0] / max(float(sums[i, j, 1]), 1.0))
            out_metrics[f"{split}_{metric.name}"] = value
    return out_metrics


def _none_of(batch: Batch, split: str) -> bool:
    """Whether ``batch`` holds no target of ``split`` (``None`` targets: every row is one)."""
    rows = batch.rows(split)
    return rows is not None and not rows.numel()


def _rows(out: Tensor, batch: Batch, split: str) -> tuple[Tensor, Tensor]:
    rows = batch.rows(split)
    return (out, batch.y) if rows is None else (out[rows], batch.y[rows])


@torch.no_grad()
def predict(model: nn.Module, batches: Batches, *, device: torch.device) -> Tensor:
    """The outputs of ``model`` (eval mode) on every batch, concatenated in order."""
    model.eval()
    return torch.cat([model(b.x, b.graph) for b in (batch.to(device) for batch in batches)])


def train_model(model: nn.Module, train: Batches, val: Batches, objective: Objective, optimization: Optimization,
                config: TrainConfig, *, experiment: Mapping[str, Any] | None = None,
                augment: Callable[[Batch], Batch] | None = None) -> History:
    """Train ``model`` on ``train``, pick the epoch by ``objective.monitor`` on ``val``, and
    leave the best weights in it (:func:`graphattn.train.fit` runs the epochs; ``config`` says
    how many, the patience, the checkpoint). Returns the history."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    trained = model
    if world_size() > 1:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model)  # averages the gradients of the processes' shares
    optimizer = optimization.build(model)
    scheduler = optimization.scheduler(optimizer, train, config.epochs)
    config = replace(config, monitor=f"val_{objective.monitor}", mode="max" if objective.main.higher_is_better
                     else "min", tie_break=None if objective.tie_break is None else f"val_{objective.tie_break}")

    def one_epoch() -> float:
        return train_epoch(trained, optimizer, train, objective.loss, device=device, scheduler=scheduler,
                           clip=optimization.clip, augment=augment, progress=config.progress)

    def validate() -> dict[str, float]:
        return evaluate(model, val, objective.metrics, ("val",), device=device, progress=config.progress)

    return fit(model, optimizer, one_epoch, validate, config, experiment=experiment,
               set_epoch=getattr(train, "set_epoch", None))
