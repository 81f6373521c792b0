"""Neural-network modules: the attention layer, encodings, the transformer block and the GPS layer."""

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
from .gps import GPSConv

__all__ = [
    "SelfAttentionConv", "TransformerBlock", "GPSConv",
    "SinusoidalEncoding", "LearnedEncoding", "LaplacianEncoding", "RandomWalkEncoding",
    "RelativePositionBias", "ALiBi", "RotaryEncoding", "ShortestPathBias", "Compose",
]
