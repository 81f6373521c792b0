"""Datasets: where each comes from (:mod:`.catalogue`), how its files are obtained and checked
(:mod:`.fetch`), how it loads (:mod:`.loaders`).

Every file a loader reads is listed in :data:`CATALOGUE` with its sha256. :func:`fetch` makes
the files present in a writable *data root*, taking them, in this order, from the root itself
(if the checksum matches), from an offline *mirror* folder, and from the upstream URLs. Copies
and downloads go to a temporary file in the destination folder and are renamed into place only
once their sha256 matches, so a partial or corrupt file is never used; a corrupt file already in
the root is replaced. The loaders then read the verified files (graph datasets through PyG's own
``Planetoid`` / ``TUDataset``, which find their raw files in place and do not download).

Data root: ``root=`` argument, else ``$GRAPHATTN_DATA``, else ``datasets/`` in the repository
checkout, else ``~/.cache/graphattn``. Mirror: ``mirror=`` argument, else ``$GRAPHATTN_MIRROR``;
it is only read and uses the same relative paths as the data root.
"""

from .catalogue import CATALOGUE, DatasetInfo, FileSpec, get
from .fetch import DatasetUnavailableError, data_root, fetch
from .loaders import FSDDSplit, MNISTSplit, TRECSplit, load_fsdd, load_mnist, load_planetoid, load_trec, load_tudataset
from .synthetic import load_sbm, sbm_graph

__all__ = [
    "CATALOGUE", "DatasetInfo", "DatasetUnavailableError", "FSDDSplit", "FileSpec",
    "MNISTSplit", "TRECSplit", "data_root", "fetch", "get", "load_fsdd", "load_mnist",
    "load_planetoid", "load_sbm", "load_trec", "load_tudataset", "sbm_graph",
]
