"""Peptides-func (LRGB, Dwivedi et al. 2022): 15,535 peptides, 10-label multi-label graph
classification (metric: average precision), split 10,873 / 2,331 / 2,331.

Built as LRGB's ``PeptidesFunctionalDataset`` builds it: each SMILES string through
``ogb.utils.smiles2graph`` (rdkit) gives OGB's 9 atom features ``x [N, 9]`` and 3 bond
features ``edge_attr [E, 3]`` (long), both bond directions; ``y [1, 10]`` float32 from the
``labels`` column; the split from LRGB's stratified split file. rdkit and ogb are the optional
extra ``graphattn[chem]``.

The two source files are checked by sha256 (values shipped in the package). The split file is
a pickle: it is unpickled only after that, and then by a restricted unpickler that builds numpy
arrays only (:mod:`.unpickle`). Featurizing takes about 1.5 minutes, so the tensors are cached
in ``<root>/peptides-func/graphattn-features.pt`` (:mod:`.cache`), keyed by the source file's
sha256, the featurizer version and the rdkit and ogb versions, with a sha256 trailer, and read
back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .cache import cached
from .fetch import DatasetUnavailableError, fetch, read_verified
from .graphset import GraphSet, graph_set
from .sources import files
from .unpickle import load_numpy_pickle

__all__ = ["load_peptides_func", "featurize_smiles", "PEPTIDES_SPLITS", "FEATURIZER_VERSION"]

PEPTIDES_SPLITS = ("train", "val", "test")
#: Bump when featurize_smiles changes what it produces: cached tensors are then rebuilt.
FEATURIZER_VERSION = 1
_CSV, _SPLIT = "peptide_multi_class_dataset.csv.gz", "splits_random_stratified_peptide.pickle"
_CACHE = "peptides-func/graphattn-features.pt"


def _smiles2graph() -> tuple[Callable, dict[str, str]]:
    """OGB's ``smiles2graph`` and the versions of the packages behind it."""
    try:
        import rdkit
        from ogb.utils.mol import smiles2graph
        from ogb.version import __version__ as ogb_version
    except ImportError as err:
        raise DatasetUnavailableError(
            f"Peptides-func needs rdkit and ogb to turn SMILES into graphs ({err.name or err} is missing): "
            "pip install 'graphattn[chem]'") from None
    return smiles2graph, {"rdkit": rdkit.__version__, "ogb": ogb_version}


def featurize_smiles(smiles: Sequence[str], *, progress: bool = False) -> dict[str, torch.Tensor]:
    """The molecular graphs of ``smiles`` through OGB's ``smiles2graph``, concatenated.

    Returns:
        ``num_nodes [G]``, ``num_edges [G]``, ``x [sum N, 9]``, ``edge_index [2, sum E]`` (node ids
        local to each molecule, both directions of each bond, in rdkit's bond order) and
        ``edge_attr [sum E, 3]``, all long.

    Raises:
        DatasetUnavailableError: rdkit or ogb is not installed (names ``graphattn[chem]``).
        ValueError: rdkit cannot parse a SMILES string (its index is named).
    """
    smiles2graph, _ = _smiles2graph()
    num_nodes, num_edges, xs, edge_indices, edge_attrs = [], [], [], [], []
    for i, text in enumerate(tqdm(smiles, desc="Peptides-func: featurizing", unit="mol", disable=None if progress else True)):
        try:
            graph = smiles2graph(text)
        except AttributeError:  # MolFromSmiles returned None
            raise ValueError(f"smiles[{i}] cannot be parsed by rdkit: {text[:80]!r}") from None
        num_nodes.append(int(graph["num_nodes"]))
        num_edges.append(graph["edge_index"].shape[1])
        xs.append(graph["node_feat"])
        edge_indices.append(graph["edge_index"])
        edge_attrs.append(graph["edge_feat"])
    as_long = lambda parts, axis, shape: torch.from_numpy(  # noqa: E731
        np.concatenate(parts, axis=axis).astype(np.int64) if parts else np.zeros(shape, dtype=np.int64))
    return {"num_nodes": torch.tensor(num_nodes, dtype=torch.long), "num_edges": torch.tensor(num_edges, dtype=torch.long),
            "x": as_long(xs, 0, (0, 9)), "edge_index": as_long(edge_indices, 1, (2, 0)),
            "edge_attr": as_long(edge_attrs, 0, (0, 3))}


def _rows(data: bytes) -> tuple[list[str], torch.Tensor]:
    """SMILES strings and ``[G, 10]`` float32 labels of LRGB's csv.gz."""
    smiles, labels = [], []
    for row in csv.DictReader(io.StringIO(gzip.decompress(data).decode("utf-8"))):
        smiles.append(row["smiles"])
        labels.append(json.loads(row["labels"]))
    y = torch.tensor(labels, dtype=torch.float32)
    if y.dim() != 2 or y.size(1) != 10:
        raise ValueError(f"{_CSV}: expected 10 labels per peptide, got shape {tuple(y.shape)}")
    return smiles, y


def _split(data: bytes, num_graphs: int) -> dict[str, torch.Tensor]:
    split = load_numpy_pickle(data, _SPLIT)
    if not isinstance(split, dict) or set(split) != set(PEPTIDES_SPLITS):
        raise ValueError(f"{_SPLIT}: expected a dict of {PEPTIDES_SPLITS} index arrays")
    out = {name: torch.as_tensor(np.asarray(split[name], dtype=np.int64)) for name in PEPTIDES_SPLITS}
    every = torch.cat(list(out.values())).sort().values
    if not torch.equal(every, torch.arange(num_graphs)):
        raise ValueError(f"{_SPLIT}: the splits are not a partition of the {num_graphs} peptides")
    return out


def load_peptides_func(root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
                       transform: Callable | None = None, *, progress: bool = True) -> dict[str, GraphSet]:
    """Peptides-func with LRGB's split: ``{"train": 10,873 graphs, "val": 2,331, "test": 2,331}``.

    Each value is a PyG ``InMemoryDataset`` (a view of one
    :class:`~graphattn.datasets.graphset.GraphSet` holding all 15,535 peptides) whose graphs are
    ``Data(x [N, 9] long, edge_index [2, E], edge_attr [E, 3] long, y [1, 10] float32)``, as
    LRGB's loader builds them. The first call featurizes (about 1.5 min) and caches the tensors;
    later calls read the cache. ``transform`` is applied on access.

    Raises:
        DatasetUnavailableError: rdkit / ogb are missing (``pip install 'graphattn[chem]'``), or
            the files are neither in the root, the mirror nor downloadable.
    """
    _, versions = _smiles2graph()  # fail before copying anything when the extra is missing
    path = fetch("peptides-func", root, mirror, progress)
    specs = {spec.path.rsplit("/", 1)[-1]: spec for spec in files("peptides-func")}
    smiles, y = _rows(read_verified(path / specs[_CSV].path, specs[_CSV]))
    split = _split(read_verified(path / specs[_SPLIT].path, specs[_SPLIT]), len(smiles))
    key = {"featurizer": FEATURIZER_VERSION, "source_sha256": specs[_CSV].sha256, "molecules": len(smiles), **versions}
    graphs = cached(path / _CACHE, key, lambda: featurize_smiles(smiles, progress=progress), "Peptides-func features")
    full = graph_set("Peptides-func", num_nodes=graphs["num_nodes"], num_edges=graphs["num_edges"], x=graphs["x"],
                     edge_index=graphs["edge_index"], edge_attr=graphs["edge_attr"], y=y, transform=transform)
    return {name: full[index] for name, index in split.items()}
