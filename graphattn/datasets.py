"""The dataset catalogue: where each dataset comes from, how it is checked, how it loads.

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
from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from .files import write_atomic

__all__ = [
    "CATALOGUE", "DatasetInfo", "DatasetUnavailableError", "FSDDSplit", "FileSpec",
    "MNISTSplit", "TRECSplit", "data_root", "fetch", "get", "load_fsdd", "load_mnist",
    "load_planetoid", "load_trec", "load_tudataset",
]

log = logging.getLogger(__name__)

DATA_ENV = "GRAPHATTN_DATA"
MIRROR_ENV = "GRAPHATTN_MIRROR"
TIMEOUT_S = 30.0  # per network read; a dead host fails fast instead of hanging a test run
_CHUNK = 1 << 20
_REPO = Path(__file__).resolve().parent.parent


class DatasetUnavailableError(RuntimeError):
    """Some files of a dataset are neither in the data root, nor in a mirror, nor downloadable."""


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


# ----------------------------------------------------------------------------- fetching


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The writable data root: ``root``, else ``$GRAPHATTN_DATA``, else the repository's
    ``datasets/`` when running from a writable checkout, else ``~/.cache/graphattn``."""
    if root is None:
        root = os.environ.get(DATA_ENV) or None
    if root is not None:
        return Path(root).expanduser()
    checkout = (_REPO / "pyproject.toml").is_file() and (_REPO / "graphattn").is_dir()
    default = _REPO / "datasets"
    if checkout and os.access(default if default.exists() else _REPO, os.W_OK):
        return default
    return Path.home() / ".cache" / "graphattn"


def _mirror(mirror: str | os.PathLike | None) -> Path | None:
    mirror = mirror if mirror is not None else (os.environ.get(MIRROR_ENV) or None)
    return Path(mirror).expanduser() if mirror is not None else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


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


def _ensure(info: DatasetInfo, files: Iterable[FileSpec], root: Path, mirror: Path | None,
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


def get(name: str) -> DatasetInfo:
    """The catalogue entry for ``name`` (case-insensitive); ``ValueError`` if unknown."""
    info = CATALOGUE.get(str(name).lower())
    if info is None:
        raise ValueError(f"unknown dataset name={name!r}; expected one of {sorted(CATALOGUE)}")
    return info


def fetch(name: str, root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
          progress: bool = True) -> Path:
    """Make every file of dataset ``name`` present and sha256-verified in the data root.

    Returns the data root; the files lie at ``root / spec.path`` for ``spec`` in
    ``get(name).files``. Raises :class:`DatasetUnavailableError` listing what is missing.
    """
    info = get(name)
    root = data_root(root)
    _ensure(info, info.files, root, _mirror(mirror), progress)
    return root


# ----------------------------------------------------------------------------- loaders

_PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}


def load_planetoid(name: str, root=None, mirror=None, transform=None, *, progress: bool = True):
    """Cora, CiteSeer or PubMed (name case-insensitive) with the public Planetoid split, as
    ``torch_geometric.datasets.Planetoid(<root>/planetoid, name, split="public")``."""
    from torch_geometric.datasets import Planetoid

    canonical = _PLANETOID_NAMES.get(str(name).lower())
    if canonical is None:
        raise ValueError(f"name={name!r} is not a Planetoid dataset; expected one of "
                         f"{sorted(_PLANETOID_NAMES.values())}")
    path = fetch(canonical, root, mirror, progress)
    return Planetoid(str(path / "planetoid"), canonical, split="public", transform=transform)


def load_tudataset(name: str = "MUTAG", root=None, mirror=None, transform=None, *,
                   progress: bool = True):
    """A TUDataset graph-classification set (only ``"MUTAG"`` is catalogued), as
    ``torch_geometric.datasets.TUDataset(<root>/TUDataset, name)``."""
    from torch_geometric.datasets import TUDataset

    if str(name).upper() != "MUTAG":
        raise ValueError(f"name={name!r} is not a catalogued TUDataset; expected 'MUTAG'")
    path = fetch("MUTAG", root, mirror, progress)
    return TUDataset(str(path / "TUDataset"), "MUTAG", transform=transform)


