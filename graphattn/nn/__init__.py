"""Neural-network modules: the attention layer, encodings, the transformer block, and drop-ins for
PyG's attention layers (``TransformerConv``, ``GATConv``, ``GATv2Conv``, ``GPSConv``)."""

from .attention import SelfAttentionConv
from .block import TransformerBlock
from .encodings import (
    ALiBi,
    Compose,
    LaplacianEncoding,
    LearnedEncoding,
    RandomWalkEncoding,
    RelativePositionBias,
    RotaryEncoding,
    ShortestPathBias,
    SinusoidalEncoding,
)
from .pyg import GATConv, GATv2Conv, GPSConv, TransformerConv

__all__ = [
    "SelfAttentionConv", "TransformerBlock", "GPSConv", "TransformerConv", "GATConv", "GATv2Conv",
    "SinusoidalEncoding", "LearnedEncoding", "LaplacianEncoding", "RandomWalkEncoding",
    "RelativePositionBias", "ALiBi", "RotaryEncoding", "ShortestPathBias", "Compose",
]
