"""The catalogue: every file a loader reads, with its upstream URLs and its sha256.

:data:`CATALOGUE` maps a lower-case name to a :class:`DatasetInfo`; :func:`get` looks one up.
The FSDD recordings' digests are package data (``fsdd.sha256`` beside this file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

__all__ = ["CATALOGUE", "DatasetInfo", "FileSpec", "PLANETOID_NAMES", "get"]

PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    Args:
        path: location relative to the data root (and to a mirror), e.g. ``"text/trec/TREC_10.label"``.
        sha256: hex digest of the exact upstream bytes.
        urls: direct download locations, tried in order.
        archive: URL of a zip archive holding a member with the same file name (used when the
            upstream only publishes an archive without checksum: the member is what is verified).
    """

    path: str
    sha256: str
    urls: tuple[str, ...] = ()
    archive: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """A catalogue entry: what the dataset is, where it comes from, its files and its loader."""

    name: str
    modality: str
    source: str
    licence: str
    files: tuple[FileSpec, ...] = field(repr=False)
    loader: Callable = field(repr=False)
    returns: str = ""



def _loader(name: str, *args: object) -> Callable:
    """``loaders.<name>`` with ``args`` first, imported when called (the loaders import this module)."""
    def load(**kwargs):
        from . import loaders

        return getattr(loaders, name)(*args, **kwargs)

    load.__name__ = load.__qualname__ = name
    return load


def get(name: str) -> DatasetInfo:
    """The catalogue entry for ``name`` (case-insensitive); ``ValueError`` if unknown."""
    info = CATALOGUE.get(str(name).lower())
    if info is None:
        raise ValueError(f"unknown dataset name={name!r}; expected one of {sorted(CATALOGUE)}")
    return info



_PLANETOID_COMMIT = "af6abf468a772cc055bec88c52e4d6f51b7c37e3"
_PLANETOID_SHA256 = {
    "cora": ("23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
             "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
             "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
             "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
             "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
             "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
             "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
             "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875"),
    "citeseer": ("d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
                 "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
                 "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
                 "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
                 "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
                 "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
                 "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
                 "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4"),
    # Not in the offline mirror. These digests are recorded identically by three independent
    # public projects that verify their downloads from kimiyoung/planetoid (whose Cora and
    # CiteSeer digests equal the mirror's); they were not recomputed from the bytes here.
    "pubmed": ("fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33",
               "4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d",
               "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e",
               "e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3",
               "ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd",
               "0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e",
               "5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9",
               "b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5"),
}
_PLANETOID_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def _planetoid(key: str) -> DatasetInfo:
    name = PLANETOID_NAMES[key]
    pinned = f"https://raw.githubusercontent.com/kimiyoung/planetoid/{_PLANETOID_COMMIT}/data/"
    latest = "https://github.com/kimiyoung/planetoid/raw/master/data/"  # PyG's Planetoid.url
    files = tuple(
        FileSpec(f"planetoid/{name}/raw/ind.{key}.{suffix}", sha,
                 (f"{pinned}ind.{key}.{suffix}", f"{latest}ind.{key}.{suffix}"))
        for suffix, sha in zip(_PLANETOID_SUFFIXES, _PLANETOID_SHA256[key], strict=True))
    return DatasetInfo(
        name, "graph (citation network), node classification",
        "https://github.com/kimiyoung/planetoid (Yang et al. 2016); collection: https://linqs.org/datasets/",
        "MIT (kimiyoung/planetoid); LINQS data for research, cite Sen et al. 2008",
        files, _loader("load_planetoid", name), "torch_geometric.datasets.Planetoid (public split)")


_MUTAG_ZIP = "https://www.chrsmrrs.com/graphkerneldatasets/MUTAG.zip"
_MUTAG = {
    "MUTAG_A.txt": "d9656ca7493f3445d737c711710bb36fd432dddd1c0ea32e1d4713c86ebd28e2",
    "MUTAG_edge_labels.txt": "4669ce755075ff86c3240709345745886400908fa637a49310459b9c267b3e56",
    "MUTAG_graph_indicator.txt": "7d520a4d6c7961c0cdeabe076d8fe27e795b6d373485c9a2b744987e560a2056",
    "MUTAG_graph_labels.txt": "a1518ea39ba3426bd42f57396b9c4baffe68e9adc718caeeab0119c6591a5f2c",
    "MUTAG_node_labels.txt": "678f429965490e84dd27713017538c995fc05d1621beac910848b600015ee863",
    "README.txt": "66de65e4826e112482ec680bbbdf7c0af56d826ce935c110786d130b79b76b06",
}

