"""The molecules of a benchmark run (:class:`MoleculeData`): the published split, each graph
with its structural features ``pe`` (RWSE or LapPE through PyG's transforms, computed once and
cached in the data root), and the vocabularies of its atom and bond codes."""

from __future__ import annotations

import copy
from dataclasses import replace
from functools import partial

import torch
from torch import Tensor
from torch_geometric.data import Data

from .harness import Batch
from .molecule_config import MoleculeConfig
from .options import resolved

__all__ = ["MoleculeData", "structural_features", "RandomSigns", "PE_VERSION", "ZINC_ATOMS", "ZINC_BONDS"]

#: Bump when structural_features changes what it computes: cached features are then rebuilt.
PE_VERSION = 1
#: ZINC's atom types (28 in benchmarking-gnns' dictionary, 0-20 occur) and bond types (0-3).
ZINC_ATOMS, ZINC_BONDS = 28, 4
_SPLITS = ("train", "val", "test")


def structural_features(graphs: list[Data], encoding: str, dim: int) -> Tensor:
    """The ``[sum N, dim]`` structural features of ``graphs``, in order: random-walk return
    probabilities ``diag(P^k)``, ``k = 1..dim`` (PyG's ``AddRandomWalkPE``, GraphGPS's RWSE), or
    the ``dim`` Laplacian eigenvectors of the smallest non-zero eigenvalues (PyG's
    ``AddLaplacianEigenvectorPE``; a graph of ``n <= dim`` nodes gets its ``n - 1`` and zeros)."""
    from torch_geometric.transforms import AddLaplacianEigenvectorPE, AddRandomWalkPE

    out = []
    for graph in graphs:
        bare = Data(edge_index=graph.edge_index, num_nodes=graph.num_nodes)
        if encoding == "random_walk":
            out.append(AddRandomWalkPE(dim, attr_name="pe")(bare).pe)
            continue
        k = min(dim, graph.num_nodes - 1)
        pe = AddLaplacianEigenvectorPE(k, attr_name="pe", is_undirected=True)(bare).pe if k > 0 \
            else torch.zeros(graph.num_nodes, 0)
        out.append(torch.cat([pe, pe.new_zeros(graph.num_nodes, dim - k)], dim=1))
    return torch.cat(out).float()


class MoleculeData:
    """The dataset of ``config``: ``graphs[split]`` lists the ``Data`` of each split (the first
    ``config.limit`` of each when set), each with ``pe [N, encoding_dim]`` unless the encoding
    is ``none``; ``atoms`` / ``bonds`` are the vocabularies of each atom / bond code column
    (ZINC's types; OGB's 9 atom and 3 bond features); ``targets`` the outputs per molecule."""

    def __init__(self, config: MoleculeConfig):
        from ..datasets import load_peptides_func, load_zinc

        root, mirror, progress = config.data.root, config.data.mirror, config.run.progress
        if config.dataset == "ZINC":
            sets = load_zinc(root=root, mirror=mirror, progress=progress)
            self.atoms, self.bonds, self.targets = (ZINC_ATOMS,), (ZINC_BONDS,), 1
        else:
            from ogb.utils.features import get_atom_feature_dims, get_bond_feature_dims

            sets = load_peptides_func(root=root, mirror=mirror, progress=progress)
            self.atoms, self.bonds, self.targets = tuple(get_atom_feature_dims()), tuple(get_bond_feature_dims()), 10
        limit = config.limit
        self.graphs = {s: [sets[s][i] for i in range(len(sets[s]) if limit is None else min(limit, len(sets[s])))]
                       for s in _SPLITS}
        if config.encoding != "none":
            self._add_features(config)

    def _add_features(self, config: MoleculeConfig) -> None:
        """Attach ``pe`` to every graph; the features of the whole split are cached in the data root."""
        from ..datasets.cache import cached
        from ..datasets.roots import data_root
        from ..datasets.sources import files

        encoding, dim = resolved(config.encoding, "encoding"), resolved(config.encoding_dim, "encoding_dim")
        for split, graphs in self.graphs.items():
            if config.limit is not None:  # a smoke run: a few graphs, no cache
                pe = structural_features(graphs, encoding, dim)
            else:
                source = config.dataset.lower()  # the catalogue's name: zinc, peptides-func
                key = {"version": PE_VERSION, "dataset": config.dataset, "split": split, "graphs": len(graphs),
                       "encoding": encoding, "dim": dim,
                       "sources": [spec.sha256 for spec in files(source)]}
                folder = data_root(config.data.root) / files(source)[0].path.split("/")[0]  # beside the sources
                path = folder / f"graphattn-{encoding}-{dim}-{split}.pt"
                pe = cached(path, key, partial(structural_features, graphs, encoding, dim),
                            f"{config.dataset} {split} structural features")
            start = 0
            for graph in graphs:
                graph.pe = pe[start:start + graph.num_nodes]
                start += graph.num_nodes


class RandomSigns:
    """Training augmentation for Laplacian eigenvectors, whose signs are arbitrary: each graph of
    a batch gets its own random sign per eigenvector, ``pe_i <- s_g * pe_i`` with
    ``s_g ~ Uniform{-1, 1}^k`` for the graph ``g`` of node ``i`` (as GraphGPS trains LapPE)."""

    def __call__(self, batch: Batch) -> Batch:
        graph = copy.copy(batch.graph)  # the dataset's graphs are left as they are
        signs = torch.randint(0, 2, (graph.num_graphs, graph.pe.size(1))) * 2 - 1  # (B, k)
        graph.pe = graph.pe * signs[graph.batch].to(graph.pe.dtype)
        return replace(batch, graph=graph)
