"""How scores are formed: dot product or additive, plus optional bias and edge features."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ScoreSpec", "BiasFn"]

#: ``bias(q_idx, k_idx) -> [..., H]``: an additive score term from the (batch-global) node
#: ids of query and key, broadcasting like a pattern's ``mask``. Positional encodings close
#: over the positions they need.
BiasFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class ScoreSpec:
    """Everything a kernel needs to turn ``(q_i, k_j)`` into a probability.

    ``score="dot"``: ``s_ij = scale * q_i . (k_j + e_ij)``;
    ``score="additive"``: ``s_ij = att_h . tanh(q_i + k_j + e_ij)`` (Bahdanau), per head.
    ``bias`` is added after either; ``edge_kv`` (``[E, H, C]``, aligned with the graph's
    ``edge_index``) is ``e_ij``, also added to the value ``v_j``.
    """

    score: str = "dot"
    scale: float = 1.0
    att: Tensor | None = None
    bias: BiasFn | None = None
    edge_kv: Tensor | None = None
    dropout: float = 0.0
    training: bool = False
    #: Whether autograd will differentiate through the call (a kernel without a backward refuses it).
    grad: bool = False

    def apply_dropout(self, probs: Tensor) -> Tensor:
        if self.dropout > 0 and self.training:
            return torch.nn.functional.dropout(probs, self.dropout, training=True)
        return probs
