"""The two folders every loader works with: the writable data root and the read-only mirror.

Data root: ``root=`` argument, else ``$GRAPHATTN_DATA``, else ``datasets/`` in a writable
repository checkout, else ``~/.cache/graphattn``. Mirror: ``mirror=`` argument, else
``$GRAPHATTN_MIRROR``, else none; it is only read and uses the same relative paths as the root.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..checks import check_path

__all__ = ["DATA_ENV", "MIRROR_ENV", "data_root", "resolve_mirror"]

DATA_ENV = "GRAPHATTN_DATA"
MIRROR_ENV = "GRAPHATTN_MIRROR"
_REPO = Path(__file__).resolve().parents[2]  # graphattn/datasets/roots.py -> the checkout


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The writable data root: ``root``, else ``$GRAPHATTN_DATA``, else the repository's
    ``datasets/`` when running from a writable checkout, else ``~/.cache/graphattn``.

    Raises:
        TypeError: ``root`` is not a path.
        ValueError: the chosen root exists but is not a folder.
    """
    check_path(root, "root", optional=True)
    name = "root"
    if root is None:
        root, name = os.environ.get(DATA_ENV) or None, f"${DATA_ENV}"
    if root is not None:
        return _folder(Path(root).expanduser(), name)
    checkout = (_REPO / "pyproject.toml").is_file() and (_REPO / "graphattn").is_dir()
    default = _REPO / "datasets"
    if checkout and os.access(default if default.exists() else _REPO, os.W_OK):
        return _folder(default, "the data root")
    return _folder(Path.home() / ".cache" / "graphattn", "the data root")


def resolve_mirror(mirror: str | os.PathLike | None) -> Path | None:
    """The mirror folder: ``mirror``, else ``$GRAPHATTN_MIRROR``, else ``None``."""
    check_path(mirror, "mirror", optional=True)
    name = "mirror" if mirror is not None else f"${MIRROR_ENV}"
    mirror = mirror if mirror is not None else (os.environ.get(MIRROR_ENV) or None)
    return _folder(Path(mirror).expanduser(), name) if mirror is not None else None


def _folder(path: Path, name: str) -> Path:
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name}={str(path)!r} is a file, not a folder; point it at a folder (it is created if missing)")
    return path
