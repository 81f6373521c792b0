"""Positional encodings: self-attention is permutation-equivariant, these tell it where nodes are.

Two kinds, one protocol each:

* **feature encodings** ``encoding(pos) -> [N, d_model]``, added to the node features before
  the first layer: :class:`SinusoidalEncoding`, :class:`LearnedEncoding` (``pos`` = positions
  ``[N]``), :class:`LaplacianEncoding`, :class:`RandomWalkEncoding` (``pos`` = the raw
  ``[N, k]`` values PyG's transforms store, see their ``transform()``).
* **score encodings** ``encoding(q, k, pos) -> (q, k, bias | None)``, given to the layer:
  ``SelfAttentionConv(..., position=RotaryEncoding(C))``; the layer calls them with the
  ``pos`` of ``forward(..., pos=...)`` (default: ``0 .. n-1`` within each sequence):
  :class:`RotaryEncoding` rotates ``q, k``; :class:`RelativePositionBias`, :class:`ALiBi` and
  :class:`ShortestPathBias` return ``bias(q_idx, k_idx) -> [..., H]`` over node ids.
  :class:`Compose` chains several.
"""

from .features import LaplacianEncoding, LearnedEncoding, RandomWalkEncoding, SinusoidalEncoding
from .graph import ShortestPathBias
from .scores import ALiBi, Compose, RelativePositionBias, RotaryEncoding, alibi_slopes, t5_bucket

__all__ = [
    "SinusoidalEncoding", "LearnedEncoding", "LaplacianEncoding", "RandomWalkEncoding",
    "RelativePositionBias", "ALiBi", "RotaryEncoding", "ShortestPathBias", "Compose",
    "alibi_slopes", "t5_bucket",
]