TREC_CLASSES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")


class TRECSplit(NamedTuple):
    """TREC questions: ``examples[i] = (text, coarse_label)``, label indexing ``classes``."""

    examples: list[tuple[str, int]]
    classes: tuple[str, ...]


def load_trec(split: str = "train", root=None, mirror=None, *, progress: bool = True) -> TRECSplit:
    """TREC question classification (Li & Roth), 5452 train / 500 test questions, 6 coarse classes.

    The files hold one stray non-UTF-8 byte, so they are decoded as latin-1 (every byte kept).
    """
    files = {"train": "train_5500.label", "test": "TREC_10.label"}
    if split not in files:
        raise ValueError(f"split={split!r}; expected 'train' or 'test'")
    path = fetch("trec", root, mirror, progress) / "text" / "trec" / files[split]
    examples = []
    for line in path.read_bytes().decode("latin-1").splitlines():
        label, _, text = line.partition(" ")
        examples.append((text, TREC_CLASSES.index(label.split(":")[0])))
    return TRECSplit(examples, TREC_CLASSES)


class FSDDSplit(NamedTuple):
    """Free Spoken Digit recordings: float waveforms in [-1, 1], digit labels, sample rate (Hz)."""

    waveforms: list[torch.Tensor]
    labels: torch.Tensor
    sample_rate: int


def load_fsdd(split: str = "train", root=None, mirror=None, *, progress: bool = True) -> FSDDSplit:
    """Free Spoken Digit Dataset with the official split: recording index 0-4 is ``"test"``
    (300 files), 5-49 is ``"train"`` (2700). Ordered by (digit, speaker, index)."""
    from scipy.io import wavfile

    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; expected 'train' or 'test'")
    info, root = get("fsdd"), data_root(root)
    keyed = {}  # only this split's files are verified: a test-set load reads 300, not 3000
    for spec in info.files:
        digit, speaker, index = Path(spec.path).stem.split("_")
        if (int(index) < 5) == (split == "test"):
            keyed[(int(digit), speaker, int(index))] = spec
    _ensure(info, keyed.values(), root, _mirror(mirror), progress)
    waveforms, labels, rates = [], [], set()
    for (digit, _, _), spec in sorted(keyed.items()):
        rate, audio = wavfile.read(root / spec.path)
        rates.add(rate)
        waveforms.append(torch.from_numpy(audio.astype(np.float32) / 32768.0))  # int16 -> [-1, 1)
        labels.append(digit)
    if len(rates) != 1:
        raise RuntimeError(f"FSDD recordings have mixed sample rates {sorted(rates)}")
    return FSDDSplit(waveforms, torch.tensor(labels), rates.pop())


class MNISTSplit(NamedTuple):
    """MNIST images ``uint8 [N, 28, 28]``, labels ``int64 [N]``, and which files they came from:
    ``"full"`` (60k train / 10k test) or ``"t10k"`` (the 8000 / 2000 split of the test set)."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str


def _read_idx(path: Path) -> torch.Tensor:
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    return torch.from_numpy(array.copy())


_NO_FULL_MNIST: set[tuple[Path, Path | None]] = set()  # asked once per process, not per call


def load_mnist(split: str = "train", root=None, mirror=None, *, progress: bool = True) -> MNISTSplit:
    """MNIST digits. With the full distribution available: 60000 train / 10000 test.

    When the training files cannot be obtained (the offline mirror holds only t10k), the 10000
    test images are split deterministically: index ``i % 5 == 4`` is ``"test"`` (2000), the rest
    ``"train"`` (8000), which keeps both writer populations of t10k in each half. The result's
    ``source`` says which was used, and a warning is logged. The training files are looked for
    once per process for a given data root and mirror.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}; expected 'train' or 'test'")
    info, root_path, mirror_path = get("mnist"), data_root(root), _mirror(mirror)
    t10k = [s for s in info.files if "t10k" in s.path]
    _ensure(info, t10k, root_path, mirror_path, progress)
    full = (root_path, mirror_path) not in _NO_FULL_MNIST
    if full:
        try:
            _ensure(info, [s for s in info.files if s not in t10k], root_path, mirror_path, progress)
        except DatasetUnavailableError as e:
            log.warning("MNIST training files unavailable, using the 8000/2000 split of t10k:\n%s", e)
            _NO_FULL_MNIST.add((root_path, mirror_path))
            full = False
    prefix = "train" if full and split == "train" else "t10k"
    raw = root_path / "mnist" / "raw"
    images = _read_idx(raw / f"{prefix}-images-idx3-ubyte.gz")  # (N, 28, 28) uint8
    labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte.gz")
    if full:
        return MNISTSplit(images, labels.long(), "full")
    keep = (torch.arange(len(labels)) % 5 == 4) == (split == "test")
    return MNISTSplit(images[keep], labels[keep].long(), "t10k")


