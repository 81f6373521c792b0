"""Datasets: where each comes from (:mod:`.sources`, :mod:`.catalogue`), how its files are
obtained and checked (:mod:`.fetch`), how it loads (:mod:`.loaders`, :mod:`.zinc`,
:mod:`.peptides`, :mod:`.shchur`), and seeded node splits (:mod:`.splits`).

Every file a loader reads is listed with its sha256 (and size) in :mod:`.sources`. :func:`fetch`
makes the files present in a writable *data root*, taking them, in this order, from the root
itself (if the checksum matches), from an offline *mirror* folder, and from the upstream URLs.
Copies and downloads go to a temporary file in the destination folder and are renamed into
place only once their sha256 matches, so a partial or corrupt file is never used; a corrupt
file already in the root is replaced. Nothing is unpickled before its sha256 matched a value
shipped in the package, and PyG's dataset classes run on verified copies in a private folder,
so nothing written into the data root can make a load run code (:mod:`.private`).

Data root: ``root=`` argument, else ``$GRAPHATTN_DATA``, else ``datasets/`` in the repository
checkout, else ``~/.cache/graphattn``. Mirror: ``mirror=`` argument, else ``$GRAPHATTN_MIRROR``;
it is only read and uses the same relative paths as the data root.
"""

from .catalogue import CATALOGUE, DatasetInfo, get
from .fetch import DatasetUnavailableError, fetch
from .graphset import GraphSet
from .loaders import FSDDSplit, MNISTSplit, TRECSplit, load_fsdd, load_mnist, load_planetoid, load_trec, load_tudataset
from .peptides import load_peptides_func
from .roots import data_root
from .shchur import load_shchur
from .sources import FileSpec
from .splits import SplitMasks, per_class_split_masks, random_split_masks
from .synthetic import load_sbm, sbm_graph
from .zinc import load_zinc

__all__ = [
    "CATALOGUE", "DatasetInfo", "DatasetUnavailableError", "FSDDSplit", "FileSpec", "GraphSet",
    "MNISTSplit", "SplitMasks", "TRECSplit", "data_root", "fetch", "get", "load_fsdd", "load_mnist",
    "load_peptides_func", "load_planetoid", "load_sbm", "load_shchur", "load_trec", "load_tudataset",
    "load_zinc", "per_class_split_masks", "random_split_masks", "sbm_graph",
]
