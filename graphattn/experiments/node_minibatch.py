"""Node classification in mini-batches and on several processes, with PyG's loaders.

A *global batch* is a subgraph from one of PyG's engines, the same in every process:

* ``random``: ``RandomNodeLoader`` partitions of ``batch_size`` nodes (their induced subgraph);
  the targets are the batch's nodes of the split being trained or scored;
* ``neighbor``: ``NeighborLoader`` around ``batch_size`` seed nodes of the split
  (``num_neighbors`` per hop; ``disjoint``: one subgraph per seed, which needs pyg-lib); the
  targets are the seeds;
* ``full``: the whole graph, the targets every node of the split (one batch).

The order of the batches comes from ``(seed, epoch)`` and the neighbour draws from
``(seed, epoch, batch)`` alone, so every process draws the same batches and a resumed run the
same as an uninterrupted one. Of P processes (``torchrun``), process r scores the r-th of P
equal shares of a batch's targets: on the ``hops``-hop subgraph around its share when the model
is local (its outputs there equal those on the whole batch), else on the whole batch. Its loss
is the sum over its share divided by the batch's target count, times P (DDP averages the
gradients), so the step is the one of a single process on the whole batch: ``batch_size`` on P
processes follows the trajectory of one process, up to float reduction order (exactly so
without dropout: each process draws its own dropout masks). Metrics are summed over the
processes before anyone decides anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ..train import all_reduce_sum, rank, world_size
from .node_config import NodeConfig
from .node_setup import Run, Task

__all__ = ["check_loader", "Batches", "train_epoch_fn", "score"]


def check_loader(config: NodeConfig) -> None:
    """Refuse, before anything runs, a loader whose optional extra is missing (naming the extra)."""
    b = config.batching
    if b.loader != "neighbor":
        return
    import torch_geometric.typing as pyg

    if b.disjoint and not pyg.WITH_PYG_LIB:
        raise ValueError("disjoint=True needs the optional extra pyg-lib (PyG samples disjoint subgraphs only "
                         "with pyg-lib), which is not installed; install it from PyG's wheel index for your "
                         "torch version, or leave disjoint off")
    if not (pyg.WITH_PYG_LIB or pyg.WITH_TORCH_SPARSE):
        raise ValueError("loader='neighbor' needs the optional extra 'neighbor' (pyg-lib or torch-sparse: "
                         "pip install 'graphattn[neighbor]', or PyG's wheels for your torch), which is not "
                         "installed; use loader='random' instead")


def _mix(*parts: int) -> int:
    """One 62-bit seed from several integers (seed, epoch, batch number)."""
    value = 0
    for p in parts:
        value = (value * 1_000_003 + p) % (1 << 62)
    return value


class Batches:
    """The global batches of one pass over ``splits`` of ``task``: an iterable of
    ``(subgraph Data, {split: local target ids})``; training batches are reshuffled by
    :meth:`set_epoch`, scoring batches are the same every pass."""

    def __init__(self, task: Task, config: NodeConfig, seed: int, splits: tuple[str, ...], *, train: bool):
        self.task, self.config, self.seed, self.splits, self.train = task, config, seed, splits, train
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[object, dict[str, Tensor]]]:
        data, b = self.task.data, self.config.batching
        order = torch.Generator().manual_seed(_mix(self.seed, self.epoch if self.train else -1))
        if b.loader == "full":
            yield data, {s: data[f"{s}_mask"].nonzero().view(-1) for s in self.splits}
            return
        if b.loader == "random":
            from torch_geometric.loader import RandomNodeLoader

            loader = RandomNodeLoader(data, num_parts=math.ceil(data.num_nodes / b.batch_size), shuffle=True,
                                      generator=order)
            for sub in loader:
                yield sub, {s: sub[f"{s}_mask"].nonzero().view(-1) for s in self.splits}
            return
        from torch_geometric.loader import NeighborLoader

        seeds = torch.zeros(data.num_nodes, dtype=torch.bool)
        for s in self.splits:
            seeds |= data[f"{s}_mask"]
        loader = NeighborLoader(data, num_neighbors=list(b.num_neighbors), input_nodes=seeds, batch_size=b.batch_size,
                                shuffle=self.train, disjoint=b.disjoint, generator=order)
        it = iter(loader)
        for i in range(len(loader)):
            with torch.random.fork_rng(devices=[]):  # the sampler draws from torch's global RNG
                torch.manual_seed(_mix(self.seed, self.epoch if self.train else -1, i))
                sub = next(it)
            first = torch.arange(sub.batch_size)
            if b.disjoint:
                sub, first = _contiguous(sub, first)
            yield sub, {s: first[sub[f"{s}_mask"][first]] for s in self.splits}


def _contiguous(sub, seeds: Tensor):
    """A disjoint sample with each seed's nodes contiguous (``batch`` sorted), and where the seeds went."""
    order = torch.argsort(sub.batch, stable=True)
    where = torch.empty_like(order)
    where[order] = torch.arange(order.numel())
    out = sub.__class__(edge_index=where[sub.edge_index], num_nodes=sub.num_nodes, batch=sub.batch[order])
    for key in ("x", "y", "pos", "train_mask", "val_mask", "test_mask"):
        if key in sub:
            out[key] = sub[key][order]
    return out, where[seeds]


