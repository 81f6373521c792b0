"""The graph of a node-classification run (:class:`NodeData`): features, labels, split masks,
edges and positional features, on the device, loaded once per process."""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, TypedDict

import torch
from torch_geometric.data import Data

from .node_config import PLANETOID_DATASETS, SHCHUR_DATASETS, NodeConfig

if TYPE_CHECKING:
    from ..nn.encodings import LaplacianEncoding, RandomWalkEncoding

__all__ = ["NodeData", "encoding_module", "SPARSE_BELOW"]

#: Features with at most this share of non-zeros are kept as a sparse CSR matrix.
SPARSE_BELOW = 0.1


class _Where(TypedDict):
    """Where the loaders find a dataset (their keyword arguments)."""

    root: str | None
    mirror: str | None
    progress: bool


class NodeData:
    """The dataset on the device: features (a sparse CSR matrix when at most
    :data:`SPARSE_BELOW` of them are non-zero, as Planetoid's and Coauthor's bag-of-words; dense
    otherwise), labels, split masks, edges and positions; ``graph`` is the
    whole graph as the models take it (one object for the whole run, so what a model prepares on
    it is prepared once); ``data`` keeps the whole graph on the CPU (dense features, positions
    as ``pos``) for the mini-batch loaders.

    A split drawn per seed (``config.split`` ``random`` or ``per-class``) has no masks here:
    :meth:`for_seed` gives the data with the masks of a seed."""

    def __init__(self, config: NodeConfig):
        import torch_geometric.transforms as T

        from ..datasets import get, load_planetoid, load_shchur

        where: _Where = {"root": config.data.root, "mirror": config.data.mirror, "progress": config.run.progress}
        if config.dataset in PLANETOID_DATASETS:
            dataset = load_planetoid(config.dataset, transform=T.NormalizeFeatures(), **where)
            data, num_classes = dataset[0], dataset.num_classes
        elif config.dataset in SHCHUR_DATASETS:  # binary bag-of-words, used as they are (as Luo et al.)
            dataset = load_shchur(config.dataset, **where)
            data, num_classes = dataset[0], dataset.num_classes
        else:  # SBM-*, ogbn-arxiv: one Data from the catalogue's loader
            data = get(config.dataset).loader(**where)
            num_classes = int(data.y.max()) + 1
        encoding = config.positional.encoding
        if encoding != "none":
            module = encoding_module(config, 1)
            data = module.transform(**({"is_undirected": True} if encoding == "laplacian" else {}))(data)
            data.pos = data[module.attr_name]
            del data[module.attr_name]
        self.data = data
        device = torch.device(config.run.device)
        self.num_nodes, self.num_features, self.num_classes = data.num_nodes, data.num_features, num_classes
        self.y = data.y.to(device)
        self.split = config.split
        self._seeded: dict[int, NodeData] = {}
        self.masks = {split: getattr(data, f"{split}_mask").to(device) for split in ("train", "val", "test")} \
            if self.split == "public" else None
        self.edge_index = data.edge_index.to(device)
        self.pos = data.pos.to(device) if encoding != "none" else None
        self.graph = Data(edge_index=self.edge_index, num_nodes=self.num_nodes)
        if self.pos is not None:
            self.graph.pos = self.pos
        nonzero = int(torch.count_nonzero(data.x)) / max(data.x.numel(), 1)
        if nonzero > SPARSE_BELOW:  # SBM, ogbn-arxiv, Amazon's 35%-full bag-of-words: dense products are faster
            self.x = data.x.to(device)
            return
        with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul with it is stable
            warnings.simplefilter("ignore", UserWarning)
            self.x = data.x.to_sparse_csr().to(device)  # (N, F): Cora 1.3%, Coauthor CS 0.9% non-zero


    def for_seed(self, seed: int) -> NodeData:
        """The data with the split of ``seed``: itself for the dataset's own split; else a copy
        sharing every tensor and the ``graph`` object but the masks, drawn by
        :func:`~graphattn.datasets.random_split_masks` (60 / 20 / 20) or
        :func:`~graphattn.datasets.per_class_split_masks` (20 + 30 per class) with ``seed``
        (made once per seed)."""
        if self.split == "public":
            return self
        if seed not in self._seeded:
            from ..datasets import per_class_split_masks, random_split_masks

            masks = random_split_masks(self.num_nodes, seed=seed) if self.split == "random" \
                else per_class_split_masks(self.data.y, seed=seed)
            view = copy.copy(self)
            view.data = copy.copy(self.data)  # the loaders' CPU graph: its own mask attributes, shared tensors
            for name, mask in zip(("train", "val", "test"), masks):
                view.data[f"{name}_mask"] = mask
            view.masks = {name: mask.to(self.y.device) for name, mask in zip(("train", "val", "test"), masks)}
            self._seeded[seed] = view
        return self._seeded[seed]


def encoding_module(config: NodeConfig, width: int) -> LaplacianEncoding | RandomWalkEncoding:
    """The positional encoding of ``config`` (Laplacian or random walk) mapping onto ``width`` channels."""
    from ..nn.encodings import LaplacianEncoding, RandomWalkEncoding

    if config.positional.encoding == "laplacian":
        return LaplacianEncoding(config.positional.encoding_dim, width)
    return RandomWalkEncoding(config.positional.encoding_dim, width)
