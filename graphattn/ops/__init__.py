"""Attention kernels as pure functions, and the dispatcher that picks one."""

from .blocked import blocked_attention
from .dense import dense_attention
from .dispatch import BACKENDS, KERNELS, AttentionOutput, attention, choose_backend
from .graph import AttentionGraph
from .reference import reference_attention
from .scatter import scatter_attention
from .scores import BiasFn, OffsetBias, ScoreSpec
from .sparse import sparse_attention

__all__ = [
    "attention", "choose_backend", "KERNELS", "BACKENDS", "AttentionOutput",
    "AttentionGraph", "ScoreSpec", "BiasFn", "OffsetBias", "reference_attention", "scatter_attention",
    "dense_attention", "blocked_attention", "sparse_attention",
]
