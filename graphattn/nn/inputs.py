"""Argument and input checks of :class:`~graphattn.nn.SelfAttentionConv`, kept apart from its math.

Metadata (types, shapes, dtypes) is checked on every call; values (finite features) only where
asked, so a call on a prepared graph or an ``EdgeIndex`` never waits for the device.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn.dense.linear import Linear as LazyLinear

from .. import ops
from ..checks import all_finite, check_int, check_probability
from .encodings.base import check_encoding

__all__ = ["in_channels_pair", "linear", "check_options", "check_x", "check_edge_attr", "SCORES", "PROJECTIONS"]

#: What ``score=`` accepts.
SCORES = ("dot", "additive")
#: What ``projection=`` accepts: three matrices, one shared matrix, or none (the input itself).
PROJECTIONS = ("separate", "shared", "none")


def in_channels_pair(in_channels: object) -> tuple[int, int]:
    """``(F_src, F_dst)`` from an int, a pair or ``-1`` (lazy)."""
    pair = tuple(in_channels) if isinstance(in_channels, (tuple, list)) else (in_channels, in_channels)
    if len(pair) != 2 or any(isinstance(c, bool) or not isinstance(c, int) or (c < 1 and c != -1) for c in pair):
        raise ValueError(f"in_channels must be a positive int, -1 (lazy) or a pair of them (F_src, F_dst), "
                         f"got {in_channels!r}")
    return pair


def linear(in_channels: int, out_channels: int, bias: bool) -> nn.Module:
    """``nn.Linear``, or PyG's ``Linear`` that infers ``in_channels=-1`` on the first call (what
    ``to_hetero``'s lazy models need)."""
    return nn.Linear(in_channels, out_channels, bias=bias) if in_channels > 0 else LazyLinear(-1, out_channels, bias)


def check_options(in_channels: object, out_channels: object, heads: object, *, score: object, dropout: object,
                  bias: object, edge_dim: object, backend: object, position: object, projection: object,
                  flags: dict[str, object]) -> tuple[int, int]:
    """Every constructor argument of the layer; returns ``(F_src, F_dst)``."""
    src, dst = in_channels_pair(in_channels)
    out_channels, heads = check_int(out_channels, "out_channels"), check_int(heads, "heads")
    if out_channels % heads:
        raise ValueError(f"heads ({heads}) must divide out_channels ({out_channels})")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    check_probability(dropout, "dropout")  # a str or None named, not a comparison error
    if backend not in ops.BACKENDS:
        raise ValueError(f"backend must be one of {ops.BACKENDS}, got {backend!r}")
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
    if projection == "none" and {src, dst} != {out_channels}:
        raise ValueError(f"projection='none' attends with the input itself, so in_channels ({in_channels}) "
                         f"must equal out_channels ({out_channels})")
    if projection == "shared" and src != dst:
        raise ValueError(f"projection='shared' uses one matrix for queries, keys and values, so in_channels "
                         f"must be one width, got {in_channels}")
    for name, value in {**flags, "bias": bias}.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    if edge_dim is not None and (isinstance(edge_dim, bool) or not isinstance(edge_dim, int) or edge_dim < 1):
        raise ValueError(f"edge_dim must be a positive int or None, got {edge_dim!r}")
    check_encoding(position)
    return src, dst


def check_x(x: object, name: str, expected: int, *, values: bool, projected: bool) -> None:
    """``x`` is a float ``[N, expected]`` tensor (``expected = -1``: any width; sparse only when it
    is ``projected``); with ``values``, its stored values are finite."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, F] (or a pair (x_src, x_dst)), "
                        f"got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape [N, F], got {list(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    sparse = x.layout != torch.strided
    if sparse and not projected:
        raise ValueError(f"a sparse {name} needs a projection; projection='none' attends with x itself")
    if expected != -1 and x.size(1) != expected:
        raise ValueError(f"{name} must have shape [N, {expected}], got {list(x.shape)}")
    if values:  # a sparse matrix's implicit zeros are finite: check the stored values only
        stored = x if not sparse else x.coalesce().values() if x.is_sparse else x.values()
        if not all_finite(stored):
            raise ValueError(f"{name} contains NaN or infinite values")


def check_edge_attr(edge_attr: object, edge_dim: int | None, num_edges: int, *, values: bool) -> Tensor | None:
    """``edge_attr`` as ``[E, edge_dim]`` (a 1-D ``[E]`` is one feature per edge), or None."""
    if edge_attr is None:
        if edge_dim is not None:
            raise ValueError(f"edge_attr of shape [E, {edge_dim}] is required (edge_dim={edge_dim})")
        return None
    if edge_dim is None:
        raise ValueError("edge_attr was given but the layer has no edge_dim")
    if isinstance(edge_attr, Tensor) and edge_attr.dim() == 1 and edge_dim == 1:
        edge_attr = edge_attr.view(-1, 1)  # edge weights as one feature, as PyG's layers take them
    if not isinstance(edge_attr, Tensor) or edge_attr.dim() != 2 or edge_attr.shape != (num_edges, edge_dim):
        got = list(edge_attr.shape) if isinstance(edge_attr, Tensor) else type(edge_attr).__name__
        raise ValueError(f"edge_attr must have shape [E, edge_dim] = [{num_edges}, {edge_dim}], got {got}")
    if not edge_attr.is_floating_point():
        raise TypeError(f"edge_attr must be a floating-point tensor, got {edge_attr.dtype}")
    if values and not all_finite(edge_attr):
        raise ValueError("edge_attr contains NaN or infinite values")
    return edge_attr