_TREC_URLS = ("https://cogcomp.seas.upenn.edu/Data/QA/QC/", "https://cogcomp.cs.illinois.edu/Data/QA/QC/")
_TREC_GITHUB = ("https://raw.githubusercontent.com/tstuessi/question-type/"
                "6bd36de659b7c5059b1f9bf90d5eb9ad4d15b027/data/")
_TREC = {
    "train_5500.label": "9e4c8bdcaffb96ed61041bd64b564183d52793a8e91d84fc3a8646885f466ec3",
    "TREC_10.label": "033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e",
}

_FSDD_RAW = ("https://raw.githubusercontent.com/Jakobovski/free-spoken-digit-dataset/"
             "26eb9aaf76e81b692f806f9140c2d2777410d7a1/")


def _fsdd_files() -> tuple[FileSpec, ...]:
    manifest = resources.files(__package__).joinpath("fsdd.sha256").read_text()
    specs = []
    for line in manifest.splitlines():
        sha, path = line.split(maxsplit=1)
        specs.append(FileSpec(path, sha, (_FSDD_RAW + path.removeprefix("fsdd/"),)))
    return tuple(specs)


_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/",
               "http://yann.lecun.com/exdb/mnist/")
_MNIST = {  # the digests published by TFDS / Keras for the canonical files
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

def _sbm(name: str) -> DatasetInfo:
    from .synthetic import SBM_OPTIONS, SBM_SIZES

    arguments = ", ".join(f"{k}={v!r}" for k, v in {"num_nodes": SBM_SIZES[name], **SBM_OPTIONS}.items())
    return DatasetInfo(
        name, "graph (synthetic homophilous stochastic block model), node classification",
        f"generated on first use by graphattn.datasets.synthetic.sbm_graph({arguments}); "
        "cached with the sha256 of what was generated", "generated here: no licence",
        (), _loader("load_sbm", name), "torch_geometric Data(x, y, edge_index, train/val/test_mask)")


CATALOGUE: dict[str, DatasetInfo] = {
    **{key: _planetoid(key) for key in PLANETOID_NAMES},
    **{name.lower(): _sbm(name) for name in ("SBM-10k", "SBM-100k", "SBM-1M")},
    # Downloaded and unpacked by the optional `ogb` package itself (its own URL; it publishes no
    # checksum, so none is recorded here). Not run on these offline machines.
    "ogbn-arxiv": DatasetInfo(
        "ogbn-arxiv", "graph (citation network, 169k nodes), node classification",
        "https://ogb.stanford.edu/docs/nodeprop/#ogbn-arxiv (Hu et al. 2020), via `pip install ogb`",
        "ODC-BY (Microsoft Academic Graph)", (), _loader("load_ogbn_arxiv"),
        "torch_geometric Data(x, y, edge_index, train/val/test_mask) with OGB's time split"),
    "mutag": DatasetInfo(
        "MUTAG", "graphs (molecules), graph classification",
        "https://chrsmrrs.github.io/datasets/ (TUDataset, Morris et al. 2020)",
        "no explicit licence; cite Morris et al. 2020 and Debnath et al. 1991",
        tuple(FileSpec(f"TUDataset/MUTAG/raw/{f}", sha, archive=_MUTAG_ZIP) for f, sha in _MUTAG.items()),
        _loader("load_tudataset"), "torch_geometric.datasets.TUDataset"),
    "trec": DatasetInfo(
        "TREC", "text, question classification",
        "https://cogcomp.seas.upenn.edu/Data/QA/QC/ (Li & Roth 2002)",
        "no licence stated; research use, cite Li & Roth 2002 and Hovy et al. 2001",
        tuple(FileSpec(f"text/trec/{f}", sha, (*(u + f for u in _TREC_URLS), _TREC_GITHUB + f + ".txt"))
              for f, sha in _TREC.items()),
        _loader("load_trec"), "TRECSplit(examples=[(text, coarse_label)], classes)"),
    "fsdd": DatasetInfo(
        "FSDD", "speech, 8 kHz mono WAV, spoken digit classification",
        "https://github.com/Jakobovski/free-spoken-digit-dataset",
        "CC BY-SA 4.0", _fsdd_files(), _loader("load_fsdd"),
        "FSDDSplit(waveforms=[float tensors in [-1, 1]], labels, sample_rate=8000)"),
    "mnist": DatasetInfo(
        "MNIST", "images, 28x28 grayscale digit classification",
        "http://yann.lecun.com/exdb/mnist/ (LeCun, Cortes, Burges)",
        "research use, no explicit licence (CC BY-SA 3.0 is often cited)",
        tuple(FileSpec(f"mnist/raw/{f}", sha, tuple(u + f for u in _MNIST_URLS))
              for f, sha in _MNIST.items()),
        _loader("load_mnist"), "MNISTSplit(images uint8 [N, 28, 28], labels, source)"),
}
