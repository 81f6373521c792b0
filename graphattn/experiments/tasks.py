"""The built-in tasks, registered in :data:`~.registry.TASKS` in the order ``graphattn --help``
lists them: the sequence tasks, graph classification, node classification, the molecule benchmarks
(ZINC, Peptides-func), the pattern study."""

from __future__ import annotations

from .graph_classification import GRAPH
from .molecules import PEPTIDES, ZINC
from .node_classification import NODE
from .registry import TASKS, register
from .sequence_classification import COMMANDS
from .study import STUDY

__all__ = ["TASKS"]

for _task in (*COMMANDS, GRAPH, NODE, ZINC, PEPTIDES, STUDY):
    register(_task, replace=True)