# ----------------------------------------------------------------------------- catalogue

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
    name = _PLANETOID_NAMES[key]
    pinned = f"https://raw.githubusercontent.com/kimiyoung/planetoid/{_PLANETOID_COMMIT}/data/"
    latest = "https://github.com/kimiyoung/planetoid/raw/master/data/"  # PyG's Planetoid.url
    files = tuple(
        FileSpec(f"planetoid/{name}/raw/ind.{key}.{suffix}", sha,
                 (f"{pinned}ind.{key}.{suffix}", f"{latest}ind.{key}.{suffix}"))
        for suffix, sha in zip(_PLANETOID_SUFFIXES, _PLANETOID_SHA256[key]))
    return DatasetInfo(
        name, "graph (citation network), node classification",
        "https://github.com/kimiyoung/planetoid (Yang et al. 2016); collection: https://linqs.org/datasets/",
        "MIT (kimiyoung/planetoid); LINQS data for research, cite Sen et al. 2008",
        files, lambda **kw: load_planetoid(name, **kw), "torch_geometric.datasets.Planetoid (public split)")


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
    manifest = resources.files("graphattn").joinpath("catalogue/fsdd.sha256").read_text()
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

CATALOGUE: dict[str, DatasetInfo] = {
    **{key: _planetoid(key) for key in _PLANETOID_NAMES},
    "mutag": DatasetInfo(
        "MUTAG", "graphs (molecules), graph classification",
        "https://chrsmrrs.github.io/datasets/ (TUDataset, Morris et al. 2020)",
        "no explicit licence; cite Morris et al. 2020 and Debnath et al. 1991",
        tuple(FileSpec(f"TUDataset/MUTAG/raw/{f}", sha, archive=_MUTAG_ZIP) for f, sha in _MUTAG.items()),
        load_tudataset, "torch_geometric.datasets.TUDataset"),
    "trec": DatasetInfo(
        "TREC", "text, question classification",
        "https://cogcomp.seas.upenn.edu/Data/QA/QC/ (Li & Roth 2002)",
        "no licence stated; research use, cite Li & Roth 2002 and Hovy et al. 2001",
        tuple(FileSpec(f"text/trec/{f}", sha, (*(u + f for u in _TREC_URLS), _TREC_GITHUB + f + ".txt"))
              for f, sha in _TREC.items()),
        load_trec, "TRECSplit(examples=[(text, coarse_label)], classes)"),
    "fsdd": DatasetInfo(
        "FSDD", "speech, 8 kHz mono WAV, spoken digit classification",
        "https://github.com/Jakobovski/free-spoken-digit-dataset",
        "CC BY-SA 4.0", _fsdd_files(), load_fsdd,
        "FSDDSplit(waveforms=[float tensors in [-1, 1]], labels, sample_rate=8000)"),
    "mnist": DatasetInfo(
        "MNIST", "images, 28x28 grayscale digit classification",
        "http://yann.lecun.com/exdb/mnist/ (LeCun, Cortes, Burges)",
        "research use, no explicit licence (CC BY-SA 3.0 is often cited)",
        tuple(FileSpec(f"mnist/raw/{f}", sha, tuple(u + f for u in _MNIST_URLS))
              for f, sha in _MNIST.items()),
        load_mnist, "MNISTSplit(images uint8 [N, 28, 28], labels, source)"),
}
