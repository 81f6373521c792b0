"""Sequences of feature vectors to attention graphs, and the one helper every converter shares.

Every converter returns a PyG ``Data`` with

* ``x``: node features (``[N, F]``, or ``[N]`` token ids for text);
* ``pos``: positions (``[N]`` for sequences, ``[N, 2]`` (row, col) for image patches);
* ``edge_index``: the attention graph among the data's nodes, ``pattern.edge_index(N)``
  (row 0 = key ``j``, row 1 = query ``i``), so node ``i`` attends over ``{j : (j, i) in E}``;
* ``pattern``: the pattern object itself, so a model can pick a structured kernel
  (``AttentionGraph.from_data(data)`` prepares it);
* ``num_nodes``; ``y`` when given.

A ``Data`` holds only the data's own nodes. If the pattern asks for virtual nodes
(``VirtualNodes(k)``), they are not added here: the model that learns them inserts them where
the :class:`~graphattn.AttentionGraph` lays them (after each sequence), and ``edge_index``
keeps the pattern's edges among the real nodes.

A list of sequences becomes a PyG ``Batch``: the graphs are laid block-diagonally (PyG
offsets ``edge_index``), ``pos`` restarts at 0 for each sequence, and ``batch.pattern`` is
a list with one pattern per sequence (PyG collates plain objects into lists, exactly as a
``DataLoader`` would).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from ..checks import check_tensor
from ..patterns import Pattern

__all__ = ["sequence_to_graph", "build_data", "attach_pattern", "check_pattern"]


def check_pattern(pattern: object, name: str = "pattern") -> Pattern:
    if not isinstance(pattern, Pattern):
        raise TypeError(
            f"{name} must be a graphattn Pattern such as Window(2) | Global((0,)), got {type(pattern).__name__}"
        )
    return pattern


def _as_label(y: object) -> Tensor | None:
    """Labels as tensors; a scalar becomes shape ``[1]`` so that a batch of them is ``[B]``."""
    if y is None:
        return None
    if isinstance(y, bool) or not isinstance(y, (int, float, Tensor)):
        raise TypeError(f"y must be an int, a float or a Tensor, got {type(y).__name__}")
    y = torch.as_tensor(y)
    check_tensor(y, "y", kind="real", finite=True)
    return y.view(1) if y.dim() == 0 else y


def attach_pattern(data: Data, pattern: Pattern) -> Data:
    """Lay ``pattern`` on ``data`` in place: set ``edge_index`` (the pattern's edges among the
    data's nodes), ``pattern`` and ``num_nodes``; returns ``data``."""
    check_pattern(pattern)
    n = data.num_nodes
    if n is None:
        raise ValueError("data must know its number of nodes (x or num_nodes) to lay a pattern on it")
    edge_index = pattern.edge_index(n + pattern.extra_nodes, device=data.x.device if data.x is not None else None)
    if pattern.extra_nodes:  # the virtual nodes belong to the model: keep the real nodes' edges
        edge_index = edge_index[:, (edge_index < n).all(dim=0)]
    data.edge_index = edge_index
    data.num_nodes = n
    data.pattern = pattern
    return data


def build_data(x: Tensor, pattern: Pattern, *, pos: Tensor | None = None, y: object = None, **attrs: object) -> Data:
    """A ``Data`` with features ``x`` and the attention graph of ``pattern`` on its nodes.

    Args:
        x: node features ``[N, ...]``.
        pattern: who attends to whom.
        pos: node positions, stored as given.
        y: a label (scalar -> shape ``[1]``) or label tensor.
        **attrs: more attributes stored as given.
    """
    check_pattern(pattern)
    data = Data(x=x, num_nodes=x.size(0), **attrs)
    if pos is not None:
        data.pos = pos
    label = _as_label(y)
    if label is not None:
        data.y = label
    return attach_pattern(data, pattern)


def _check_sequence(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a Tensor of shape [L, F] (or [L]), got {type(x).__name__}")
    if x.dim() not in (1, 2):
        raise ValueError(f"{name} must have shape [L, F] (or [L]), got {list(x.shape)}")
    if x.size(0) == 0:
        raise ValueError(f"{name} must have at least one element (L >= 1), got shape {list(x.shape)}")
    check_tensor(x, name, kind="real", finite=True, shape="[L, F] (or [L])")
    return x


def sequence_to_graph(x: Tensor | Sequence[Tensor], pattern: Pattern, y: object = None) -> Data | Batch:
    """A sequence ``[L, F]`` (or a list of them) as an attention graph with positions ``0 .. L-1``.

    Args:
        x: one sequence ``[L, F]`` (``[L]`` is accepted, e.g. token ids), or a list of them.
        pattern: the attention pattern laid on each sequence.
        y: a label for the sequence; for a list, one label per sequence (a list or a tensor).

    Returns:
        ``Data`` for one sequence, ``Batch`` for a list (see the module docstring).

    Raises:
        TypeError: ``x`` is not a tensor / list of tensors, or ``pattern`` is not a Pattern.
        ValueError: a sequence has a wrong shape or is empty, the list is empty, or ``y`` does
            not have one label per sequence.
    """
    check_pattern(pattern)
    if isinstance(x, Tensor):
        x = _check_sequence(x, "x")
        return build_data(x, pattern, pos=torch.arange(x.size(0), device=x.device), y=y)
    if not isinstance(x, (list, tuple)):
        raise TypeError(f"x must be a Tensor [L, F] or a list of them, got {type(x).__name__}")
    if not x:
        raise ValueError("x must hold at least one sequence, got an empty list")
    labels: Sequence[object] = [None] * len(x)
    if y is not None:
        if not isinstance(y, (list, tuple, Tensor)) or len(y) != len(x):
            raise ValueError(f"y must hold one label per sequence ({len(x)}), got {y!r}")
        labels = y
    items = []
    for b, (seq, label) in enumerate(zip(x, labels)):
        seq = _check_sequence(seq, f"x[{b}]")
        items.append(build_data(seq, pattern, pos=torch.arange(seq.size(0), device=seq.device), y=label))
    return Batch.from_data_list(items)
