"""The graph of a node-classification run (:class:`NodeData`): features, labels, split masks,
edges and positional features, on the device, loaded once per process."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch_geometric.data import Data

from .node_config import PLANETOID_DATASETS, NodeConfig

__all__ = ["NodeData", "encoding_module"]


class NodeData:
    """The dataset on the device: features (sparse CSR for Planetoid's bag-of-words, dense
    otherwise), labels, split masks, edges and positions; ``graph`` is the whole graph as the
    models take it (one object for the whole run, so what a model prepares on it is prepared
    once); ``data`` keeps the whole graph on the CPU (dense features, positions as ``pos``)
    for the mini-batch loaders."""

    def __init__(self, config: NodeConfig):
        import torch_geometric.transforms as T

        from ..datasets import get, load_planetoid

        where = {"root": config.data.root, "mirror": config.data.mirror, "progress": config.run.progress}
        if config.dataset in PLANETOID_DATASETS:
            dataset = load_planetoid(config.dataset, transform=T.NormalizeFeatures(), **where)
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
        self.masks = {split: getattr(data, f"{split}_mask").to(device) for split in ("train", "val", "test")}
        self.edge_index = data.edge_index.to(device)
        self.pos = data.pos.to(device) if encoding != "none" else None
        self.graph = Data(edge_index=self.edge_index, num_nodes=self.num_nodes)
        if self.pos is not None:
            self.graph.pos = self.pos
        if config.dataset not in PLANETOID_DATASETS:  # dense features
            self.x = data.x.to(device)
            return
        with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul with it is stable
            warnings.simplefilter("ignore", UserWarning)
            self.x = data.x.to_sparse_csr().to(device)  # (N, F), ~1% non-zero


def encoding_module(config: NodeConfig, width: int) -> nn.Module:
    """The positional encoding of ``config`` (Laplacian or random walk) mapping onto ``width`` channels."""
    from ..nn.encodings import LaplacianEncoding, RandomWalkEncoding

    if config.positional.encoding == "laplacian":
        return LaplacianEncoding(config.positional.encoding_dim, width)
    return RandomWalkEncoding(config.positional.encoding_dim, width)
