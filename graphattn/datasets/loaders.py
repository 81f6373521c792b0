"""The loaders: each makes its files present (:func:`~graphattn.datasets.fetch.fetch`) and reads them.

Planetoid and MUTAG are read by PyG's own ``Planetoid`` / ``TUDataset``, run on verified copies
in a private folder (:mod:`.private`), so nothing in the data root is unpickled; TREC, FSDD and
MNIST are parsed here. ZINC, Peptides-func and the Shchur graphs have their own modules.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .fetch import DatasetUnavailableError, ensure, fetch
from .private import build_privately
from .roots import data_root, resolve_mirror
from .sources import PLANETOID_NAMES, files

__all__ = ["load_planetoid", "load_tudataset", "load_ogbn_arxiv", "load_trec", "load_fsdd", "load_mnist",
           "TRECSplit", "FSDDSplit", "MNISTSplit", "TREC_CLASSES"]

log = logging.getLogger(__name__)


def load_planetoid(name: str, root=None, mirror=None, transform=None, *, progress: bool = True):
    """Cora, CiteSeer or PubMed (name case-insensitive) with the public Planetoid split, as
    ``torch_geometric.datasets.Planetoid(..., name, split="public")`` built from the verified raw
    files in a private folder (nothing in the data root is unpickled; no processed cache is kept)."""
    from torch_geometric.datasets import Planetoid

    canonical = PLANETOID_NAMES.get(str(name).lower())
    if canonical is None:
        raise ValueError(f"name={name!r} is not a Planetoid dataset; expected one of "
                         f"{sorted(PLANETOID_NAMES.values())}")
    path = fetch(canonical, root, mirror, progress)
    return build_privately(path, files(canonical), under="planetoid/",
                           build=lambda folder: Planetoid(str(folder), canonical, split="public", transform=transform))


def load_tudataset(name: str = "MUTAG", root=None, mirror=None, transform=None, *,
                   progress: bool = True):
    """A TUDataset graph-classification set (only ``"MUTAG"`` is catalogued), as
    ``torch_geometric.datasets.TUDataset(..., "MUTAG")`` built from the verified raw files in a
    private folder."""
    from torch_geometric.datasets import TUDataset

    if str(name).upper() != "MUTAG":
        raise ValueError(f"name={name!r} is not a catalogued TUDataset; expected 'MUTAG'")
    path = fetch("MUTAG", root, mirror, progress)
    return build_privately(path, files("MUTAG"), under="TUDataset/",
                           build=lambda folder: TUDataset(str(folder), "MUTAG", transform=transform))


def load_ogbn_arxiv(root=None, mirror=None, *, progress: bool = True):
    """ogbn-arxiv (169,343 papers, 40 subject areas, OGB's time split) as one ``Data`` with
    ``train_mask`` / ``val_mask`` / ``test_mask``, through the optional ``ogb`` package
    (``pip install ogb``), which downloads it into ``<root>/ogb``. Features and labels as OGB
    gives them; the directed citation edges are made undirected, as in OGB's GNN baselines."""
    try:
        from ogb.nodeproppred import PygNodePropPredDataset
    except ImportError:
        raise DatasetUnavailableError("ogbn-arxiv needs the optional extra 'ogb' (pip install ogb), "
                                      "which is not installed") from None
    from torch_geometric.utils import to_undirected

    dataset = PygNodePropPredDataset("ogbn-arxiv", root=str(data_root(root) / "ogb"))
    data, split = dataset[0], dataset.get_idx_split()
    data.edge_index = to_undirected(data.edge_index, num_nodes=data.num_nodes)
    data.y = data.y.view(-1)
    for name, key in (("train", "train"), ("val", "valid"), ("test", "test")):
        mask = torch.zeros(data.num_nodes, dtype=torch.bool)
        mask[split[key]] = True
        data[f"{name}_mask"] = mask
    return data


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
    specs, root = files("fsdd"), data_root(root)
    keyed = {}  # only this split's files are verified: a test-set load reads 300, not 3000
    for spec in specs:
        digit, speaker, index = Path(spec.path).stem.split("_")
        if (int(index) < 5) == (split == "test"):
            keyed[(int(digit), speaker, int(index))] = spec
    ensure("FSDD", keyed.values(), root, resolve_mirror(mirror), progress)
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
    specs, root_path, mirror_path = files("mnist"), data_root(root), resolve_mirror(mirror)
    t10k = [s for s in specs if "t10k" in s.path]
    ensure("MNIST", t10k, root_path, mirror_path, progress)
    full = (root_path, mirror_path) not in _NO_FULL_MNIST
    if full:
        try:
            ensure("MNIST", [s for s in specs if s not in t10k], root_path, mirror_path, progress)
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

