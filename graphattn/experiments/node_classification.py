"""Node classification, graphattn against published and tuned message passing.

One protocol for every model: the split (``split``: Planetoid's public split with
``NormalizeFeatures``; for Amazon and Coauthor, whose features are used as they are, 60 / 20 / 20
of the nodes drawn per seed, or 20 + 30 per class), full-batch Adam, at most ``epochs`` epochs,
early stopping on validation accuracy (``patience``; an epoch that ties the best accuracy with a
lower validation loss also counts, as in GAT's protocol), the weights of the best validation
epoch kept, test accuracy read once at the end, ``seeds`` seeds.

Models (``NodeConfig.models``), each a graphattn model of ``NodeConfig.architecture``
(:class:`~graphattn.models.GraphAttentionNetwork` by default, :class:`~graphattn.models.GraphTransformer`,
or ``plus``: :class:`~graphattn.models.GNNPlus`, Luo et al.'s tuned GCN with the attention summed
with the GCN's messages in every layer):

* ``graph``: attention along the graph's edges with self-loops,
  ``GraphEdges(edge_index) | SelfLoops()``;
* ``graph+virtual``: the same plus learned virtual global nodes, ``... | VirtualNodes(k)``;
* ``graph+expander``: the same plus a random expander, ``... | Expander(d, seed)``;
* ``exphormer``: both, Exphormer's interaction graph, ``... | VirtualNodes(k) | Expander(d, seed)``;
* ``full``: full attention over all nodes, ``Full()``, without attention dropout (so the fused
  kernel runs), with residual skips (attention network) or an input LayerNorm (transformer):
  near-uniform attention over N nodes would otherwise hand every node the same global mean;
* ``gcn``, ``gat``: PyG baselines with their published Planetoid hyper-parameters
  (:mod:`graphattn.experiments.baselines`);
* ``gcn+``, ``gat+``: Luo et al.'s tuned GCN and GAT (``GNNPlus`` without attention), trained with
  the run's own ``hidden``, ``layers``, ``dropout``, ``norm``, ``residual``, ``lr`` and
  ``weight_decay``: with ``--architecture plus`` the graphattn models differ from ``gcn+`` only by
  their attention.

The graphattn models share ``lr``, ``weight_decay``, ``hidden``, ``heads``, ``layers`` and
``dropout`` (the attention network and the transformer drop the input features, the hidden
layers or residual branches and the attention weights, as GAT uses one rate everywhere; the plus
architecture, like Luo et al., drops after each layer's activation only). Input dropout is
applied to the non-zero entries of a sparse (CSR) feature matrix: zeros stay zero under
dropout, so this is ``F.dropout`` on the dense matrix, at ~1% of the cost on bag-of-words
features (:func:`~.harness.drop_input`).

A new node model (another graphattn architecture, say a Polynormer) is a name in
:data:`~.node_config.MODELS` (or a value of ``architecture``) and a branch of
:func:`.node_models.build` that returns its :class:`~.seeds.SeedRun`; data, batches, seeds and
tables are shared.

The task is a :class:`~.registry.SeedTask` (:data:`NODE`): its data (:mod:`.node_data`), models
(:mod:`.node_models`) and batches (:mod:`.node_batches`, mini-batches and ``torchrun``) are its
own; the seeds, checkpoints, resume, workers and rows are the seed protocol's (:mod:`.seeds`),
the training loop the harness's (:mod:`.harness`).

Example::

    from graphattn.experiments.node_classification import NodeConfig, run
    metrics = run(NodeConfig(dataset="Cora", models=("graph", "gat"), seeds=3))
"""

from __future__ import annotations

from typing import Any

from ..train import world_size
from .metrics import classification
from .node_batches import NodeBatches, WholeGraph, check_loader
from .node_config import ARCHITECTURES, GRAPHATTN_MODELS, MODELS, NodeConfig
from .node_config import NODE_DATASETS as DATASETS
from .node_data import NodeData
from .node_models import build, identity
from .node_report import report, write_outputs
from .pieces import ENCODINGS
from .registry import SeedTask
from .seeds import SeedRun

__all__ = ["NodeConfig", "run", "NODE", "MODELS", "GRAPHATTN_MODELS", "DATASETS", "ENCODINGS", "ARCHITECTURES"]


def batches(config: NodeConfig, data: NodeData, run: SeedRun, seed: int, splits: tuple[str, ...], *, train: bool):
    """The whole graph in one step on one process, else the global batches of ``config.batching``
    shared among the processes of ``torchrun``; the split is ``seed``'s (:meth:`NodeData.for_seed`)."""
    data = data.for_seed(seed)
    if config.batching.loader == "full" and world_size() == 1:
        return WholeGraph(data, splits)
    return NodeBatches(data, config, seed, splits, train=train, model=run.model)


def row(config: NodeConfig, name: str) -> dict[str, Any]:
    """What a node run's row adds: the positional encoding, the split, and how it was batched."""
    extra: dict[str, Any] = {"encoding": config.positional.encoding if name in GRAPHATTN_MODELS else "none",
                             "split": config.split}
    if config.batching.loader != "full" or world_size() > 1:
        extra.update(loader=config.batching.loader, batch_size=config.batching.batch_size, processes=world_size())
    return extra


NODE = SeedTask(
    name="node", config=NodeConfig,
    help="node classification (Planetoid, Amazon, Coauthor, ...): graphattn vs GCN and GAT, published and tuned",
    description="Train every model with every seed on the split (early stopping on validation accuracy) and "
                "report mean +- std test accuracy, epochs, time per epoch, peak memory and parameters.",
    data=NodeData, build=build, identity=identity, batches=batches, objective=classification(tie_break=True),
    row=row, write=write_outputs, check=check_loader, report=report)


def run(config: NodeConfig) -> dict[str, Any]:
    """Train every model of ``config`` with every seed; write ``results.json`` (one object per
    run), ``results.md`` (a table) and ``accuracy.png`` under ``config.out_dir``.

    Returns ``{"config", "runs", "summary", "wall_time_s", "out", "rank"}``: ``runs`` as in
    ``results.json``; ``summary`` one row per model (mean and std of test accuracy over seeds,
    mean validation accuracy, epochs and epoch time, largest peak memory, parameters).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process joins one process group (gloo on
    CPU, nccl on CUDA, ``dist_timeout`` seconds for each collective) and trains every run on its
    share of each batch (:mod:`.node_batches`); only rank 0 checks and writes the output
    folder and the checkpoints. A refusal on rank 0 stops every process with its message.

    Raises:
        ValueError: the output folder is held by another run or not writable; ``resume=True``
            without checkpoints, or with a checkpoint of another experiment; the loader's
            optional extra is missing. Nothing is written in these cases.
    """
    return NODE.run(config)
