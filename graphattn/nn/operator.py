"""Attention operators: modules that compute a layer's attention in place of the graph kernels.

Two branches of the efficient transformers are not a sparser graph but another way to compute
``Full()``: low rank (:class:`~graphattn.nn.Linformer`: every query attends to a few learned
summaries of its sequence) and kernelised attention (:class:`~graphattn.nn.LinearAttention`,
Performer: no score is ever formed). An operator is an ``nn.Module`` the layer owns
(``SelfAttentionConv(..., operator=Linformer(16, 512))``); the layer projects ``q, k, v``, hands
them over with the prepared graph, and merges the heads with ``W_o`` as always, so weights keep
the layer's format. Protocol::

    operator(q, k, v, graph, *, dropout=0.0, return_weights=False) -> (out [N, H, C_v], weights | None)

An operator attends within each sequence (graph) of the batch, over all its nodes: ``graph``
must be laid with ``Full()`` (or a pattern containing it, e.g. with virtual nodes).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from ..ops import AttentionGraph
from ..patterns import pad_sequences, unpad_sequences

__all__ = ["AttentionOperator", "check_operator"]


class AttentionOperator(nn.Module):
    """Base of the attention operators (see the module docstring)."""

    #: Whether it forms per-edge weights (``return_attention_weights``, attention dropout).
    has_weights: ClassVar[bool] = True

    def sequences(self, graph: AttentionGraph) -> tuple[int, int, Tensor]:
        """``(B, L_max, used [B, L_max])`` of the graph's sequences, after checking that the
        graph asks every node of a sequence to attend to every other (``Full()``)."""
        if not isinstance(graph, AttentionGraph):
            raise TypeError(f"graph must be an AttentionGraph, got {type(graph).__name__}")
        pieces = None if graph.pattern is None else graph.pattern.pieces()
        if pieces is None or not pieces.full:
            raise ValueError(f"{type(self).__name__} attends to every node of each sequence (Full() in the graph "
                             f"view): edges must be Full() laid on the batch, got {graph!r}")
        lengths = graph.layout.lengths
        length = max(lengths, default=0)
        used = torch.arange(length, device=graph.device) < torch.tensor(lengths, device=graph.device)[:, None]
        return len(lengths), length, used

    @staticmethod
    def pad(x: Tensor, graph: AttentionGraph, length: int) -> Tensor:
        """``[N, H, C] -> [B, L, H, C]``, zeros after each sequence's end."""
        layout = graph.layout
        if len(layout.lengths) == 1:  # one sequence holds every node, in order: a view, no copy
            return x.unsqueeze(0)
        return pad_sequences(x, layout.batch, layout.position, len(layout.lengths), length)

    @staticmethod
    def unpad(x: Tensor, graph: AttentionGraph) -> Tensor:
        """``[B, L, H, C] -> [N, H, C]``."""
        if x.size(0) == 1:
            return x[0]
        return unpad_sequences(x, graph.layout.batch, graph.layout.position)


def check_operator(operator: object, *, score: str, edge_dim: int | None, dropout: float) -> None:
    """What a layer checks when it is given an ``operator``: a module, dot-product scores, no edge
    features (there are no edges), and no attention dropout where there are no weights."""
    if operator is None:
        return
    if not isinstance(operator, nn.Module):
        raise TypeError(f"operator must be an nn.Module (Linformer, LinearAttention, ...) or None, "
                        f"got {type(operator).__name__}")
    name = type(operator).__name__
    if score != "dot":
        raise ValueError(f"operator={name} computes dot-product attention; score must be 'dot', got {score!r}")
    if edge_dim is not None:
        raise ValueError(f"operator={name} forms no edges to carry edge features; edge_dim must be None")
    if dropout and not getattr(operator, "has_weights", True):
        raise ValueError(f"operator={name} forms no attention weights to drop; dropout must be 0.0, got {dropout}")
