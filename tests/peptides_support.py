"""A small Peptides-func mirror for tests: the first peptides of the real files and a split of them,
whose digests are shipped in place of the real ones, so the loader runs its own code path on a few
molecules."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np

from graphattn.datasets import sources


def peptides_mirror(mirror: Path, folder: Path, monkeypatch, sizes: tuple[int, int, int]) -> Path:
    """A mirror under ``folder`` holding the first ``sum(sizes)`` peptides of ``mirror``'s files,
    split in order into ``sizes`` (train, val, test); the catalogue's digests are patched to its
    files' for the test (``monkeypatch``). Returns the mirror's root."""
    count = sum(sizes)
    lines = gzip.decompress((mirror / "peptides-func" / "peptide_multi_class_dataset.csv.gz").read_bytes()).splitlines()
    target = folder / "peptides-func"
    target.mkdir(parents=True)
    csv = gzip.compress(b"\n".join(lines[:count + 1]) + b"\n", mtime=0)
    cuts = np.cumsum([0, *sizes])
    split = pickle.dumps({name: np.arange(cuts[i], cuts[i + 1]) for i, name in enumerate(("train", "val", "test"))})
    specs = []
    for spec, data in zip(sources.files("peptides-func"), (csv, split)):
        (target / spec.path.rsplit("/", 1)[-1]).write_bytes(data)
        specs.append(sources.FileSpec(spec.path, hashlib.sha256(data).hexdigest(), size=len(data)))
    monkeypatch.setitem(sources.FILES, "peptides-func", tuple(specs))
    return folder
