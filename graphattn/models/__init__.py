"""Models built from the attention layers: the GraphTransformer, the GraphAttentionNetwork, GraphGPS."""

from .attention_network import GraphAttentionNetwork
from .base import POOLINGS, AttentionModel
from .gps import GraphGPS
from .graph_transformer import GraphTransformer

__all__ = ["AttentionModel", "GraphAttentionNetwork", "GraphGPS", "GraphTransformer", "POOLINGS"]
