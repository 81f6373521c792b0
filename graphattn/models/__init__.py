"""Models built from the attention layers: the GraphTransformer, the GraphAttentionNetwork, GraphGPS,
and GNNPlus (tuned message passing, optionally with attention beside it)."""

from .attention_network import GraphAttentionNetwork
from .base import POOLINGS, AttentionModel
from .gps import GraphGPS
from .graph_transformer import GraphTransformer
from .plus import GNNPlus

__all__ = ["AttentionModel", "GraphAttentionNetwork", "GraphGPS", "GraphTransformer", "GNNPlus", "POOLINGS"]
