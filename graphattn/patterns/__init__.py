"""Attention patterns: who attends to whom, as predicates and as graphs."""

from .base import Intersection, Pattern, Union
from .batch import (
    batch_dense_mask,
    batch_edge_index,
    check_sizes,
    pad_sequences,
    positions,
    sizes_from_batch,
    unpad_sequences,
)
from .graph import Expander, GraphEdges, SelfLoops, VirtualNodes, check_edge_index
from .grid import Grid2D
from .parse import PATTERN_NAMES, PATTERNS, parse_pattern
from .pieces import Pieces
from .presets import bigbird, longformer
from .routed import LSH, Groups, KeyList, KMeans, Routed, TopK
from .sequence import Causal, Full, Global, Random, Stride, Window

__all__ = [
    "Pattern", "Pieces", "Union", "Intersection",
    "Full", "Window", "Causal", "Stride", "Global", "Random",
    "GraphEdges", "SelfLoops", "VirtualNodes", "Expander",
    "Routed", "LSH", "KMeans", "TopK", "Groups", "KeyList",
    "Grid2D", "longformer", "bigbird", "parse_pattern", "PATTERNS", "PATTERN_NAMES",
    "batch_edge_index", "batch_dense_mask", "check_sizes", "sizes_from_batch", "positions", "pad_sequences", "unpad_sequences",
    "check_edge_index",
]
