"""What a node-classification run trains on and with: the dataset on the device (:class:`Task`)
and the model each name of :data:`~graphattn.experiments.config.MODELS` builds (:func:`build`),
on the whole graph or on the subgraph of a mini-batch (:meth:`Run.batch_input`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from ..train import set_seed
from .baselines import BASELINES
from .node_config import PLANETOID_DATASETS, NodeConfig

__all__ = ["Task", "Run", "build", "pattern_for", "encoding_module"]


# ------------------------------------------------------------------------------------- data


class Task:
    """The dataset on the device: features (sparse CSR for Planetoid's bag-of-words, dense
    otherwise), labels, split masks, edges and positions; ``data`` keeps the whole graph on the
    CPU (dense features, positions as ``pos``) for the mini-batch loaders."""

    def __init__(self, config: NodeConfig):
        import torch_geometric.transforms as T

        from ..datasets import get, load_planetoid

        if config.dataset in PLANETOID_DATASETS:
            dataset = load_planetoid(config.dataset, root=config.data.root, mirror=config.data.mirror,
                                     transform=T.NormalizeFeatures(), progress=config.run.progress)
            data, num_classes = dataset[0], dataset.num_classes
        else:  # SBM-*, ogbn-arxiv: one Data from the catalogue's loader
            data = get(config.dataset).loader(root=config.data.root, mirror=config.data.mirror, progress=config.run.progress)
            num_classes = int(data.y.max()) + 1
        encoding = config.positional.encoding
        if encoding != "none":
            options = {"is_undirected": True} if encoding == "laplacian" else {}
            data = encoding_module(config, 1).transform(**options)(data)
            data.pos = data[encoding_module(config, 1).attr_name]
            del data[encoding_module(config, 1).attr_name]
        self.data = data
        device = torch.device(config.run.device)
        self.num_nodes, self.num_features, self.num_classes = data.num_nodes, data.num_features, num_classes
        self.y = data.y.to(device)
        self.masks = {split: getattr(data, f"{split}_mask").to(device) for split in ("train", "val", "test")}
        self.edge_index = data.edge_index.to(device)
        self.pos = data.pos.to(device) if encoding != "none" else None
        if config.dataset not in PLANETOID_DATASETS:  # dense features
            self.x = data.x.to(device)
            return
        with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul with it is stable
            warnings.simplefilter("ignore", UserWarning)
            self.x = data.x.to_sparse_csr().to(device)  # (N, F), ~1% non-zero
        self._crow, self._col, self._values = self.x.crow_indices(), self.x.col_indices(), self.x.values()

    def dropped_x(self, p: float) -> Tensor:
        """``F.dropout(x, p)``; on sparse features computed on the non-zero entries only (zeros
        stay zero either way)."""
        if p == 0:
            return self.x
        if self.x.layout == torch.strided:
            return torch.nn.functional.dropout(self.x, p)
        keep = torch.rand(self._values.shape, device=self._values.device) >= p
        values = self._values * keep / (1 - p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self._crow, self._col, values, self.x.shape, check_invariants=False)

    def accuracy(self, logits: Tensor, split: str) -> float:
        mask = self.masks[split]
        return float((logits[mask].argmax(dim=-1) == self.y[mask]).float().mean())


def encoding_module(config: NodeConfig, width: int) -> nn.Module:
    from ..nn.encodings import LaplacianEncoding, RandomWalkEncoding

    if config.positional.encoding == "laplacian":
        return LaplacianEncoding(config.positional.encoding_dim, width)
    return RandomWalkEncoding(config.positional.encoding_dim, width)


# ----------------------------------------------------------------------------------- models


@dataclass
class Run:
    """One model ready to train: the module, its forward on given features, optimizer settings
    and the JSON-able identity that its checkpoint must match."""

    model: nn.Module
    forward: Callable[[Tensor], Tensor]
    input_dropout: float
    lr: float
    weight_decay: float
    pattern: str
    experiment: dict[str, Any]
    #: ``batch_input(edge_index, num_nodes, batch, pos)``: what the model takes beside the
    #: features of a subgraph (its edge_index for the baselines, an AttentionGraph otherwise);
    #: ``batch`` ([N] seed of every node, disjoint sampling) lays the pattern on each seed's nodes.
    batch_input: Callable[..., Any] = None  # type: ignore[assignment]
    #: layers through which a node's output depends on others (None: on every node of its batch,
    #: as with global attention); a process can then score a target on its ``hops``-hop subgraph.
    hops: int | None = None
    #: ``attention_edges(edge_index, num_nodes)``: the explicit edges the model attends along on
    #: a subgraph (local models only), and ``edge_input(edges, num_nodes, pos)`` their model input.
    attention_edges: Callable[..., Tensor] | None = None
    edge_input: Callable[..., Any] | None = None


def pattern_for(name: str, edge_index: Tensor, num_nodes: int, config: NodeConfig, seed: int):
    """The attention pattern of model ``name`` on a graph (or a batch's subgraph) of ``num_nodes``:
    the graph's edges and self-loops, plus global attention among its nodes for ``graph+virtual``
    (virtual nodes), ``graph+bigbird`` (``bigbird(1, [0], 3)``: a window over the batch order,
    its first node global, 3 random keys per query) and ``full``, or an expander."""
    from ..patterns import Expander, Full, GraphEdges, SelfLoops, VirtualNodes, bigbird

    if name == "full":
        return Full()
    graph = GraphEdges(edge_index.cpu(), num_nodes) | SelfLoops()
    if name == "graph+virtual":
        return graph | VirtualNodes(config.virtual_nodes)
    if name == "graph+expander":
        return graph | Expander(config.expander_degree, seed=seed)
    if name == "graph+bigbird":
        return graph | bigbird(1, (0,), min(3, num_nodes), seed=seed)
    return graph


def _laid(name: str, edge_index: Tensor, num_nodes: int, batch: Tensor | None, config: NodeConfig, seed: int):
    """What ``AttentionGraph.build`` lays on a subgraph: the pattern on all its nodes, or with a
    sorted ``batch`` (disjoint sampling: each seed's nodes contiguous) one pattern per seed on
    the seed's own nodes and edges, so global attention stays inside each seed's subgraph."""
    if batch is None:
        return pattern_for(name, edge_index, num_nodes, config, seed)
    sizes = torch.bincount(batch)
    starts = torch.cumsum(sizes, 0) - sizes
    owner = batch[edge_index[1]]
    return [pattern_for(name, edge_index[:, owner == k] - starts[k], int(sizes[k]), config, seed)
            for k in range(sizes.numel())]


def build(name: str, task: Task, config: NodeConfig, seed: int) -> Run:
    """The model ``name`` initialised with ``seed`` (the global RNG is seeded here)."""
    set_seed(seed)
    identity = {"task": "node", "dataset": config.dataset, "model": name, "seed": seed}
    batching = config.batching
    if batching.loader != "full":  # another way of training: another experiment for --resume
        identity.update(loader=batching.loader, batch_size=batching.batch_size,
                        num_neighbors=batching.num_neighbors, disjoint=batching.disjoint)
    device = config.run.device
    if name in BASELINES:
        recipe = BASELINES[name]
        # A cached GCN normalisation belongs to one graph: mini-batches bring a new one each step.
        model = recipe.build(name, task.num_features, task.num_classes,
                             cached=batching.loader == "full").to(device)
        edge_index = task.edge_index
        pattern = repr(pattern_for("graph", task.edge_index, task.num_nodes, config, seed))  # they add self-loops

        def edges(ei: Tensor, n: int) -> Tensor:
            return ei

        def edge_input(ei: Tensor, n: int, pos: Tensor | None) -> Data:
            return Data(edge_index=ei.to(device), num_nodes=n)

        whole = Data(edge_index=edge_index, num_nodes=task.num_nodes)
        return Run(model, lambda x: model(x, whole), recipe.dropout, recipe.lr, recipe.weight_decay,
                   pattern, {**identity, "pattern": pattern, **asdict(recipe)},
                   batch_input=lambda ei, n, batch=None, pos=None: Data(edge_index=ei.to(device), num_nodes=n),
                   hops=2 + (name == "gcn"),  # GCN's normalisation reads the degree one hop further
                   attention_edges=edges, edge_input=edge_input)

    from ..models import GraphAttentionNetwork, GraphTransformer
    from ..ops import AttentionGraph
    from ..patterns import Full

    pattern = pattern_for(name, task.edge_index, task.num_nodes, config, seed)
    m = config.model
    encoding = encoding_module(config, m.hidden) if config.positional.encoding != "none" else None
    # Full(): no dropout on the N^2 attention weights, so the fused SDPA kernel runs; drawing
    # N^2 H random numbers per layer would cost more than the rest of the epoch.
    attn_dropout = 0.0 if isinstance(pattern, Full) else m.dropout
    common = {"dropout": m.dropout, "attn_dropout": attn_dropout, "feature_encoding": encoding}
    input_norm = residual = False
    if config.architecture == "attention":
        # Full(): attention over all N nodes is nearly uniform, so without a skip every node's
        # output is the same global mean (one class predicted for all); sparse graphs need none.
        residual = isinstance(pattern, Full)
        model = GraphAttentionNetwork(task.num_features, m.hidden, task.num_classes, m.layers,
                                      m.heads, pattern, residual=residual, **common)
    else:
        # Full(): the shared attention output drowns the tiny normalised features unless the input
        # projection is normalised (see GraphTransformer's input_norm); sparse graphs learn better without.
        input_norm = isinstance(pattern, Full)
        model = GraphTransformer(task.num_features, m.hidden, task.num_classes, m.layers, m.heads,
                                 pattern, ffn_ratio=1, input_norm=input_norm, **common)
    model = model.to(device)
    whole: list[AttentionGraph] = []

    def forward(x: Tensor) -> Tensor:
        # One attention graph for the whole run: every epoch and layer reuse its edges, plans and masks.
        if not whole:
            whole.append(AttentionGraph.build(pattern, task.num_nodes, pos=task.pos).to(device))
        return model(x, whole[0])

    def batch_input(ei: Tensor, n: int, batch: Tensor | None = None, pos: Tensor | None = None) -> AttentionGraph:
        laid = _laid(name, ei, n, batch, config, seed)
        return AttentionGraph.build(laid, n if batch is None else None, batch=batch, pos=pos).to(device)

    def attention_edges(ei: Tensor, n: int) -> Tensor:
        return AttentionGraph.build(pattern_for(name, ei, n, config, seed), n).edge_index

    def edge_input(ei: Tensor, n: int, pos: Tensor | None) -> AttentionGraph:
        return AttentionGraph.build(ei, n, pos=pos).to(device)

    options = config.options()  # the checkpoint's identity: what the weights depend on
    hyper = {k: options[k] for k in ("architecture", "lr", "weight_decay", "hidden", "heads", "layers", "dropout",
                                     "encoding", "encoding_dim", "virtual_nodes", "expander_degree")}
    hyper["attn_dropout"] = attn_dropout
    hyper["input_norm"] = input_norm
    hyper["residual"] = residual
    local = name in ("graph", "graph+expander")  # the others attend globally among the batch's nodes
    return Run(model, forward, m.dropout, config.training.lr, config.training.weight_decay,
               repr(pattern), {**identity, "pattern": repr(pattern), **hyper}, batch_input=batch_input,
               hops=m.layers if local else None, attention_edges=attention_edges if local else None,
               edge_input=edge_input if local else None)
