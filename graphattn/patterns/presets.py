"""Named sparse-attention patterns, each a one-line composition."""

from __future__ import annotations

from collections.abc import Sequence

from ..checks import MAX_INDEX, check_int
from .base import Pattern
from .sequence import Global, Random, Stride, Window

__all__ = ["longformer", "bigbird"]


def longformer(radius: int, global_tokens: int | Sequence[int] = (0,), stride: int | None = None) -> Pattern:
    """Longformer (Beltagy et al., 2020): sliding window + global tokens [+ dilated window].

    ``global_tokens`` is what :class:`Global` takes (one node id or a list of them). With ``stride``
    the dilated part reaches as far as ``radius`` strides: ``Stride(stride, reach=radius * stride)``.
    """
    pattern = Window(radius) | Global(global_tokens)
    if stride is None:
        return pattern
    check_int(stride, "stride")  # before radius * stride, so a str stride is named, not repeated
    return pattern | Stride(stride, reach=radius * stride)


def bigbird(radius: int, global_tokens: int | Sequence[int] = (0,), random_per_query: int = 3,
            seed: int = 0) -> Pattern:
    """BigBird (Zaheer et al., 2020): sliding window + global tokens + random keys."""
    check_int(random_per_query, "random_per_query", 0, MAX_INDEX)  # named as the caller wrote it, not as Random's per_query
    return Window(radius) | Global(global_tokens) | Random(random_per_query, seed)
