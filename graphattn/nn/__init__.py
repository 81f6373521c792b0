"""Neural-network modules: the attention layer, encodings and the transformer block."""

from .attention import SelfAttentionConv

__all__ = ["SelfAttentionConv"]
