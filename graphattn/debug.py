"""Debug mode: check values on every call, not only where a graph is built.

graphattn checks values (finite features, ids in range) where an
:class:`~graphattn.ops.AttentionGraph` is built; a forward on a prepared graph checks metadata
only (shapes, dtypes, devices), so it never asks the device for a number (no GPU stall, no
graph break under ``torch.compile``), and a non-finite key or value then reaches exactly the
queries that attend to it. To hunt a bad input, turn the value checks on everywhere::

    with graphattn.debug():
        model(x, graph)  # ValueError naming the tensor if x holds NaN / inf

or set ``GRAPHATTN_DEBUG=1`` in the environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["debug", "debugging"]

_STATE = {"on": os.environ.get("GRAPHATTN_DEBUG", "") not in ("", "0")}


def debugging() -> bool:
    """Whether debug mode is on."""
    return _STATE["on"]


@contextmanager
def debug(enabled: bool = True) -> Iterator[None]:
    """Check values on every call inside the ``with`` block (``enabled=False`` turns it off)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__} {enabled!r}")
    before = _STATE["on"]
    _STATE["on"] = enabled
    try:
        yield
    finally:
        _STATE["on"] = before
