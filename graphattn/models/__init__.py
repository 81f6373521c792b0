"""Models built from the attention layers: the GraphTransformer and its pooling heads."""

from .graph_transformer import POOLINGS, GraphTransformer

__all__ = ["GraphTransformer", "POOLINGS"]
