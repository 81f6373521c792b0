"""Where every file a loader reads comes from: its path, sha256, size and upstream URLs.

Pure data, the bottom of the package: :data:`FILES` maps a lower-case dataset name to its
:class:`FileSpec` tuple (empty for generated graphs and for datasets an optional package
downloads itself); :func:`files` looks one up. The FSDD recordings' digests and sizes are
package data (``fsdd.tsv`` beside this file). Every sha256 here is a value shipped in the
package: a file is used, and anything in it unpickled, only once its bytes match it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

__all__ = ["FILES", "FileSpec", "PLANETOID_NAMES", "SHCHUR_NAMES", "files"]

PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
#: catalogue name -> (PyG class name, PyG dataset name, file in the mirror's ``npz-graphdata/``)
SHCHUR_NAMES = {"amazon-computers": ("Amazon", "Computers", "amazon_cs.npz"),
                "amazon-photo": ("Amazon", "Photo", "amazon_photo.npz"),
                "coauthor-cs": ("Coauthor", "CS", "coauthor_cs.npz"),
                "coauthor-physics": ("Coauthor", "Physics", "coauthor_phy.npz")}


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    Args:
        path: location relative to the data root (and to a mirror), e.g. ``"text/trec/TREC_10.label"``.
        sha256: hex digest of the exact upstream bytes.
        urls: direct download locations, tried in order.
        archive: URL of a zip archive holding a member with the same file name (used when the
            upstream only publishes an archive without checksum: the member is what is verified).
        size: the file's length in bytes where known; a copy or download is cut off (and
            refused) as soon as it grows past it, so a huge or endless source is never read in full.
    """

    path: str
    sha256: str
    urls: tuple[str, ...] = ()
    archive: str | None = None
    size: int | None = None


def _github(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


_PLANETOID_COMMIT = "af6abf468a772cc055bec88c52e4d6f51b7c37e3"
_PLANETOID_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
_PLANETOID = {  # (sha256, bytes) per suffix, in _PLANETOID_SUFFIXES order
    "cora": (("23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab", 22119),
             ("b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a", 148025),
             ("9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543", 257305),
             ("94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1", 4054),
             ("41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad", 28135),
             ("2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71", 47959),
             ("58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d", 59847),
             ("297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875", 5000)),
    "citeseer": (("d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6", 31087),
                 ("539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21", 260321),
                 ("2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668", 595021),
                 ("8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924", 3014),
                 ("55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce", 24135),
                 ("f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95", 55623),
                 ("d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7", 61987),
                 ("2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4", 5000)),
    # Not in the offline mirror. These digests are recorded identically by three independent
    # public projects that verify their downloads from kimiyoung/planetoid (whose Cora and
    # CiteSeer digests equal the mirror's); they were not recomputed from the bytes here, and
    # the sizes are not known here.
    "pubmed": tuple((sha, None) for sha in (
        "fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33",
        "4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d",
        "508e538e2abdccdd54c4d3e9f49d638b4af7107d85845f66ddea5a5152658b7e",
        "e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3",
        "ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd",
        "0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e",
        "5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9",
        "b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5")),
}


def _planetoid(key: str) -> tuple[FileSpec, ...]:
    name = PLANETOID_NAMES[key]
    latest = "https://github.com/kimiyoung/planetoid/raw/master/data/"  # PyG's Planetoid.url
    return tuple(
        FileSpec(f"planetoid/{name}/raw/ind.{key}.{suffix}", sha,
                 (_github("kimiyoung/planetoid", _PLANETOID_COMMIT, f"data/ind.{key}.{suffix}"),
                  f"{latest}ind.{key}.{suffix}"), size=size)
        for suffix, (sha, size) in zip(_PLANETOID_SUFFIXES, _PLANETOID[key], strict=True))


_MUTAG_ZIP = "https://www.chrsmrrs.com/graphkerneldatasets/MUTAG.zip"
_MUTAG = {
    "MUTAG_A.txt": ("d9656ca7493f3445d737c711710bb36fd432dddd1c0ea32e1d4713c86ebd28e2", 76940),
    "MUTAG_edge_labels.txt": ("4669ce755075ff86c3240709345745886400908fa637a49310459b9c267b3e56", 14884),
    "MUTAG_graph_indicator.txt": ("7d520a4d6c7961c0cdeabe076d8fe27e795b6d373485c9a2b744987e560a2056", 11532),
    "MUTAG_graph_labels.txt": ("a1518ea39ba3426bd42f57396b9c4baffe68e9adc718caeeab0119c6591a5f2c", 439),
    "MUTAG_node_labels.txt": ("678f429965490e84dd27713017538c995fc05d1621beac910848b600015ee863", 6742),
    "README.txt": ("66de65e4826e112482ec680bbbdf7c0af56d826ce935c110786d130b79b76b06", 2611),
}

_TREC_URLS = ("https://cogcomp.seas.upenn.edu/Data/QA/QC/", "https://cogcomp.cs.illinois.edu/Data/QA/QC/")
_TREC_GITHUB = ("tstuessi/question-type", "6bd36de659b7c5059b1f9bf90d5eb9ad4d15b027")
_TREC = {
    "train_5500.label": ("9e4c8bdcaffb96ed61041bd64b564183d52793a8e91d84fc3a8646885f466ec3", 335858),
    "TREC_10.label": ("033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e", 23354),
}
_TREC_GITHUB_NAMES = {"train_5500.label": "data/train_5500.label.txt", "TREC_10.label": "data/test_TREC_10.label.txt"}

_FSDD = ("Jakobovski/free-spoken-digit-dataset", "26eb9aaf76e81b692f806f9140c2d2777410d7a1")


def _fsdd() -> tuple[FileSpec, ...]:
    manifest = resources.files(__package__).joinpath("fsdd.tsv").read_text()
    specs = []
    for line in manifest.splitlines():
        sha, size, path = line.split("\t")
        specs.append(FileSpec(path, sha, (_github(*_FSDD, path.removeprefix("fsdd/")),), size=int(size)))
    return tuple(specs)


_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/",
               "http://yann.lecun.com/exdb/mnist/")
