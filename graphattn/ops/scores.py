"""How scores are formed: dot product or additive, plus optional bias and edge features."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ScoreSpec", "BiasFn", "OffsetBias"]

#: ``bias(q_idx, k_idx) -> [..., H]``: an additive score term from the (batch-global) node
#: ids of query and key, broadcasting like a pattern's ``mask``. Positional encodings close
#: over the positions they need.
BiasFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class OffsetBias:
    r"""A score bias that depends on 1-D integer positions only through their offset, split into a
    position-only part and a per-forward part:

    .. math::
        b^h_{ij} = T\big[h, \operatorname{clamp}(p_j - p_i, -R, R) + R\big]

    with ``T = table(R)`` of shape ``[H, 2R + 1]`` (heads first). ``R = reach`` when offsets past
    it share the edge columns (T5 buckets); ``reach=None`` means no clamp: the kernel asks for a
    table as wide as the largest offset it meets (ALiBi). The index tile (the clamped offsets)
    depends only on ``pos`` and the pattern, so tile kernels derive it once per graph and only
    gather ``table(R)`` per forward (see :mod:`graphattn.ops.bias`). It is still a plain
    ``bias(q_idx, k_idx) -> [..., H]`` (``fn``, the same values), which every other kernel calls.
    """

    fn: BiasFn
    #: ``[N]`` integer positions the bias was built on (the graph's own ``node_positions()``,
    #: the same tensor, lets kernels cache the index tile on the graph).
    pos: Tensor
    table: Callable[[int], Tensor]
    reach: int | None = None

    def __call__(self, q_idx: Tensor, k_idx: Tensor) -> Tensor:
        return self.fn(q_idx, k_idx)


@dataclass
class ScoreSpec:
    """Everything a kernel needs to turn ``(q_i, k_j)`` into a probability.

    ``score="dot"``: ``s_ij = scale * q_i . (k_j + e_ij)``;
    ``score="additive"``: ``s_ij = att_h . tanh(q_i + k_j + e_ij)`` (Bahdanau), per head;
    ``score="gat"``: ``s_ij = LeakyReLU(sum_c q_ic + sum_c k_jc + sum_c e_ijc)`` (GAT: with one
    channel, the per-node scalars ``q_i = a_dst . W x_i``, ``k_j = a_src . W x_j`` and the per-edge
    ``e_ij = a_edge . W_e x_ij``);
    ``score="gatv2"``: ``s_ij = att_h . LeakyReLU(q_i + k_j + e_ij)`` (GATv2), per head.
    ``bias`` is added after any of them. ``e_ij`` is ``edge_kv`` (``[E, H, C]``, aligned with the
    graph's ``edge_index``), also added to the value ``v_j``, or ``edge_k`` (``[E, H, C_k]``), which
    enters the score only. ``keep`` (``[E, H]``, aligned with ``edge_index``) is a dropout mask
    drawn by the caller (each entry ``0`` or ``1 / (1 - p)``, as ``F.dropout`` scales): the kernels
    multiply the weights by it instead of drawing their own.
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
    #: The device type of the call (``"cpu"``, ``"cuda"``), for kernels that run on some only.
    device: str = "cpu"
    #: The dtype of ``q, k, v``.
    dtype: torch.dtype = torch.float32
    #: Whether a ``torch.func`` transform (``grad``, ``vmap``, ``jacrev``, ...) is active around the call.
    transformed: bool = False
    #: ``(H, C, C_v)``: heads, channels of queries / keys and of values.
    shape: tuple[int, int, int] = (1, 1, 1)
    #: The slope of LeakyReLU for x < 0 (``"gat"`` and ``"gatv2"`` scores).
    negative_slope: float = 0.2
    edge_k: Tensor | None = None
    keep: Tensor | None = None

    def activation(self, pre: Tensor) -> Tensor:
        """The score's non-linearity: tanh (additive) or LeakyReLU (GAT, GATv2)."""
        if self.score == "additive":
            return torch.tanh(pre)
        return torch.nn.functional.leaky_relu(pre, self.negative_slope)

    def apply_dropout(self, probs: Tensor) -> Tensor:
        """Dropout on weights drawn here (``keep`` is applied by the kernels, which know its layout)."""
        if self.keep is None and self.dropout > 0 and self.training:
            return torch.nn.functional.dropout(probs, self.dropout, training=True)
        return probs