def _share(run: Run, sub, targets: Tensor, config: NodeConfig):
    """This process's ``(x, model input, y, local targets)`` for its share of ``targets``."""
    device = config.run.device
    mine = torch.tensor_split(targets, world_size())[rank()]
    pos = sub.pos if "pos" in sub else None
    if world_size() > 1 and run.hops is not None and mine.numel():
        from torch_geometric.utils import k_hop_subgraph

        edges = run.attention_edges(sub.edge_index, sub.num_nodes)
        subset, edges, mapping, _ = k_hop_subgraph(mine, run.hops, edges, relabel_nodes=True, num_nodes=sub.num_nodes)
        graph = run.edge_input(edges, subset.numel(), pos[subset] if pos is not None else None)
        return sub.x[subset].to(device), graph, sub.y[subset].to(device), mapping.to(device)
    batch = sub.batch if config.batching.disjoint else None
    graph = run.batch_input(sub.edge_index, sub.num_nodes, batch, pos)
    return sub.x.to(device), graph, sub.y.to(device), mine.to(device)


def train_epoch_fn(run: Run, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Batches,
                   config: NodeConfig):
    """``train_epoch() -> mean loss over the targets``: one optimizer step per global batch."""
    p = world_size()

    def train_epoch() -> float:
        total, count = 0.0, 0
        for sub, targets in batches:
            n = int(targets["train"].numel())
            if n == 0:  # the same in every process: nobody steps
                continue
            x, graph, y, mine = _share(run, sub, targets["train"], config)
            optimizer.zero_grad()
            x = F.dropout(x, run.input_dropout, training=True) if run.input_dropout else x
            logits = model(x, graph)
            if mine.numel():
                summed = F.cross_entropy(logits[mine], y[mine], reduction="sum")
            else:  # nothing to score here, but DDP needs every process's backward
                summed = logits.sum() * 0.0
            (summed * (p / n)).backward()
            optimizer.step()
            total, count = total + float(summed.detach()), count + n
        (total,) = all_reduce_sum([total], config.run.device)  # count: the global batches', the same everywhere
        return total / max(count, 1)

    return train_epoch


@torch.no_grad()
def score(run: Run, batches: Batches, config: NodeConfig) -> dict[str, float]:
    """``{split}_acc`` and ``{split}_loss`` of ``run.model`` for every split of ``batches``,
    summed over all batches and processes (one forward per batch for all splits)."""
    run.model.eval()
    sums = torch.zeros(len(batches.splits), 3, dtype=torch.float64)  # correct, loss sum, count per split
    for sub, targets in batches:
        t = torch.cat([targets[s] for s in batches.splits])
        which = torch.cat([torch.full_like(targets[s], i) for i, s in enumerate(batches.splits)])
        if not t.numel():
            continue
        x, graph, y, mine = _share(run, sub, t, config)
        own = torch.tensor_split(which, world_size())[rank()]
        if not mine.numel():
            continue
        logits = run.model(x, graph)[mine]
        correct = (logits.argmax(-1) == y[mine]).double().cpu()
        loss = F.cross_entropy(logits, y[mine], reduction="none").double().cpu()
        for i in range(len(batches.splits)):
            m = own == i
            sums[i] += torch.stack([correct[m].sum(), loss[m].sum(), m.sum().double()])
    flat = all_reduce_sum(sums.view(-1).tolist(), config.run.device)
    out = {}
    for i, s in enumerate(batches.splits):
        correct, loss, count = flat[3 * i: 3 * i + 3]
        out[f"{s}_acc"], out[f"{s}_loss"] = correct / max(count, 1), loss / max(count, 1)
    return out