_MNIST = {  # the digests published by TFDS / Keras for the canonical files, and their sizes
    "train-images-idx3-ubyte.gz": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
    "train-labels-idx1-ubyte.gz": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
    "t10k-images-idx3-ubyte.gz": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
    "t10k-labels-idx1-ubyte.gz": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
}

# ZINC-12k as a plain-text export of PyG's ZINC(subset=True) (graphs 0-9999 train, then val,
# test) and benchmarking-gnns' split index files; both byte-checked against their git blobs.
_ZINC_TEXT = ("fseiffarth/RuleGNN", "b91cac67392ea6c6cfb02d89b991e8db6be9636a", "Data/RealWorldGraphs/ZINC/raw/")
_ZINC_INDEX = ("graphdeeplearning/benchmarking-gnns", "b6c407712fa576e9699555e1e035d1e327ccae6c", "data/molecules/")
_ZINC = {
    "ZINC_Nodes.txt": ("baf64a622e7c3f7ea02dc7eca7d48ebd9c27cc1dd30f29248b21aab7451cb553", 2680904, _ZINC_TEXT),
    "ZINC_Edges.txt": ("dbeb1471ca61938333370f3490a28a00657c96f011496ccc8272c4f49d34a03d", 3648947, _ZINC_TEXT),
    "ZINC_Labels.txt": ("cd7d8cfd2c2200c553f4100e833e4865fc851f552793e5d53fd9121cda782727", 292178, _ZINC_TEXT),
    "train.index": ("575d6acd72ac207a95947e2bdd16411ef6fc3faa88c2f55a2c496ea43022a6d8", 65110, _ZINC_INDEX),
    "val.index": ("fe48c38157f0d38e7fc441903a143392eda080511a79e8fb8f60f5c1b0a9c164", 5541, _ZINC_INDEX),
    "test.index": ("6aa50d98976044fb36089afef5b4c991b429ca1c8e009d33a0319e42a2d9b525", 4782, _ZINC_INDEX),
}

