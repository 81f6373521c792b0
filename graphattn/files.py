"""Writing files so that a crash never leaves a torn one and nothing but a regular file is ever
replaced, reading them back only when intact, and claiming an output folder for one run.

:func:`write_atomic` writes beside the target, fsyncs the file, renames it into place and fsyncs
the folder, so after a crash the path holds the old file or the new one. It replaces only a
regular file (or nothing): a path that names a folder, a FIFO, a device node or a socket is
refused in one line (:class:`OutputPathError`) before anything is written, and a symbolic link
is written through to its target. A full disk raises :class:`NoSpaceError` ("no space left")
naming the file, and the previous file stays as it was. :func:`write_checked` also ends the
file with a sha256 trailer that :func:`read_checked` verifies, so a truncated file or a changed
byte is refused by name (:class:`CorruptFileError`) instead of being read. The trailer follows
the payload, so readers that ignore trailing bytes (``torch.load`` does) still open the file
directly. :class:`FolderLock` keeps a second run out of an output folder that a live run holds.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["write_atomic", "write_checked", "read_checked", "fsync_dir", "sha256_file", "CorruptFileError",
           "TRAILER_SIZE", "OutputPathError", "NoSpaceError", "check_output_file", "check_output_folder", "FolderLock",
           "FolderBusyError"]

_MAGIC = b"\ngraphattn-sha256:"
#: Bytes the checksum trailer adds: magic, 64 hex digits, newline.
TRAILER_SIZE = len(_MAGIC) + 64 + 1
_CHUNK = 1 << 20


class CorruptFileError(ValueError):
    """A file's checksum does not match its contents (truncated, changed, or not ours)."""


class OutputPathError(ValueError):
    """An output path that names something other than a regular file (or a folder, for a folder)."""


class NoSpaceError(OSError):
    """The disk (or the quota) is full; the message names the file, which was left as it was."""

    def __str__(self) -> str:
        return str(self.strerror)


#: What ``os.stat`` calls each kind of file that is neither a regular file nor a folder.
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_output_file(path: str | os.PathLike, what: str = "output") -> Path:
    """The file to write for the output path ``path``: ``path`` itself, or the target of a symbolic
    link. Refuses (:class:`OutputPathError`, one line) a path that exists and is not a regular
    file, through any links: a folder, FIFO, device node or socket is never replaced."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode  # follows links: what a write would reach
    except (FileNotFoundError, NotADirectoryError):  # nothing there (the folder's own problems show when writing)
        mode = None
    except OSError as err:
        raise OutputPathError(f"{what} {str(path)!r} cannot be checked ({err.strerror or err})") from None
    if mode is not None and not stat.S_ISREG(mode):
        link = f" (a link to {os.path.realpath(path)!r})" if path.is_symlink() else ""
        raise OutputPathError(f"{what} {str(path)!r}{link} is {_kind(mode)}, not a regular file; "
                              "give the path of a file to write")
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def check_output_folder(path: str | os.PathLike, what: str = "out") -> Path:
    """``path`` if it is a folder or does not exist yet; refuses (:class:`OutputPathError`) a
    path that names a file, a FIFO, a device node or a socket."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return path
    except OSError as err:
        raise OutputPathError(f"{what}={str(path)!r} cannot be checked ({err.strerror or err})") from None
    if not stat.S_ISDIR(mode):
        kind = "a regular file" if stat.S_ISREG(mode) else _kind(mode)
        raise OutputPathError(f"{what}={str(path)!r} is not a writable folder: it is {kind}; give a folder to write into")
    return path


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
    would leave ``0600``). Only a regular file is replaced (:func:`check_output_file`); a link
    is written through to its target.

    Raises:
        OutputPathError: ``path`` names a folder, FIFO, device node or socket (nothing is written).
        NoSpaceError: the disk or quota is full (``path`` keeps its previous contents).
    """
    path = check_output_file(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        full = _no_space(err)
        if full is not None:
            raise NoSpaceError(full.errno, f"no space left on the device writing {str(path)!r} ({full.strerror}); "
                                           "the previous file is unchanged: free some space and run again") from None
        raise
    fsync_dir(path)
    return path


def _no_space(err: BaseException) -> OSError | None:
    """The "disk full" error behind ``err``, if any: writers such as ``torch.save`` wrap the
    ``OSError`` of the file they write into their own exception."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return err
        err = err.__cause__ or err.__context__
    return None


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


class FolderBusyError(ValueError):
    """An output folder that another live run holds."""


class FolderLock:
    """An exclusive claim on an output folder for one run: ``with FolderLock(out): ...``.

    The claim is a POSIX ``flock`` on ``<folder>/.graphattn.lock``, which holds the holder's pid.
    A second run on the same folder is refused in one line naming that pid
    (:class:`FolderBusyError`) instead of interleaving its files with the first run's. The kernel
    drops the lock when its process ends, however it ends, so a lock file left by a dead run is
    taken over. The file is removed when the claim ends. (``flock`` is advisory and local: two
    machines sharing a network folder are not kept apart.)
    """

    NAME = ".graphattn.lock"

    def __init__(self, folder: str | os.PathLike, what: str = "out"):
        self.folder, self.what = Path(folder), what
        self.path = self.folder / self.NAME
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        import fcntl

        check_output_folder(self.folder, self.what)
        while True:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise OutputPathError(f"{self.what}={str(self.folder)!r} is not a writable folder "
                                      f"({err.strerror or err})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise FolderBusyError(f"{self.what}={str(self.folder)!r} is in use by another graphattn run (pid "
                                      f"{holder}); wait for it to finish, or choose another {self.what}") from None
            try:  # the holder before us may have removed the file between our open and our lock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # still ours: nobody else can hold it now
        os.close(self._fd)  # releases the flock
        self._fd = None
