"""What a node-classification run trains on and with: the dataset on the device (:class:`Task`)
and the model each name of :data:`~graphattn.experiments.config.MODELS` builds (:func:`build`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..train import set_seed
from .baselines import BASELINES
from .config import NodeConfig

__all__ = ["Task", "Run", "build", "pattern_for", "encoding_module"]


# ------------------------------------------------------------------------------------- data


class Task:
    """The dataset on the device: sparse features, labels, split masks, edges and positions."""

    def __init__(self, config: NodeConfig):
        import torch_geometric.transforms as T

        from ..datasets import load_planetoid

        dataset = load_planetoid(config.dataset, root=config.root, mirror=config.mirror,
                                 transform=T.NormalizeFeatures(), progress=config.run.progress)
        data = dataset[0]
        encoding = config.positional.encoding
        if encoding != "none":
            options = {"is_undirected": True} if encoding == "laplacian" else {}
            data = encoding_module(config, 1).transform(**options)(data)
        device = torch.device(config.run.device)
        self.num_nodes, self.num_features, self.num_classes = data.num_nodes, dataset.num_features, dataset.num_classes
        self.y = data.y.to(device)
        self.masks = {split: getattr(data, f"{split}_mask").to(device) for split in ("train", "val", "test")}
        self.edge_index = data.edge_index.to(device)
        self.pos = getattr(data, encoding_module(config, 1).attr_name).to(device) if encoding != "none" else None
        with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul with it is stable
            warnings.simplefilter("ignore", UserWarning)
            self.x = data.x.to_sparse_csr().to(device)  # (N, F), ~1% non-zero
        self._crow, self._col, self._values = self.x.crow_indices(), self.x.col_indices(), self.x.values()

    def dropped_x(self, p: float) -> Tensor:
        """``F.dropout(x, p)`` computed on the non-zero entries only (zeros stay zero either way)."""
        if p == 0:
            return self.x
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


def pattern_for(name: str, task: Task, config: NodeConfig, seed: int):
    from ..patterns import Expander, Full, GraphEdges, SelfLoops, VirtualNodes

    if name == "full":
        return Full()
    graph = GraphEdges(task.edge_index.cpu(), task.num_nodes) | SelfLoops()
    if name == "graph+virtual":
        return graph | VirtualNodes(config.virtual_nodes)
    if name == "graph+expander":
        return graph | Expander(config.expander_degree, seed=seed)
    return graph


def build(name: str, task: Task, config: NodeConfig, seed: int) -> Run:
    """The model ``name`` initialised with ``seed`` (the global RNG is seeded here)."""
    set_seed(seed)
    identity = {"task": "node", "dataset": config.dataset, "model": name, "seed": seed}
    if name in BASELINES:
        recipe = BASELINES[name]
        model = recipe.build(name, task.num_features, task.num_classes).to(config.run.device)
        edge_index = task.edge_index
        pattern = repr(pattern_for("graph", task, config, seed))  # GCNConv / GATConv add self-loops
        return Run(model, lambda x: model(x, edge_index), recipe.dropout, recipe.lr, recipe.weight_decay,
                    pattern, {**identity, "pattern": pattern, **asdict(recipe)})

    from ..models import GraphAttentionNetwork, GraphTransformer
    from ..ops import AttentionGraph
    from ..patterns import Full

    pattern = pattern_for(name, task, config, seed)
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
    model = model.to(config.run.device)
    # One attention graph for the whole run: every epoch and layer reuse its edges, plans and masks.
    graph = AttentionGraph.build(pattern, task.num_nodes, pos=task.pos).to(config.run.device)
    options = config.options()  # the checkpoint's identity: what the weights depend on
    hyper = {k: options[k] for k in ("architecture", "lr", "weight_decay", "hidden", "heads", "layers", "dropout",
                                     "encoding", "encoding_dim", "virtual_nodes", "expander_degree")}
    hyper["attn_dropout"] = attn_dropout
    hyper["input_norm"] = input_norm
    hyper["residual"] = residual
    return Run(model, lambda x: model(x, graph), m.dropout, config.training.lr, config.training.weight_decay,
                repr(pattern), {**identity, "pattern": repr(pattern), **hyper})
