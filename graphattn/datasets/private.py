"""Running PyG's dataset classes so that nothing in the data root can make them run code.

PyG's ``Dataset`` unpickles ``processed/pre_transform.pt`` and ``pre_filter.pt`` with full
pickle whenever they exist, and falls back to full pickle for a processed file that
``weights_only`` refuses; its raw readers unpickle files too (Planetoid's ``ind.*``). So whoever
can write the data root could make a load execute code through a forged file and a rewritten
checksum list beside it. Here PyG never sees the data root: :func:`build_privately` copies the
sha256-verified raw files (checked in memory against values shipped in the package, then
written) into a fresh folder that only this user can enter (``tempfile.mkdtemp``, mode 0700,
in the system's temporary folder, whose sticky bit stops others renaming it), lets PyG process
them there, and removes the folder. Nothing PyG reads was written by anyone but this call,
and no processed cache is kept in the data root (Cora, MUTAG or a Shchur graph process in
about a second).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from .fetch import read_verified
from .sources import FileSpec

__all__ = ["build_privately"]

T = TypeVar("T")
_PYG_CHATTER = {"Processing...", "Done!"}  # printed by PyG on every process(): every load here


def build_privately(root: Path, specs: Iterable[FileSpec], build: Callable[[Path], T], *, under: str = "",
                    extra: Callable[[Path], object] | None = None) -> T:
    """``build(folder)`` on a private folder holding verified copies of ``specs``.

    Args:
        root: the data root holding the files (already made present by ``fetch``).
        specs: the files to copy; each lands at ``folder / spec.path`` with the prefix ``under``
            removed (so ``under="planetoid/"`` puts ``planetoid/Cora/raw/...`` at ``Cora/raw/...``).
        build: called with the private folder (e.g. ``lambda d: Planetoid(str(d), "Cora")``); its
            result is returned once the folder is removed, so it must hold its data in memory
            (PyG's ``InMemoryDataset`` does).
        extra: called with the folder after the copies, to write files derived from verified
            bytes (a converted npz).

    Raises:
        ValueError: a file's size or sha256 no longer matches (the message names it).
    """
    folder = Path(tempfile.mkdtemp(prefix="graphattn-build-"))
    try:
        for spec in specs:
            dest = folder / spec.path.removeprefix(under)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(read_verified(root / spec.path, spec))
        if extra is not None:
            extra(folder)
        chatter = io.StringIO()
        with contextlib.redirect_stderr(chatter):
            result = build(folder)
        for line in chatter.getvalue().splitlines():
            if line.strip() not in _PYG_CHATTER:
                print(line, file=sys.stderr)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)
