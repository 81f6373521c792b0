"""Attention kernels as objects, the prepared graph they share, and the dispatcher that picks one."""

from .dispatch import BACKENDS, GROUPS, KERNELS, PRIORITY, AttentionOutput, attention, choose_backend, choose_kernel
from .graph import AttentionGraph
from .kernel import Kernel, KernelResult, Plan, edge_weights
from .reference import reference_attention
from .routed import GroupGraph, route
from .scores import BiasFn, OffsetBias, ScoreSpec

__all__ = [
    "attention", "choose_backend", "choose_kernel", "KERNELS", "GROUPS", "BACKENDS", "PRIORITY", "AttentionOutput",
    "AttentionGraph", "Kernel", "KernelResult", "Plan", "edge_weights", "ScoreSpec", "BiasFn", "OffsetBias",
    "reference_attention", "route", "GroupGraph",
]
