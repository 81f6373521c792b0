"""Neural-network modules: the attention layer, attention operators, encodings, the transformer block and the GPS layer."""

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
from .linear import LinearAttention, PositiveRandomFeatures, performer
from .lowrank import Linformer
from .operator import AttentionOperator

__all__ = [
    "SelfAttentionConv", "TransformerBlock", "GPSConv",
    "AttentionOperator", "Linformer", "LinearAttention", "PositiveRandomFeatures", "performer",
    "SinusoidalEncoding", "LearnedEncoding", "LaplacianEncoding", "RandomWalkEncoding",
    "RelativePositionBias", "ALiBi", "RotaryEncoding", "ShortestPathBias", "Compose",
]
