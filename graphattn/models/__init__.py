"""Models built from the attention layers: the GraphTransformer, the GraphAttentionNetwork, GraphGPS,
the LocalGlobalNetwork, and GNNPlus (tuned message passing, optionally with attention beside it)."""

from .attention_network import GraphAttentionNetwork
from .base import POOLINGS, AttentionModel
from .gps import GraphGPS
from .graph_transformer import GraphTransformer
from .local_global import LocalGlobalNetwork
from .plus import GNNPlus

__all__ = ["AttentionModel", "GraphAttentionNetwork", "GraphGPS", "GraphTransformer", "GNNPlus", "LocalGlobalNetwork",
           "POOLINGS"]
