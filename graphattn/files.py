"""Writing files so that a crash never leaves a torn one: the one place that does it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["write_atomic"]


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], object], *, mode: int = 0o644) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, then
    ``os.replace`` it over ``path``.

    A reader sees the previous file or the new one, never a partial one; if ``write`` raises,
    the temporary file is removed and ``path`` is untouched. The file gets ``mode`` (``mkstemp``
    would leave ``0600``).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
