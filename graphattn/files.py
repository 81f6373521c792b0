"""Writing files so that a crash never leaves a torn one, and reading them back only when intact.

:func:`write_atomic` writes beside the target, fsyncs the file, renames it into place and fsyncs
the folder, so after a crash the path holds the old file or the new one. :func:`write_checked`
also ends the file with a sha256 trailer that :func:`read_checked` verifies, so a truncated file
or a changed byte is refused by name (:class:`CorruptFileError`) instead of being read. The
trailer follows the payload, so readers that ignore trailing bytes (``torch.load`` does) still
open the file directly.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["write_atomic", "write_checked", "read_checked", "fsync_dir", "sha256_file", "CorruptFileError",
           "TRAILER_SIZE"]

_MAGIC = b"\ngraphattn-sha256:"
#: Bytes the checksum trailer adds: magic, 64 hex digits, newline.
TRAILER_SIZE = len(_MAGIC) + 64 + 1
_CHUNK = 1 << 20


class CorruptFileError(ValueError):
    """A file's checksum does not match its contents (truncated, changed, or not ours)."""


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush the directory entry of ``path``'s folder to disk, so a rename survives a power cut.
    A no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(Path(path).parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename itself is still atomic
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], object], *, mode: int = 0o644) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, then
    ``os.replace`` it over ``path`` and fsync the folder.

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
    fsync_dir(path)
    return path


class _Hashing:
    """A write-only file that hashes what passes through it."""

    def __init__(self, f: IO[bytes]):
        self.f, self.h = f, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.h.update(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def write_checked(path: str | os.PathLike, write: Callable[[IO[bytes]], object], *, mode: int = 0o644) -> Path:
    """:func:`write_atomic` with a sha256 trailer after what ``write(file)`` wrote; ``write``
    gets a write-only file (``torch.save`` to a file object needs only ``write`` and ``flush``)."""
    def write_with_trailer(f: IO[bytes]) -> None:
        hashing = _Hashing(f)
        write(hashing)
        f.write(_MAGIC + hashing.h.hexdigest().encode() + b"\n")

    return write_atomic(path, write_with_trailer, mode=mode)


def read_checked(path: str | os.PathLike, what: str = "file") -> bytes:
    """The payload of a file written by :func:`write_checked`, after checking its trailer.

    Raises:
        CorruptFileError: the file is shorter than a trailer, has none (truncated, or written
            without one) or its payload does not match the recorded sha256.
        OSError: the file cannot be read.
    """
    path = Path(path)
    data = path.read_bytes()
    payload, trailer = data[:-TRAILER_SIZE], data[-TRAILER_SIZE:]
    if len(data) < TRAILER_SIZE or not trailer.startswith(_MAGIC) or not trailer.endswith(b"\n"):
        raise CorruptFileError(f"{what} {str(path)!r} has no checksum trailer ({len(data)} bytes): it is truncated, "
                               "corrupt or was not written by graphattn")
    recorded = trailer[len(_MAGIC):-1].decode("ascii", "replace")
    actual = hashlib.sha256(payload).hexdigest()
    if actual != recorded:
        raise CorruptFileError(f"{what} {str(path)!r} is corrupt: its sha256 is {actual[:12]}... but the file "
                               f"records {recorded[:12]}...")
    return payload


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
