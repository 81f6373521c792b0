"""Making a dataset's files present and verified: from the data root, an offline mirror, or upstream.

:func:`fetch` takes each file of a dataset, in this order, from the data root itself (if its
sha256 matches), from the mirror, and from the upstream URLs (or a zip archive holding it).
Copies and downloads go to a temporary file in the destination folder and are renamed into
place only once their sha256 matches (:func:`graphattn.files.write_atomic`), so a partial or
corrupt file is never used; a corrupt file already in the root is replaced. Where a file's size
is known, a source is refused as soon as it is longer (a mirror copy by its length, before a
byte is read), so a huge or endless source is never read in full.

:func:`read_verified` reads a file into memory and checks it there: what is then parsed (or
unpickled) is exactly the bytes whose sha256 matched, not a file that could change in between.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm.auto import tqdm

from ..files import sha256_file, write_atomic
from .roots import MIRROR_ENV, data_root, resolve_mirror
from .sources import FileSpec, files

__all__ = ["DatasetUnavailableError", "ensure", "fetch", "read_verified", "MAX_ARCHIVE_BYTES"]

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0  # per network read; a dead host fails fast instead of hanging a test run
#: An upstream zip archive (size unknown here) is refused past this many bytes.
MAX_ARCHIVE_BYTES = 256 << 20
_CHUNK = 1 << 20


class DatasetUnavailableError(RuntimeError):
    """Some files of a dataset are neither in the data root, nor in a mirror, nor downloadable."""


def _bounded(chunks: Iterable[bytes], limit: int | None, what: str) -> Iterator[bytes]:
    """``chunks``, stopped with ``ValueError`` as soon as more than ``limit`` bytes came."""
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if limit is not None and seen > limit:
            raise ValueError(f"{what} is larger than the expected {limit} bytes; refused before reading it in full")
        yield chunk


def _verify(chunks: Iterable[bytes], spec: FileSpec, sink=None) -> None:
    """Hash ``chunks`` (handing each to ``sink``); ``ValueError`` unless size and sha256 match ``spec``."""
    h, size = hashlib.sha256(), 0
    for chunk in _bounded(chunks, spec.size, Path(spec.path).name):
        h.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink(chunk)
    if spec.size is not None and size != spec.size:
        raise ValueError(f"{Path(spec.path).name} has {size} bytes, expected {spec.size}")
    if h.hexdigest() != spec.sha256:
        raise ValueError(f"sha256 mismatch for {Path(spec.path).name}: got {h.hexdigest()}, expected {spec.sha256}")


def _write_verified(dest: Path, chunks: Iterable[bytes], spec: FileSpec) -> None:
    """Write ``chunks`` atomically to ``dest``, moved into place only if size and sha256 match
    ``spec``; raise ``ValueError`` (and leave nothing behind) otherwise."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(dest, lambda f: _verify(chunks, spec, f.write))


def _read_file(path: Path, size: int | None = None) -> Iterator[bytes]:
    """The bytes of ``path`` in chunks; a file whose length is not ``size`` is refused unread."""
    if size is not None and (actual := path.stat().st_size) != size:
        raise ValueError(f"{path.name} has {actual} bytes, expected {size}; not read")
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def read_verified(path: str | os.PathLike, spec: FileSpec) -> bytes:
    """The bytes of ``path`` once their size and sha256 match ``spec`` (read once, checked in
    memory: parse or unpickle the returned bytes, never the file again).

    Raises:
        ValueError: the file's size or sha256 differs (the message names the file).
    """
    data = bytearray()
    try:
        _verify(_read_file(Path(path), spec.size), spec, data.extend)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return bytes(data)


def _read_url(url: str, progress: bool, limit: int | None) -> Iterator[bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": "graphattn"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        if limit is not None and total is not None and total > limit:
            raise ValueError(f"announces {total} bytes, more than the expected {limit}; not downloaded")
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                  leave=False, disable=None if progress else True) as bar:
            while chunk := response.read(_CHUNK):
                bar.update(len(chunk))
                yield chunk


_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError and timeouts are OSErrors


def _from_archive(spec: FileSpec, dest: Path, progress: bool, archives: dict[str, zipfile.ZipFile | Exception]) -> None:
    if spec.archive not in archives:
        try:
            data = b"".join(_bounded(_read_url(spec.archive, progress, MAX_ARCHIVE_BYTES), MAX_ARCHIVE_BYTES, spec.archive))
            archives[spec.archive] = zipfile.ZipFile(io.BytesIO(data))
        except (*_NETWORK_ERRORS, ValueError, zipfile.BadZipFile) as e:
            archives[spec.archive] = e
    archive = archives[spec.archive]
    if isinstance(archive, Exception):
        raise archive
    name = Path(spec.path).name
    member = next((m for m in archive.infolist() if m.filename.rsplit("/", 1)[-1] == name), None)
    if member is None:
        raise ValueError(f"no member named {name}")
    if spec.size is not None and member.file_size != spec.size:
        raise ValueError(f"member {name} has {member.file_size} bytes, expected {spec.size}")
    with archive.open(member) as f:
        _write_verified(dest, iter(lambda: f.read(_CHUNK), b""), spec)


