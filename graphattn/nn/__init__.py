"""Neural-network modules: the attention layer, attention operators, encodings, the transformer
block, categorical feature embeddings, and drop-ins for PyG's attention layers (``TransformerConv``,
``GATConv``, ``GATv2Conv``, ``GPSConv``)."""

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
from .linear import LinearAttention, PositiveRandomFeatures, performer
from .lowrank import Linformer
from .operator import AttentionOperator
from .pyg import GATConv, GATv2Conv, GPSConv, TransformerConv

__all__ = [
    "SelfAttentionConv", "TransformerBlock", "GPSConv", "TransformerConv", "GATConv", "GATv2Conv",
    "AttentionOperator", "Linformer", "LinearAttention", "PositiveRandomFeatures", "performer", "CategoricalEncoder",
    "SinusoidalEncoding", "LearnedEncoding", "LaplacianEncoding", "RandomWalkEncoding",
    "RelativePositionBias", "ALiBi", "RotaryEncoding", "ShortestPathBias", "Compose",
]
