"""graphattn: self-attention as a graph neural network layer; sparse attention patterns are graphs."""

from importlib.metadata import PackageNotFoundError, version

from .debug import debug
from .models import GraphAttentionNetwork, GraphTransformer
from .nn import SelfAttentionConv, TransformerBlock
from .ops import AttentionGraph, attention
from .patterns import (
    LSH,
    Causal,
    Expander,
    Full,
    Global,
    GraphEdges,
    Grid2D,
    KMeans,
    Pattern,
    Random,
    SelfLoops,
    Stride,
    TopK,
    VirtualNodes,
    Window,
    bigbird,
    longformer,
    parse_pattern,
)

try:
    __version__ = version("graphattn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "__version__", "debug", "AttentionGraph", "attention", "SelfAttentionConv", "TransformerBlock",
    "GraphAttentionNetwork", "GraphTransformer",
    "Pattern", "Full", "Window", "Causal", "Stride", "Global", "Random", "Grid2D",
    "GraphEdges", "SelfLoops", "VirtualNodes", "Expander", "longformer", "bigbird", "parse_pattern",
    "LSH", "KMeans", "TopK",
]
