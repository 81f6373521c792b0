"""CategoricalEncoder: integer-coded node or edge features to vectors, one embedding table per column."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_int

__all__ = ["CategoricalEncoder"]


class CategoricalEncoder(nn.Module):
    r"""The sum of one learned embedding per categorical column.

    .. math::
        h_i = \sum_{k=1}^{K} E_k[x_{ik}], \qquad E_k \in \mathbb{R}^{n_k \times C}

    With the cardinalities of OGB's atom features (``ogb.utils.features.get_atom_feature_dims()``)
    this is OGB's ``AtomEncoder`` (and with the bond dims its ``BondEncoder``); with one column
    it is ``nn.Embedding``: ZINC's atom types (28) and bond types (4), as benchmarking-gnns
    embeds them. The weights start as ``AtomEncoder``'s do (Xavier-uniform). It equals a linear
    map of the concatenated one-hot codes, without materialising them.

    Args:
        cardinalities: ``n_k``, the number of values of each column (values ``0 .. n_k - 1``).
        channels: output width ``C``.

    Shapes:
        - input: ``x`` ``(N, K)`` integer codes, or ``(N)`` for one column
        - output: ``(N, C)``
    """

    def __init__(self, cardinalities: Sequence[int], channels: int):
        super().__init__()
        if isinstance(cardinalities, int) or not len(cardinalities):
            raise TypeError(f"cardinalities must be a non-empty sequence of ints, got {cardinalities!r}")
        self.cardinalities = tuple(check_int(n, "cardinalities") for n in cardinalities)
        self.channels = check_int(channels, "channels")
        self.tables = nn.ModuleList(nn.Embedding(n, channels) for n in self.cardinalities)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for table in self.tables:
            assert isinstance(table, nn.Embedding)  # the tables are the Embeddings built above
            nn.init.xavier_uniform_(table.weight)

    def forward(self, x: Tensor) -> Tensor:
        if x.is_floating_point() or x.dtype == torch.bool:
            raise TypeError(f"x must hold integer codes, got {x.dtype}")
        x = x.unsqueeze(-1) if x.dim() == 1 else x
        if x.dim() != 2 or x.size(1) != len(self.tables):
            raise ValueError(f"x must have shape [N, {len(self.tables)}] (one column per cardinality), "
                             f"got {list(x.shape)}")
        out = self.tables[0](x[:, 0])  # (N, C)
        for k in range(1, len(self.tables)):
            out = out + self.tables[k](x[:, k])
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({list(self.cardinalities)}, {self.channels})"