def _obtain(spec: FileSpec, dest: Path, mirror: Path | None, progress: bool,
            archives: dict[str, zipfile.ZipFile | Exception], dead_hosts: set[str]) -> str | None:
    """Put a verified copy of ``spec`` at ``dest``; return None on success, else why not.

    A host that could not be reached is not tried again for the other files of the same call,
    so 3000 missing recordings behind a firewall cost one timeout, not 3000.
    """
    reasons = []
    if mirror is not None:
        src = mirror / spec.path
        if src.is_file():
            try:
                _write_verified(dest, _read_file(src, spec.size), spec)
                return None
            except ValueError as e:
                reasons.append(f"mirror copy {src} rejected: {e}")
        else:
            reasons.append(f"not in mirror {mirror}")
    for url in spec.urls:
        host = urllib.parse.urlsplit(url).netloc
        if host in dead_hosts:
            reasons.append(f"{url}: skipped, {host} was unreachable")
            continue
        try:
            _write_verified(dest, _read_url(url, progress, spec.size), spec)
            return None
        except (*_NETWORK_ERRORS, ValueError) as e:
            reasons.append(f"{url}: {e}")
            if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
                dead_hosts.add(host)
    if spec.archive is not None:
        try:
            _from_archive(spec, dest, progress, archives)
            return None
        except (*_NETWORK_ERRORS, ValueError, zipfile.BadZipFile) as e:
            reasons.append(f"{spec.archive}: {e}")
    return "; ".join(reasons) or "no source known"


def _mismatch(spec: FileSpec, dest: Path) -> str | None:
    """Why ``dest`` does not hold exactly ``spec``'s bytes, or ``None`` (a file of the wrong
    length is not hashed)."""
    if not dest.is_file():
        return "is missing" if not dest.exists() else "is not a regular file"
    if spec.size is not None and (size := dest.stat().st_size) != spec.size:
        return f"has the wrong size ({size} bytes, expected {spec.size})"
    return None if sha256_file(dest) == spec.sha256 else "has the wrong sha256"


def ensure(name: str, specs: Iterable[FileSpec], root: Path, mirror: Path | None, progress: bool) -> None:
    """Make each file of ``specs`` present and verified under ``root`` (``name`` is the dataset,
    for messages); raise :class:`DatasetUnavailableError` listing every file that could not be."""
    todo = []
    for spec in specs:
        dest = root / spec.path
        why = _mismatch(spec, dest)
        if why is None:
            continue
        if dest.exists():
            log.warning("%s: %s %s; replacing it", name, dest, why)
        todo.append(spec)
    if not todo:
        return
    failed: list[tuple[Path, str]] = []
    archives: dict[str, zipfile.ZipFile | Exception] = {}
    dead_hosts: set[str] = set()
    with tqdm(todo, desc=f"{name}: copying / downloading", unit="file", disable=None if progress else True) as bar:
        for spec in bar:
            why = _obtain(spec, root / spec.path, mirror, progress, archives, dead_hosts)
            if why is not None:
                failed.append((root / spec.path, why))
    if failed:
        shown = "\n".join(f"  {path}\n      ({why})" for path, why in failed[:10])
        more = f"\n  ... and {len(failed) - 10} more" if len(failed) > 10 else ""
        raise DatasetUnavailableError(
            f"{name}: {len(failed)} file(s) are missing and could not be copied or downloaded:\n"
            f"{shown}{more}\n"
            f"Put each file at the path shown (it is checked by sha256; the catalogue entry "
            f"graphattn.datasets.get({name!r}).files lists them with their URLs), or point "
            f"${MIRROR_ENV} (or mirror=) at a folder holding them under the same relative paths."
        )


def fetch(name: str, root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
          progress: bool = True) -> Path:
    """Make every file of dataset ``name`` present and sha256-verified in the data root.

    Returns the data root; the files lie at ``root / spec.path`` for ``spec`` in
    ``get(name).files``. Raises :class:`DatasetUnavailableError` listing what is missing, and
    ``ValueError`` for an unknown name.
    """
    specs = files(name)
    root = data_root(root)
    ensure(name, specs, root, resolve_mirror(mirror), progress)
    return root
