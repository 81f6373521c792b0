"""Caches of generated tensors, keyed by what they were made from and checked by content.

A cache file holds ``{"graphattn-cache": FORMAT, "key": ..., "tensors": ...}`` saved by
``torch.save`` and ends with a sha256 trailer (:func:`graphattn.files.write_checked`). The key
says what the tensors were made from (generator version, sizes, seed, the sha256 of the source
files, library versions): :func:`load_cache` returns the tensors only when the trailer matches
the bytes, the file unpickles with ``torch.load(weights_only=True)`` (which builds tensors and
plain containers only, never calls code a file names) and its key equals the caller's. A
truncated, changed or foreign file, or one made for other settings, is reported by name and
``None`` returned, and the caller rebuilds it (:func:`cached`).
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..files import CorruptFileError, read_checked, write_checked

__all__ = ["CACHE_FORMAT", "cached", "load_cache", "save_cache"]

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def _canonical(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def save_cache(path: str | os.PathLike, key: dict[str, Any], tensors: Any) -> Path:
    """Write ``tensors`` (tensors, numbers, strings, lists and dicts of them) with ``key``
    (JSON-able) atomically to ``path``, ending with a sha256 trailer."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save({"graphattn-cache": CACHE_FORMAT, "key": _canonical(key), "tensors": tensors}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_checked(path, lambda f: f.write(buffer.getvalue()))


def load_cache(path: str | os.PathLike, key: dict[str, Any], what: str = "cache") -> Any | None:
    """The tensors cached at ``path`` for ``key``, or ``None`` if there is no usable cache.

    A missing file gives ``None`` silently; a truncated, corrupt or foreign file, or one made
    for another key, gives ``None`` and a warning that names the file and why.

    Raises:
        ValueError: ``path`` exists but is not a regular file (a folder, a FIFO, a device).
    """
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} exists but is not a regular file; remove it or choose another data root")
    why = None
    try:
        stored = torch.load(io.BytesIO(read_checked(path, what)), map_location="cpu", weights_only=True)
    except CorruptFileError as err:
        why = str(err)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        why = f"{what} {str(path)!r} is not a graphattn cache ({type(err).__name__}: {err})"
    else:
        if not isinstance(stored, dict) or stored.get("graphattn-cache") != CACHE_FORMAT or "tensors" not in stored:
            why = f"{what} {str(path)!r} is not a graphattn cache of format {CACHE_FORMAT}"
        elif stored.get("key") != _canonical(key):
            why = f"{what} {str(path)!r} was made for other settings ({_difference(stored.get('key'), key)})"
    if why is not None:
        log.warning("%s; rebuilding it", why)
        return None
    return stored["tensors"]


def _difference(stored: object, key: dict[str, Any]) -> str:
    try:
        old = json.loads(stored) if isinstance(stored, str) else {}
    except ValueError:
        old = {}
    if not isinstance(old, dict):
        old = {}
    changed = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} there, {key.get(k)!r} asked" for k in changed) or "unreadable key"


def cached(path: str | os.PathLike, key: dict[str, Any], build: Callable[[], Any], what: str = "cache") -> Any:
    """The tensors cached at ``path`` for ``key`` if usable (:func:`load_cache`), else
    ``build()``, saved there for next time."""
    tensors = load_cache(path, key, what)
    if tensors is None:
        tensors = build()
        save_cache(path, key, tensors)
    return tensors
