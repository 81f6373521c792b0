"""Where node classification's batches come from: the whole graph in one step
(:class:`WholeGraph`), or subgraphs from PyG's loaders shared among processes (:class:`NodeBatches`).

A *global batch* is a subgraph from one of PyG's engines, the same in every process
(:class:`Subgraphs`):

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
is local (its outputs there equal those on the whole batch), else on the whole batch. The
harness weighs its share's loss so that the step is the one of a single process on the whole
batch (:func:`~.harness.train_epoch`): ``batch_size`` on P processes follows the trajectory of
one process, up to float reduction order (exactly so without dropout: each process draws its
own dropout masks). Metrics are summed over the processes before anyone decides anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..train import rank, world_size
from .harness import Batch
from .node_config import NodeConfig
from .node_data import NodeData
from .options import resolved

__all__ = ["check_loader", "Subgraphs", "NodeBatches", "WholeGraph"]


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


class WholeGraph:
    """The whole graph as one batch on one process: its features, the graph object of the run
    (:attr:`NodeData.graph`), the labels, and each split's mask as its targets."""

    whole = True

    def __init__(self, data: NodeData, splits: tuple[str, ...]):
        masks = data.masks
        assert masks is not None, "a split drawn per seed: pass the data of the seed (NodeData.for_seed)"
        self.batch = Batch(data.x, data.graph, data.y, {s: masks[s] for s in splits})

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Batch]:
        yield self.batch


def _mix(*parts: int) -> int:
    """One 62-bit seed from several integers (seed, epoch, batch number)."""
    value = 0
    for p in parts:
        value = (value * 1_000_003 + p) % (1 << 62)
    return value


class Subgraphs:
    """The global batches of one pass over ``splits``: an iterable of ``(subgraph Data, {split:
    local target ids})``; training batches are reshuffled by :meth:`set_epoch`, scoring batches
    are the same every pass."""

    def __init__(self, data: NodeData, config: NodeConfig, seed: int, splits: tuple[str, ...], *, train: bool):
        self.nodes, self.config, self.seed, self.splits, self.train = data, config, seed, splits, train
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        data, b = self.nodes.data, self.config.batching
        if b.loader == "full":
            return 1
        size = resolved(b.batch_size, "batch_size")  # unset only for the whole graph
        if b.loader == "random":
            return math.ceil(data.num_nodes / size)
        seeds = sum(int(data[f"{s}_mask"].sum()) for s in self.splits)  # the splits are disjoint
        return math.ceil(seeds / size)

    def __iter__(self) -> Iterator[tuple[Data, dict[str, Tensor]]]:
        data, b = self.nodes.data, self.config.batching
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
        hops = list(resolved(b.num_neighbors, "num_neighbors"))
        loader = NeighborLoader(data, num_neighbors=hops, input_nodes=seeds, batch_size=b.batch_size,
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


class NodeBatches:
    """The harness's batches of :class:`Subgraphs`, each cut to this process's share of its
    targets (see the module docstring); ``model`` says how far its nodes read (``hops``) and
    which edges (``attention_edges``, ``on_edges``)."""

    def __init__(self, data: NodeData, config: NodeConfig, seed: int, splits: tuple[str, ...], *, train: bool,
                 model):
        self.subgraphs = Subgraphs(data, config, seed, splits, train=train)
        self.config, self.model = config, model

    def set_epoch(self, epoch: int) -> None:
        self.subgraphs.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.subgraphs)

    def __iter__(self) -> Iterator[Batch]:
        splits = self.subgraphs.splits
        for sub, targets in self.subgraphs:
            t = torch.cat([targets[s] for s in splits])
            if not t.numel():  # the same in every process: nobody steps or scores
                continue
            which = torch.cat([torch.full_like(targets[s], i) for i, s in enumerate(splits)])
            x, graph, y, mine = self._share(sub, t)
            own = torch.tensor_split(which, world_size())[rank()]
            yield Batch(x, graph, y, {s: mine[own == i] for i, s in enumerate(splits)},
                        {s: int(targets[s].numel()) for s in splits})

    def _share(self, sub: Data, targets: Tensor):
        """This process's ``(x, graph, y, local targets)`` for its share of ``targets``."""
        device = torch.device(self.config.run.device)
        mine = torch.tensor_split(targets, world_size())[rank()]
        pos = sub.pos if "pos" in sub else None
        hops = getattr(self.model, "hops", None)
        if world_size() > 1 and hops is not None and mine.numel():
            from torch_geometric.utils import k_hop_subgraph

            edges = self.model.attention_edges(Data(edge_index=sub.edge_index, num_nodes=sub.num_nodes))
            subset, edges, mapping, _ = k_hop_subgraph(mine, hops, edges, relabel_nodes=True, num_nodes=sub.num_nodes)
            graph = self.model.on_edges(edges, subset.numel(), pos[subset] if pos is not None else None, device)
            return sub.x[subset].to(device), graph, sub.y[subset].to(device), mapping.to(device)
        graph = Data(edge_index=sub.edge_index, num_nodes=sub.num_nodes)
        if pos is not None:
            graph.pos = pos
        if self.config.batching.disjoint:
            graph.batch = sub.batch
        return sub.x.to(device), graph, sub.y.to(device), mine.to(device)
