"""Neural-network modules: the attention layer, encodings, the transformer block, the GPS layer and
categorical feature embeddings."""

from .attention import SelfAttentionConv
from .block import TransformerBlock
from .categorical import CategoricalEncoder
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
    "SelfAttentionConv", "TransformerBlock", "GPSConv", "CategoricalEncoder",
    "SinusoidalEncoding", "LearnedEncoding", "LaplacianEncoding", "RandomWalkEncoding",
    "RelativePositionBias", "ALiBi", "RotaryEncoding", "ShortestPathBias", "Compose",
]
