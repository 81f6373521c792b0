"""The catalogue: every dataset graphattn loads, where it comes from, its files and its loader.

:data:`CATALOGUE` maps a lower-case name to a :class:`DatasetInfo`; :func:`get` looks one up.
The files (paths, sha256, sizes, URLs) are in :mod:`.sources`; this module sits above every
loader and is imported by none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .loaders import load_fsdd, load_mnist, load_ogbn_arxiv, load_planetoid, load_trec, load_tudataset
from .peptides import load_peptides_func
from .shchur import load_shchur
from .sources import PLANETOID_NAMES, SHCHUR_NAMES, FileSpec, files
from .synthetic import SBM_OPTIONS, SBM_SIZES, load_sbm
from .zinc import load_zinc

__all__ = ["CATALOGUE", "DatasetInfo", "FileSpec", "get"]


@dataclass(frozen=True)
class DatasetInfo:
    """A catalogue entry: what the dataset is, where it comes from, its files and its loader
    (``loader(root=..., mirror=..., progress=...)``)."""

    name: str
    modality: str
    source: str
    licence: str
    files: tuple[FileSpec, ...] = field(repr=False)
    loader: Callable = field(repr=False)
    returns: str = ""


def _bound(load: Callable, *args: object) -> Callable:
    """``load`` with ``args`` first, under ``load``'s own name (what a log or a test reads)."""
    def bound(**kwargs):
        return load(*args, **kwargs)

    bound.__name__ = bound.__qualname__ = load.__name__
    bound.__doc__ = load.__doc__
    return bound


def get(name: str) -> DatasetInfo:
    """The catalogue entry for ``name`` (case-insensitive); ``ValueError`` if unknown."""
    info = CATALOGUE.get(str(name).lower())
    if info is None:
        raise ValueError(f"unknown dataset name={name!r}; expected one of {sorted(CATALOGUE)}")
    return info


def _planetoid(key: str) -> DatasetInfo:
    name = PLANETOID_NAMES[key]
    return DatasetInfo(
        name, "graph (citation network), node classification",
        "https://github.com/kimiyoung/planetoid (Yang et al. 2016); collection: https://linqs.org/datasets/",
        "MIT (kimiyoung/planetoid); LINQS data for research, cite Sen et al. 2008",
        files(key), _bound(load_planetoid, name), "torch_geometric.datasets.Planetoid (public split)")


def _sbm(name: str) -> DatasetInfo:
    arguments = ", ".join(f"{k}={v!r}" for k, v in {"num_nodes": SBM_SIZES[name], **SBM_OPTIONS}.items())
    return DatasetInfo(
        name, "graph (synthetic homophilous stochastic block model), node classification",
        f"generated on first use by graphattn.datasets.synthetic.sbm_graph({arguments}); "
        "cached with the sha256 of what was generated", "generated here: no licence",
        (), _bound(load_sbm, name), "torch_geometric Data(x, y, edge_index, train/val/test_mask)")


_SHCHUR_INFO = {
    "Amazon": ("graph (co-purchase network), node classification",
               "Shchur et al. 2018 (https://github.com/shchur/gnn-benchmark), from McAuley et al. 2015; "
               "copy: EdisonLeeeee/GraphData", "MIT (gnn-benchmark, GraphData); cite Shchur et al. 2018, McAuley et al. 2015"),
    "Coauthor": ("graph (co-authorship network), node classification",
                 "Shchur et al. 2018 (https://github.com/shchur/gnn-benchmark), from the Microsoft Academic Graph; "
                 "copy: EdisonLeeeee/GraphData", "MIT (gnn-benchmark, GraphData); cite Shchur et al. 2018"),
}


def _shchur(key: str) -> DatasetInfo:
    cls, name, _ = SHCHUR_NAMES[key]
    modality, source, licence = _SHCHUR_INFO[cls]
    return DatasetInfo(f"{cls}-{name}", modality, source, licence, files(key), _bound(load_shchur, key),
                       f"torch_geometric.datasets.{cls}(name={name!r}); no split (random_split_masks)")


CATALOGUE: dict[str, DatasetInfo] = {
    **{key: _planetoid(key) for key in PLANETOID_NAMES},
    **{name.lower(): _sbm(name) for name in SBM_SIZES},
    # Downloaded and unpacked by the optional `ogb` package itself (its own URL; it publishes no
    # checksum, so none is recorded here). Not run on these offline machines.
    "ogbn-arxiv": DatasetInfo(
        "ogbn-arxiv", "graph (citation network, 169k nodes), node classification",
        "https://ogb.stanford.edu/docs/nodeprop/#ogbn-arxiv (Hu et al. 2020), via `pip install ogb`",
        "ODC-BY (Microsoft Academic Graph)", (), load_ogbn_arxiv,
        "torch_geometric Data(x, y, edge_index, train/val/test_mask) with OGB's time split"),
    "mutag": DatasetInfo(
        "MUTAG", "graphs (molecules), graph classification",
        "https://chrsmrrs.github.io/datasets/ (TUDataset, Morris et al. 2020)",
        "no explicit licence; cite Morris et al. 2020 and Debnath et al. 1991",
        files("mutag"), load_tudataset, "torch_geometric.datasets.TUDataset"),
    "trec": DatasetInfo(
        "TREC", "text, question classification",
        "https://cogcomp.seas.upenn.edu/Data/QA/QC/ (Li & Roth 2002)",
        "no licence stated; research use, cite Li & Roth 2002 and Hovy et al. 2001",
        files("trec"), load_trec, "TRECSplit(examples=[(text, coarse_label)], classes)"),
    "fsdd": DatasetInfo(
        "FSDD", "speech, 8 kHz mono WAV, spoken digit classification",
        "https://github.com/Jakobovski/free-spoken-digit-dataset",
        "CC BY-SA 4.0", files("fsdd"), load_fsdd,
        "FSDDSplit(waveforms=[float tensors in [-1, 1]], labels, sample_rate=8000)"),
    "mnist": DatasetInfo(
        "MNIST", "images, 28x28 grayscale digit classification",
        "http://yann.lecun.com/exdb/mnist/ (LeCun, Cortes, Burges)",
        "research use, no explicit licence (CC BY-SA 3.0 is often cited)",
        files("mnist"), load_mnist, "MNISTSplit(images uint8 [N, 28, 28], labels, source)"),
    "zinc": DatasetInfo(
        "ZINC", "graphs (molecules), graph regression (constrained solubility), 12k subset",
        "Dwivedi et al. 2023 (https://github.com/graphdeeplearning/benchmarking-gnns); text export: fseiffarth/RuleGNN",
        "MIT (benchmarking-gnns); cite Dwivedi et al. 2023, Irwin et al. 2012, Gomez-Bombarelli et al. 2018",
        files("zinc"), load_zinc, "{'train', 'val', 'test'}: InMemoryDataset, x [N,1] atom type, edge_attr [E] bond type, y [1]"),
    "peptides-func": DatasetInfo(
        "Peptides-func", "graphs (peptides from SMILES), 10-label multi-label graph classification",
        "LRGB, Dwivedi et al. 2022 (https://github.com/vijaydwivedi75/lrgb), from SATPdb",
        "CC BY-NC 4.0", files("peptides-func"), load_peptides_func,
        "{'train', 'val', 'test'}: InMemoryDataset, OGB features x [N,9], edge_attr [E,3], y [1,10]; needs graphattn[chem]"),
    **{key: _shchur(key) for key in SHCHUR_NAMES},
}
