"""The score-encoding protocol: positions checked once per graph, tables once per forward.

A score encoding acts where attention compares a query with a key. Its work splits in two:

* what depends on the positions only (checked values, integer offsets, rotary angles):
  :meth:`ScoreEncoding.positions`, derived once per :class:`~graphattn.ops.AttentionGraph` and kept
  on it (``graph.plan``), so a prepared graph never checks or recomputes them again;
* what depends on the parameters (a learned bias table, gathered per offset):
  :meth:`ScoreEncoding.bind`, once per model forward.

``prepare(graph)`` does both and returns the prepared encoding ``(q, k) -> (q, k, bias | None)``
that every layer of the forward shares; a model calls it once and hands the result to its
layers (``SelfAttentionConv(..., encoding=...)``), and a layer called on its own prepares it
itself. ``encoding(q, k, pos)`` is the one-off form on explicit positions. A user's own
encoding may be any ``nn.Module`` with that ``forward(q, k, pos)``: :func:`prepare` then calls
it in every layer on the graph's node positions (subclass :class:`ScoreEncoding` to check its
positions once per graph instead).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from torch import Tensor, nn

from ...checks import check_module
from ...ops import AttentionGraph, BiasFn

__all__ = ["ScoreEncoding", "Prepared", "prepare", "check_encoding"]

#: The position state of an encoding (what :meth:`ScoreEncoding.positions` derives, with a ``.to(device)``).
S = TypeVar("S")

#: A prepared encoding: ``(q [N, H, C], k [N, H, C]) -> (q, k, bias | None)``.
Prepared = Callable[[Tensor, Tensor], "tuple[Tensor, Tensor, BiasFn | None]"]


class _Positions(Generic[S]):
    """The planner of an encoding's position state on a graph (keyed by the encoding's settings)."""

    def __init__(self, encoding: ScoreEncoding[S]):
        self.encoding = encoding

    @property
    def plan_key(self) -> Hashable:
        return ("positions", type(self.encoding).__name__, self.encoding.position_key())

    def plan(self, graph: AttentionGraph) -> S:
        return self.encoding.positions(graph.node_positions())


class ScoreEncoding(nn.Module, Generic[S]):
    """Base of the score encodings (see the module docstring). Subclasses define
    :meth:`positions`, :meth:`bind` and, when their position state depends on a setting,
    :meth:`position_key`; ``S`` is the type of their position state."""

    def position_key(self) -> Hashable:
        """The settings the position state depends on (encodings with equal keys share it)."""
        return ()

    def positions(self, pos: Tensor) -> S:
        """The checked position state of ``pos`` (``[N]``, ``[N, D]``, or what the encoding takes),
        with a ``.to(device)``."""
        raise NotImplementedError

    def bind(self, state: S) -> Prepared:
        """The prepared encoding on a position state, with this forward's parameters."""
        raise NotImplementedError

    def prepare(self, graph: AttentionGraph) -> Prepared:
        """The prepared encoding on ``graph``'s node positions (its position state built once per graph)."""
        return self.bind(graph.plan(_Positions(self)))

    def forward(self, q: Tensor, k: Tensor, pos: Tensor) -> tuple[Tensor, Tensor, BiasFn | None]:
        """``(q, k, bias | None)`` on explicit positions ``pos`` (checked on every call)."""
        state = self.positions(pos)
        if isinstance(q, Tensor) and q.dim() >= 1 and pos.size(0) != q.size(0):
            raise ValueError(f"{type(self).__name__}: pos must have one row per node (N={q.size(0)}) as q and k have, "
                             f"got {list(pos.shape)}")
        return self.bind(state)(q, k)


def prepare(encoding: nn.Module, graph: AttentionGraph) -> Prepared:
    """``encoding.prepare(graph)`` for a :class:`ScoreEncoding`; for any other module with
    ``forward(q, k, pos)``, that call on the graph's node positions."""
    if isinstance(encoding, ScoreEncoding):
        return encoding.prepare(graph)
    pos = graph.node_positions()
    return lambda q, k: encoding(q, k, pos)


def check_encoding(encoding: object, name: str = "position") -> None:
    """A score encoding must be an ``nn.Module`` (a :class:`ScoreEncoding`, or any module with
    ``forward(q, k, pos) -> (q, k, bias | None)``) or ``None``."""
    check_module(encoding, name, "a score encoding module (RelativePositionBias, ALiBi, RotaryEncoding, "
                 "ShortestPathBias, Compose, or an nn.Module with forward(q, k, pos))", arguments=3)
