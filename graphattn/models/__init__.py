"""Models built from the attention layers: the GraphTransformer, the GraphAttentionNetwork, GraphGPS, the
LocalGlobalNetwork."""

from .attention_network import GraphAttentionNetwork
from .base import POOLINGS, AttentionModel
from .gps import GraphGPS
from .graph_transformer import GraphTransformer
from .local_global import LocalGlobalNetwork

__all__ = ["AttentionModel", "GraphAttentionNetwork", "GraphGPS", "GraphTransformer", "LocalGlobalNetwork", "POOLINGS"]
