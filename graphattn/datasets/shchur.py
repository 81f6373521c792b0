"""Amazon Computers / Photo and Coauthor CS / Physics (Shchur et al., "Pitfalls of Graph Neural
Network Evaluation", 2018) through PyG's ``Amazon`` / ``Coauthor`` classes.

The source is EdisonLeeeee/GraphData's copy of Shchur's npz files (offline mirror, or downloaded
from its pinned commit), verified by its full sha256. Its arrays are scipy CSR matrices inside
object arrays: they are unpickled only after the sha256 matched, and then by a restricted
unpickler that resolves numpy and scipy CSR classes only (:mod:`.unpickle`). They are written
in the layout PyG reads (``adj_data, adj_indices, adj_indptr, adj_shape, attr_data,
attr_indices, attr_indptr, attr_shape, labels``, no object arrays) as ``<Name>/raw/<Shchur's file
name>`` in a private folder, where PyG's class processes them (:mod:`.private`); no processed
cache is kept in the data root, so each load converts again (about a second; Physics' dense
``x`` is 1.2 GB).

PyG's own download of Shchur's original files is not used: only the first 32 bits of their
sha256 (and their sizes) are known here, which proves no more than the absence of an accident.

No split is published: use :func:`~graphattn.datasets.splits.random_split_masks` (60 / 20 / 20)
or :func:`~graphattn.datasets.splits.per_class_split_masks` (20 + 30 per class).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse

from .fetch import fetch, read_verified
from .private import build_privately
from .sources import SHCHUR_NAMES, files
from .unpickle import load_npz_objects

__all__ = ["load_shchur", "SHCHUR_COUNTS"]

#: name -> (nodes, directed edges, features, classes) as PyG documents them
SHCHUR_COUNTS = {"amazon-computers": (13752, 491722, 767, 10), "amazon-photo": (7650, 238162, 745, 8),
                 "coauthor-cs": (18333, 163788, 6805, 15), "coauthor-physics": (34493, 495924, 8415, 5)}
_PYG_FILES = {"amazon-computers": "Computers/raw/amazon_electronics_computers.npz",
              "amazon-photo": "Photo/raw/amazon_electronics_photo.npz",
              "coauthor-cs": "CS/raw/ms_academic_cs.npz", "coauthor-physics": "Physics/raw/ms_academic_phy.npz"}


def _csr(value: object, what: str) -> scipy.sparse.csr_matrix:
    if not isinstance(value, (scipy.sparse.csr_matrix, np.ndarray)):
        raise ValueError(f"{what} is a {type(value).__name__}, expected a scipy CSR matrix or an array")
    return scipy.sparse.csr_matrix(value)


def _pyg_layout(source: bytes, what: str) -> bytes:
    """GraphData's npz (``adj_matrix``, ``node_attr``, ``node_label``) as the npz PyG's
    ``read_npz`` reads, with int64 labels."""
    arrays = load_npz_objects(source, what)
    missing = {"adj_matrix", "node_attr", "node_label"} - set(arrays)
    if missing:
        raise ValueError(f"{what} lacks {sorted(missing)}")
    adj, attr = _csr(arrays["adj_matrix"], f"{what}: adj_matrix"), _csr(arrays["node_attr"], f"{what}: node_attr")
    labels = np.asarray(arrays["node_label"]).astype(np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=np.array(adj.shape),
             attr_data=attr.data, attr_indices=attr.indices, attr_indptr=attr.indptr, attr_shape=np.array(attr.shape),
             labels=labels)
    return buffer.getvalue()


def load_shchur(name: str, root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
                transform: Callable | None = None, *, progress: bool = True):
    """``"Amazon-Computers"``, ``"Amazon-Photo"``, ``"Coauthor-CS"`` or ``"Coauthor-Physics"``
    (case-insensitive) as PyG's ``Amazon(root, "Computers")`` etc. build it.

    Returns:
        the PyG ``Amazon`` / ``Coauthor`` dataset: one graph ``Data(x [N, F] float32 binary
        bag-of-words, edge_index [2, E] undirected without self-loops, y [N] long)``, with the
        counts of :data:`SHCHUR_COUNTS` (Computers: 13,752 nodes, 491,722 directed edges, 767
        features, 10 classes). It has no masks: see the module docstring for splits.

    Raises:
        ValueError: ``name`` is not one of the four.
        DatasetUnavailableError: the file is neither in the root, the mirror nor downloadable.
    """
    key = str(name).lower()
    if key not in SHCHUR_NAMES:
        raise ValueError(f"name={name!r} is not a Shchur et al. graph; expected one of "
                         f"{[f'{c}-{n}' for c, n, _ in SHCHUR_NAMES.values()]}")
    cls_name, pyg_name, _ = SHCHUR_NAMES[key]
    from torch_geometric import datasets as pyg_datasets

    cls = getattr(pyg_datasets, cls_name)
    path = fetch(key, root, mirror, progress)
    (spec,) = files(key)

    def convert(folder: Path) -> None:
        converted = folder / _PYG_FILES[key]
        converted.parent.mkdir(parents=True)
        converted.write_bytes(_pyg_layout(read_verified(path / spec.path, spec), spec.path))

    return build_privately(path, (), extra=convert, build=lambda folder: cls(str(folder), pyg_name, transform=transform))
