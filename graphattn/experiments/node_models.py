"""The models of node classification, each called as the harness calls every model,
``model(x, graph)`` with ``graph`` a PyG ``Data`` of nodes (the whole graph or a mini-batch's
subgraph): graphattn's models lay their attention pattern on it (:class:`LaysPattern`), the
baselines read its edges (:mod:`.baselines`). :func:`build` makes the model a name stands for,
with its optimiser, its input dropout and the identity its checkpoint must match
(a :class:`~.seeds.SeedRun`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..models import GNNPlus, GraphAttentionNetwork, GraphTransformer, LocalGlobalNetwork
from ..models.plus import gcn_adjacency
from ..ops import AttentionGraph
from ..train import set_seed
from .baselines import BASELINES
from .harness import InputDropout, Optimization
from .node_config import LOCAL_GLOBAL_MODELS, TUNED_MODELS, NodeConfig
from .node_data import encoding_module
from .seeds import SeedRun

__all__ = ["build", "pattern_for", "identity", "LaysPattern", "NodeAttentionNetwork", "NodeTransformer", "NodePlus",
           "NodeLocalGlobal"]


def pattern_for(name: str, edge_index: Tensor, num_nodes: int, config: NodeConfig, seed: int):
    """The attention pattern of model ``name`` on a graph (or a batch's subgraph) of ``num_nodes``:
    the graph's edges and self-loops, plus global attention among its nodes for ``graph+virtual``
    (virtual nodes), ``graph+bigbird`` (``bigbird(1, [0], 3)``: a window over the batch order,
    its first node global, 3 random keys per query) and ``full``, or an expander, or both
    (``exphormer``)."""
    from ..patterns import Expander, Full, GraphEdges, SelfLoops, VirtualNodes, bigbird

    if name == "full":
        return Full()
    graph = GraphEdges(edge_index.cpu(), num_nodes) | SelfLoops()
    if name == "graph+virtual":
        return graph | VirtualNodes(config.virtual_nodes)
    if name == "graph+expander":
        return graph | Expander(config.expander_degree, seed=seed)
    if name == "exphormer":
        return graph | VirtualNodes(config.virtual_nodes) | Expander(config.expander_degree, seed=seed)
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


class LaysPattern:
    """Mixin for graphattn's models: ``model(x, graph)`` with ``graph`` a PyG ``Data`` of nodes
    (``edge_index``, ``num_nodes``, optional ``pos`` and, for disjoint batches, ``batch``) lays
    the model's node pattern on it and runs on that :class:`~graphattn.AttentionGraph`; what
    the base model takes (an ``AttentionGraph``, a pattern) passes through. The graph last laid
    is kept, so the whole graph, handed over as one object for the whole run, is prepared once.

    A local model (``hops`` layers through which a node's output depends on others; ``None``
    for global attention) also tells the mini-batch harness which explicit edges it attends
    along on a subgraph (:meth:`attention_edges`) and what attends along exactly those
    (:meth:`on_edges`), so a process can score its targets on their ``hops``-hop subgraph.
    """

    _recipe: tuple[str, NodeConfig, int]
    hops: int | None
    _last: tuple[Data, AttentionGraph] | None

    def lay(self, name: str, config: NodeConfig, seed: int, hops: int | None) -> LaysPattern:
        """Set what the model lays (model ``name`` of ``config``, drawn with ``seed``); returns it."""
        self._recipe, self.hops, self._last = (name, config, seed), hops, None
        return self

    def forward(self, x: Tensor, edges: Any = None, *args: Any, **kwargs: Any) -> Tensor:
        if isinstance(edges, Data):
            edges = self._prepared(edges)
        return super().forward(x, edges, *args, **kwargs)  # type: ignore[misc]

    def _prepared(self, graph: Data) -> AttentionGraph:
        if self._last is not None and self._last[0] is graph:
            return self._last[1]
        batch = graph.batch if "batch" in graph else None
        pos = graph.pos if "pos" in graph else None
        name, config, seed = self._recipe
        n = graph.num_nodes
        laid = _laid(name, graph.edge_index, n, batch, config, seed)
        device = next(self.parameters()).device  # type: ignore[attr-defined]
        attention = AttentionGraph.build(laid, n if batch is None else None, batch=batch, pos=pos).to(device)
        self._last = (graph, attention)
        return attention

    def attention_edges(self, graph: Data) -> Tensor:
        """The explicit edges the model attends along on ``graph`` (self-loops, expander edges included)."""
        name, config, seed = self._recipe
        return AttentionGraph.build(pattern_for(name, graph.edge_index, graph.num_nodes, config, seed),
                                    graph.num_nodes).edge_index

    def on_edges(self, edges: Tensor, num_nodes: int, pos: Tensor | None, device: torch.device) -> AttentionGraph:
        """The prepared graph that attends along exactly ``edges``."""
        return AttentionGraph.build(edges, num_nodes, pos=pos).to(device)


class NodeAttentionNetwork(LaysPattern, GraphAttentionNetwork):
    """:class:`~graphattn.models.GraphAttentionNetwork` on a graph of nodes (:class:`LaysPattern`)."""


class NodeTransformer(LaysPattern, GraphTransformer):
    """:class:`~graphattn.models.GraphTransformer` on a graph of nodes (:class:`LaysPattern`)."""


class NodePlus(LaysPattern, GNNPlus):
    """:class:`~graphattn.models.GNNPlus` on a graph of nodes: its message passing reads the
    graph's edges (GCN's normalised adjacency made once per graph object), its attention (if
    any) runs along the pattern laid on the graph (:class:`LaysPattern`). It reads every node of
    a mini-batch (``hops`` is ``None``)."""

    hops = None
    _adjacency: tuple[Data, Tensor] | None = None

    def forward(self, x: Tensor, graph: Data) -> Tensor:  # type: ignore[override]
        if not isinstance(graph, Data):
            raise TypeError(f"graph must be a torch_geometric Data of nodes, got {type(graph).__name__}")
        attention = self._prepared(graph) if self.attns is not None else None
        adjacency = None
        if self.local == "gcn":
            if self._adjacency is None or self._adjacency[0] is not graph:
                self._adjacency = (graph, gcn_adjacency(graph.edge_index, graph.num_nodes))
            adjacency = self._adjacency[1]
        return GNNPlus.forward(self, x, graph.edge_index, attention=attention, adjacency=adjacency)


class NodeLocalGlobal(LocalGlobalNetwork):
    """:class:`~graphattn.models.LocalGlobalNetwork` called as the harness calls it, ``model(x,
    graph)`` with ``graph`` a PyG ``Data`` of nodes: GCN along its edges, the global branch over
    all its nodes (over each seed's own with a disjoint batch's ``batch``). It reads every node of
    a mini-batch (``hops`` is ``None``), the local-only twin too, so both cost the same batches."""

    hops = None

    def forward(self, x: Tensor, graph: Data) -> Tensor:  # type: ignore[override]
        if not isinstance(graph, Data):
            raise TypeError(f"graph must be a torch_geometric Data of nodes, got {type(graph).__name__}")
        return super().forward(x, graph.edge_index, batch=graph.batch if "batch" in graph else None)


def _local_global_text(name: str, global_layers: int | None) -> str:
    """What the rows say a local-global model attends along."""
    if name != "local-global":
        return "GCN (local only)"
    return "GCN + linear global attention (sigmoid)" + ("" if global_layers is None else
                                                         f" in the first {global_layers} layer(s)")


def _flags(name: str, config: NodeConfig, pattern) -> dict[str, Any]:
    """The switches that follow from the pattern. With ``Full()``: no dropout on the N^2
    attention weights (so the fused SDPA kernel runs; drawing N^2 H random numbers per layer
    would cost more than the rest of the epoch); a residual skip for the attention network
    (attention over all N nodes is nearly uniform, so without it every node's output is the
    same global mean: one class predicted for all); an input LayerNorm for the transformer (the
    shared attention output drowns the tiny normalised features unless the input projection is
    normalised). Sparse graphs learn better without either."""
    from ..patterns import Full

    full = isinstance(pattern, Full)
    attention = config.architecture == "attention"
    return {"attn_dropout": 0.0 if full else config.model.dropout, "input_norm": full and not attention,
            "residual": full and attention}


def identity(name: str, data, config: NodeConfig, seed: int) -> dict[str, Any]:
    """What model ``name``'s weights depend on (its checkpoint stores it; resume compares it)."""
    ident: dict[str, Any] = {"task": "node", "dataset": config.dataset, "model": name, "seed": seed}
    batching = config.batching
    if batching.loader != "full":  # another way of training: another experiment for --resume
        ident.update(loader=batching.loader, batch_size=batching.batch_size,
                     num_neighbors=batching.num_neighbors, disjoint=batching.disjoint)
    if config.split != "public":
        ident["split"] = config.split
    if name in BASELINES:  # they add self-loops: they read the graph pattern's edges
        pattern = repr(pattern_for("graph", data.edge_index, data.num_nodes, config, seed))
        return {**ident, "pattern": pattern, **asdict(BASELINES[name])}
    options = config.options()
    plus = {k: options[k] for k in ("lr", "weight_decay", "hidden", "heads", "layers", "dropout", "norm", "residual")}
    if name in TUNED_MODELS:
        return {**ident, "pattern": _tuned_pattern(name), **plus}
    if name in LOCAL_GLOBAL_MODELS:
        # global_layers joins the identity only when set, so checkpoints made before it still resume
        global_layers = {"global_layers": config.global_layers} if name == "local-global" and \
            config.global_layers is not None else {}
        return {**ident, "pattern": _local_global_text(name, config.global_layers),
                **{k: options[k] for k in ("lr", "weight_decay", "hidden", "heads", "layers", "dropout")},
                **global_layers}
    pattern = pattern_for(name, data.edge_index, data.num_nodes, config, seed)
    if config.architecture == "plus":
        return {**ident, "architecture": "plus", "pattern": repr(pattern), **plus,
                **{k: options[k] for k in ("virtual_nodes", "expander_degree")}}
    hyper = {k: options[k] for k in ("architecture", "lr", "weight_decay", "hidden", "heads", "layers", "dropout",
                                     "encoding", "encoding_dim", "virtual_nodes", "expander_degree")}
    return {**ident, "pattern": repr(pattern), **hyper, **_flags(name, config, pattern)}


