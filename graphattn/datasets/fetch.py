"""Making a dataset's files present and verified: from the data root, an offline mirror, or upstream.

:func:`fetch` takes each file of a catalogue entry, in this order, from the data root itself
(if its sha256 matches), from the mirror, and from the upstream URLs (or a zip archive holding
it). Copies and downloads go to a temporary file in the destination folder and are renamed into
place only once their sha256 matches (:func:`graphattn.files.write_atomic`), so a partial or
corrupt file is never used; a corrupt file already in the root is replaced.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

from ..checks import check_path
from ..files import sha256_file, write_atomic
from .catalogue import DatasetInfo, FileSpec, get

__all__ = ["DatasetUnavailableError", "data_root", "resolve_mirror", "ensure", "fetch", "verified_processed",
           "DATA_ENV", "MIRROR_ENV", "PROCESSED_RECORD"]

log = logging.getLogger(__name__)

DATA_ENV = "GRAPHATTN_DATA"
MIRROR_ENV = "GRAPHATTN_MIRROR"
TIMEOUT_S = 30.0  # per network read; a dead host fails fast instead of hanging a test run
_CHUNK = 1 << 20
_REPO = Path(__file__).resolve().parents[2]  # graphattn/datasets/fetch.py -> the checkout


class DatasetUnavailableError(RuntimeError):
    """Some files of a dataset are neither in the data root, nor in a mirror, nor downloadable."""



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


def _sha256(path: Path) -> str:
    return sha256_file(path)


def _write_verified(dest: Path, chunks: Iterable[bytes], sha256: str) -> None:
    """Write ``chunks`` atomically to ``dest``, moved into place only if its sha256 matches;
    raise ``ValueError`` (and leave nothing behind) otherwise."""
    dest.parent.mkdir(parents=True, exist_ok=True)

    def write(f) -> None:
        h = hashlib.sha256()
        for chunk in chunks:
            h.update(chunk)
            f.write(chunk)
        if h.hexdigest() != sha256:
            raise ValueError(f"sha256 mismatch for {dest.name}: got {h.hexdigest()}, expected {sha256}")

    write_atomic(dest, write)


def _read_file(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _read_url(url: str, progress: bool) -> Iterator[bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": "graphattn"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                  leave=False, disable=None if progress else True) as bar:
            while chunk := response.read(_CHUNK):
                bar.update(len(chunk))
                yield chunk


_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError and timeouts are OSErrors


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
                _write_verified(dest, _read_file(src), spec.sha256)
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
            _write_verified(dest, _read_url(url, progress), spec.sha256)
            return None
        except (*_NETWORK_ERRORS, ValueError) as e:
            reasons.append(f"{url}: {e}")
            if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
                dead_hosts.add(host)
    if spec.archive is not None:
        if spec.archive not in archives:
            try:
                data = b"".join(_read_url(spec.archive, progress))
                archives[spec.archive] = zipfile.ZipFile(io.BytesIO(data))
            except (*_NETWORK_ERRORS, zipfile.BadZipFile) as e:
                archives[spec.archive] = e
        archive = archives[spec.archive]
        try:
            if isinstance(archive, Exception):
                raise archive
            name = Path(spec.path).name
            member = next((m for m in archive.namelist() if m.rsplit("/", 1)[-1] == name), None)
            if member is None:
                raise ValueError(f"no member named {name}")
            _write_verified(dest, [archive.read(member)], spec.sha256)
            return None
        except (*_NETWORK_ERRORS, ValueError, zipfile.BadZipFile) as e:
            reasons.append(f"{spec.archive}: {e}")
    return "; ".join(reasons) or "no source known"


def ensure(info: DatasetInfo, files: Iterable[FileSpec], root: Path, mirror: Path | None,
            progress: bool) -> None:
    todo = []
    for spec in files:
        dest = root / spec.path
        if dest.is_file():
            if _sha256(dest) == spec.sha256:
                continue
            log.warning("%s: %s has the wrong sha256; replacing it", info.name, dest)
        todo.append(spec)
    if not todo:
        return
    failed: list[tuple[Path, str]] = []
    archives: dict[str, zipfile.ZipFile | Exception] = {}
    dead_hosts: set[str] = set()
    with tqdm(todo, desc=f"{info.name}: copying / downloading", unit="file",
              disable=None if progress else True) as bar:
        for spec in bar:
            why = _obtain(spec, root / spec.path, mirror, progress, archives, dead_hosts)
            if why is not None:
                failed.append((root / spec.path, why))
    if failed:
        shown = "\n".join(f"  {path}\n      ({why})" for path, why in failed[:10])
        more = f"\n  ... and {len(failed) - 10} more" if len(failed) > 10 else ""
        raise DatasetUnavailableError(
            f"{info.name}: {len(failed)} file(s) are missing and could not be copied or downloaded:\n"
            f"{shown}{more}\n"
            f"Put each file at the path shown (it is checked by sha256; the catalogue entry "
            f"graphattn.datasets.get({info.name!r}).files lists them with their URLs), or point "
            f"${MIRROR_ENV} (or mirror=) at a folder holding them under the same relative paths."
        )



def fetch(name: str, root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
          progress: bool = True) -> Path:
    """Make every file of dataset ``name`` present and sha256-verified in the data root.

    Returns the data root; the files lie at ``root / spec.path`` for ``spec`` in
    ``get(name).files``. Raises :class:`DatasetUnavailableError` listing what is missing.
    """
    info = get(name)
    root = data_root(root)
    ensure(info, info.files, root, resolve_mirror(mirror), progress)
    return root


# processed caches ------------------------------------------------------------------------------

#: The file beside a processed cache that records what it was built from and its sha256s.
PROCESSED_RECORD = "graphattn-processed.json"
T = TypeVar("T")


def _processed_files(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())
            if p.is_file() and p.name != PROCESSED_RECORD and not p.name.startswith(".")}


def _processed_ok(folder: Path, raw: dict[str, str]) -> str | None:
    """Why the processed cache in ``folder`` cannot be trusted, or ``None`` if its record matches."""
    try:
        record = json.loads((folder / PROCESSED_RECORD).read_text())
    except FileNotFoundError:
        return f"it has no {PROCESSED_RECORD} (built before caches were checked, or interrupted)"
    except (OSError, ValueError) as err:
        return f"its {PROCESSED_RECORD} cannot be read ({err})"
    if not isinstance(record, dict) or record.get("raw") != raw:
        return "it was built from other raw files"
    files = _processed_files(folder)
    if record.get("files") != files:
        changed = sorted(set(files) ^ set(record.get("files") or {}) |
                         {k for k in files if (record.get("files") or {}).get(k) != files[k]})
        return f"its sha256 does not match the one recorded when it was built ({', '.join(changed)})"
    return None


def verified_processed(processed_dir: str | os.PathLike, raw: Iterable[FileSpec], build: Callable[[], T],
                       name: str = "dataset") -> T:
    """``build()`` a dataset whose processed cache (``processed_dir``, e.g. PyG's ``processed/``)
    is verified first: its files' sha256s, recorded beside it (:data:`PROCESSED_RECORD`) when it
    was built from the sha256-verified ``raw`` files, must still match. If they do not (a changed
    byte, a missing record, other raw files), the cache is removed and rebuilt from the raw files
    by ``build()``, with a warning; then the new record is written.
    """
    folder = Path(processed_dir)
    raw_shas = {spec.path: spec.sha256 for spec in raw}
    fresh = not folder.is_dir()
    if not fresh:
        why = _processed_ok(folder, raw_shas)
        if why is not None:
            log.warning("%s: the processed cache %s is rebuilt from the verified raw files: %s", name, folder, why)
            shutil.rmtree(folder)
            fresh = True
    dataset = build()
    if fresh and folder.is_dir():
        record = json.dumps({"raw": raw_shas, "files": _processed_files(folder)}, indent=1, sort_keys=True)
        write_atomic(folder / PROCESSED_RECORD, lambda f: f.write(record.encode()))
    return dataset

