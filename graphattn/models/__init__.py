"""Models built from the attention layers: the GraphTransformer, the GraphAttentionNetwork."""

from .attention_network import GraphAttentionNetwork
from .base import POOLINGS, AttentionModel
from .graph_transformer import GraphTransformer

__all__ = ["AttentionModel", "GraphAttentionNetwork", "GraphTransformer", "POOLINGS"]