def build(name: str, data, config: NodeConfig, seed: int) -> SeedRun:
    """Model ``name`` initialised with ``seed`` (the global RNG is seeded here), on the device;
    dropout on its input features (GAT's one rate everywhere; the baselines' own)."""
    set_seed(seed)
    device = config.run.device
    ident = identity(name, data, config, seed)
    if name in LOCAL_GLOBAL_MODELS:
        m = config.model
        local_global = NodeLocalGlobal(data.num_features, m.hidden, data.num_classes, m.layers, m.heads,
                                       dropout=m.dropout, global_branch=name == "local-global",
                                       global_layers=config.global_layers if name == "local-global" else None)
        return SeedRun(local_global.to(device), Optimization("adam", config.training.lr, config.training.weight_decay),
                       ident["pattern"], ident)
    if name in TUNED_MODELS or config.architecture == "plus":
        return _build_plus(name, data, config, seed, ident)
    if name in BASELINES:
        recipe = BASELINES[name]
        # A cached GCN normalisation belongs to one graph: mini-batches bring a new one each step.
        baseline = recipe.build(name, data.num_features, data.num_classes, cached=config.batching.loader == "full")
        return SeedRun(baseline.to(device), Optimization("adam", recipe.lr, recipe.weight_decay), ident["pattern"],
                       ident, InputDropout(recipe.dropout))
    pattern = pattern_for(name, data.edge_index, data.num_nodes, config, seed)
    m, flags = config.model, _flags(name, config, pattern)
    encoding = encoding_module(config, m.hidden) if config.positional.encoding != "none" else None
    common = {"dropout": m.dropout, "attn_dropout": flags["attn_dropout"], "feature_encoding": encoding}
    model: NodeAttentionNetwork | NodeTransformer
    if config.architecture == "attention":
        model = NodeAttentionNetwork(data.num_features, m.hidden, data.num_classes, m.layers, m.heads, pattern,
                                     residual=flags["residual"], **common)
    else:
        model = NodeTransformer(data.num_features, m.hidden, data.num_classes, m.layers, m.heads, pattern,
                                ffn_ratio=1, input_norm=flags["input_norm"], **common)
    local = name in ("graph", "graph+expander")  # the others attend globally among the batch's nodes
    model.lay(name, config, seed, m.layers if local else None)
    return SeedRun(model.to(device), Optimization("adam", config.training.lr, config.training.weight_decay),
                   repr(pattern), ident, InputDropout(m.dropout))


def _tuned_pattern(name: str) -> str:
    return f"graph ({'GCN' if name == 'gcn+' else 'GAT'}, tuned)"


def _build_plus(name: str, data, config: NodeConfig, seed: int, ident: dict[str, Any]) -> SeedRun:
    """``gcn+`` / ``gat+`` (GNNPlus without attention), or a graphattn model of the plus
    architecture (GNNPlus with GCN and attention along the model's pattern), with the run's
    recipe; Adam with L2 weight decay, as Luo et al. train them; no input dropout."""
    m = config.model
    pattern = None if name in TUNED_MODELS else pattern_for(name, data.edge_index, data.num_nodes, config, seed)
    model = NodePlus(data.num_features, m.hidden, data.num_classes, m.layers, m.heads, pattern,
                     local="gat" if name == "gat+" else "gcn", dropout=m.dropout,
                     norm=None if config.norm == "none" else config.norm, residual=config.residual)
    if pattern is not None:
        model.lay(name, config, seed, None)
    text = _tuned_pattern(name) if pattern is None else f"GCN + attention along {pattern!r}"
    return SeedRun(model.to(config.run.device), Optimization("adam", config.training.lr, config.training.weight_decay),
                   text, ident)