# LRGB's files (their MD5s equal the ones the LRGB / GraphGPS loaders declare); the GitHub copy
# is byte-identical.
_PEPTIDES_GITHUB = ("benfinkelshtein/CoGNN", "2494bd77a0eab6328af36b860aa2d61854f6f9e8", "datasets/peptides-functional/")
_PEPTIDES = {
    "peptide_multi_class_dataset.csv.gz": ("e314f7dfb1ac46ef83fe5f5aa4fe502ad4527da633b64e6b997cb0c452511de3", 769970,
                                           "https://www.dropbox.com/s/ol2v01usvaxbsr8/peptide_multi_class_dataset.csv.gz?dl=1"),
    "splits_random_stratified_peptide.pickle": (
        "4573079852cce8867ad2d734c5dd22d77538bbe9f628223a8d4b3b531f6fffd0", 124533,
        "https://www.dropbox.com/s/j4zcnx2eipuo0xz/splits_random_stratified_peptide.pickle?dl=1"),
}

# Shchur et al.'s graphs as re-saved by EdisonLeeeee/GraphData (MIT): the same arrays as
# shchur/gnn-benchmark's npz files, held as scipy matrices in object arrays (so they are
# unpickled, after this sha256 matched).
_GRAPHDATA = ("EdisonLeeeee/GraphData", "f8022c26b917346f2a461ffec0ec5ae24b36de68", "datasets/")
_SHCHUR = {
    "amazon_cs.npz": ("a6942db609f196b53503d91b99a02ad8d052d5d9be8ef41db976fb65f66ed1f3", 3410531),
    "amazon_photo.npz": ("bdb98b54cd3125bfa69b23ba0aae84fabcb770c6727175b8f6eb1d64f3be4b2b", 1772672),
    "coauthor_cs.npz": ("7b7b51bf270d341f1c4231834c58a526bb04db003fd76a6d2f51ad7d252005ed", 2800548),
    "coauthor_phy.npz": ("1c930d99910763bc5f0c1aa90e8baa945f5ad6027663fe5332d0f08fde33cd7d", 3772032),
}


def _shchur(file: str) -> tuple[FileSpec, ...]:
    sha, size = _SHCHUR[file]
    repo, commit, folder = _GRAPHDATA
    return (FileSpec(f"npz-graphdata/{file}", sha, (_github(repo, commit, folder + file),), size=size),)


FILES: dict[str, tuple[FileSpec, ...]] = {
    **{key: _planetoid(key) for key in PLANETOID_NAMES},
    **{name: () for name in ("sbm-10k", "sbm-100k", "sbm-1m", "ogbn-arxiv")},
    "mutag": tuple(FileSpec(f"TUDataset/MUTAG/raw/{f}", sha, archive=_MUTAG_ZIP, size=size)
                   for f, (sha, size) in _MUTAG.items()),
    "trec": tuple(FileSpec(f"text/trec/{f}", sha, (*(u + f for u in _TREC_URLS), _github(*_TREC_GITHUB, _TREC_GITHUB_NAMES[f])),
                           size=size) for f, (sha, size) in _TREC.items()),
    "fsdd": _fsdd(),
    "mnist": tuple(FileSpec(f"mnist/raw/{f}", sha, tuple(u + f for u in _MNIST_URLS), size=size)
                   for f, (sha, size) in _MNIST.items()),
    "zinc": tuple(FileSpec(f"ZINC/subset-text/{f}", sha, (_github(repo, commit, folder + f),), size=size)
                  for f, (sha, size, (repo, commit, folder)) in _ZINC.items()),
    "peptides-func": tuple(FileSpec(f"peptides-func/{f}", sha, (_github(*_PEPTIDES_GITHUB[:2], _PEPTIDES_GITHUB[2] + f), url),
                                    size=size) for f, (sha, size, url) in _PEPTIDES.items()),
    **{name: _shchur(file) for name, (_, _, file) in SHCHUR_NAMES.items()},
}


def files(name: str) -> tuple[FileSpec, ...]:
    """The files of dataset ``name`` (case-insensitive); ``ValueError`` listing the known names if unknown."""
    specs = FILES.get(str(name).lower())
    if specs is None:
        raise ValueError(f"unknown dataset name={name!r}; expected one of {sorted(FILES)}")
    return specs
