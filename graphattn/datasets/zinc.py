"""ZINC-12k (Dwivedi et al., "Benchmarking Graph Neural Networks"): graph regression of
constrained solubility on 12,000 molecules, split 10,000 / 1,000 / 1,000 as published.

The tensors are exactly PyG's ``ZINC(root, subset=True, split=...)``, rebuilt from a lossless
plain-text export of it (``ZINC_{Nodes,Edges,Labels}.txt``: graphs 0-9999 are train, then val,
then test, the order of the upstream pickles) and benchmarking-gnns' split index files, whose
lengths give the split sizes. Per graph: ``x`` the atom types ``[N, 1]`` (long, nodes in id
order); ``edge_index`` both directions of each bond, sorted by (source, target); ``edge_attr``
the bond types ``[E]`` (long, 1 single, 2 double, 3 triple); ``y`` ``[1]`` float32.

PyG itself reads ``molecules.zip`` (pickles) from a URL that publishes no checksum, and none
could be verified here, so it is not used: with internet the same text files are downloaded
from their pinned upstream commits and checked by sha256. Nothing is unpickled.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import numpy as np
import torch

from .fetch import fetch, read_verified
from .graphset import GraphSet, graph_set
from .sources import files

__all__ = ["load_zinc", "ZINC_SPLITS"]

ZINC_SPLITS = ("train", "val", "test")


def _table(data: bytes, columns: int, dtype) -> np.ndarray:
    table = np.loadtxt(io.BytesIO(data), dtype=dtype, ndmin=2)
    if table.shape[1] != columns:
        raise ValueError(f"expected {columns} columns, got {table.shape[1]}")
    return table


def _split_sizes(index_files: dict[str, bytes]) -> list[int]:
    sizes = []
    for split in ZINC_SPLITS:
        ids = [int(i) for i in index_files[split].decode("ascii").strip().strip(",").split(",")]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{split}.index lists a molecule twice")
        sizes.append(len(ids))
    return sizes


def _build(nodes: np.ndarray, edges: np.ndarray, label_graph: np.ndarray, label: np.ndarray, num_graphs: int):
    """Concatenated PyG tensors of all graphs, in graph order (see the module docstring)."""
    order = np.lexsort((nodes[:, 1], nodes[:, 0]))  # by (graph, node id)
    nodes = nodes[order]
    num_nodes = np.bincount(nodes[:, 0], minlength=num_graphs)
    first = np.concatenate([[0], np.cumsum(num_nodes)[:-1]])
    if not np.array_equal(nodes[:, 1], np.arange(len(nodes)) - np.repeat(first, num_nodes)):
        raise ValueError("ZINC_Nodes.txt: node ids within a graph are not 0..N-1")
    g, u, v, bond = edges.T
    g, src, dst, bond = np.concatenate([g, g]), np.concatenate([u, v]), np.concatenate([v, u]), np.concatenate([bond, bond])
    order = np.lexsort((dst, src, g))  # by (graph, source, target)
    g, src, dst, bond = g[order], src[order], dst[order], bond[order]
    if (np.maximum(src, dst) >= num_nodes[g]).any():
        raise ValueError("ZINC_Edges.txt: a bond names a node its graph does not have")
    order = np.argsort(label_graph, kind="stable")
    if not np.array_equal(label_graph[order], np.arange(num_graphs)):
        raise ValueError("ZINC_Labels.txt: not one label per graph")
    return (torch.from_numpy(num_nodes), torch.from_numpy(np.bincount(g, minlength=num_graphs)),
            torch.from_numpy(nodes[:, 2:3].copy()), torch.from_numpy(np.stack([src, dst])),
            torch.from_numpy(bond.copy()), torch.from_numpy(label[order].astype(np.float32)))


def load_zinc(root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
              transform: Callable | None = None, *, progress: bool = True) -> dict[str, GraphSet]:
    """ZINC-12k with its published split: ``{"train": 10,000 graphs, "val": 1,000, "test": 1,000}``.

    Each value is a PyG ``InMemoryDataset`` (a :class:`~graphattn.datasets.graphset.GraphSet`)
    whose graphs equal PyG's ``ZINC(subset=True, split=...)``: ``x [N, 1]`` long atom types
    (28 types, 0-20 occur), ``edge_index [2, E]`` (both directions), ``edge_attr [E]`` long bond
    types 1-3, ``y [1]`` float32. Built from the sha256-verified files in about a second, with
    no cache. ``transform`` is applied on access, as in PyG.
    """
    path = fetch("zinc", root, mirror, progress)
    raw = {spec.path.rsplit("/", 1)[-1]: read_verified(path / spec.path, spec) for spec in files("zinc")}
    sizes = _split_sizes({split: raw[f"{split}.index"] for split in ZINC_SPLITS})
    try:
        nodes = _table(raw["ZINC_Nodes.txt"], 3, np.int64)
        edges = _table(raw["ZINC_Edges.txt"], 4, np.int64)
        labels = _table(raw["ZINC_Labels.txt"], 2, np.float64)  # y is the repr of a float32: exact through float64
        num_nodes, num_edges, x, edge_index, edge_attr, y = _build(nodes, edges, labels[:, 0].astype(np.int64),
                                                                   labels[:, 1], sum(sizes))
    except ValueError as err:  # cannot happen with the verified files: a guard against a wrong catalogue entry
        raise ValueError(f"ZINC: the verified text files do not form {sum(sizes)} graphs: {err}") from None
    out, graph, node, edge = {}, 0, 0, 0
    for split, size in zip(ZINC_SPLITS, sizes):
        n, e = num_nodes[graph:graph + size], num_edges[graph:graph + size]
        dn, de = int(n.sum()), int(e.sum())
        out[split] = graph_set(f"ZINC-{split}", num_nodes=n, num_edges=e, x=x[node:node + dn],
                               edge_index=edge_index[:, edge:edge + de], edge_attr=edge_attr[edge:edge + de],
                               y=y[graph:graph + size], transform=transform)
        graph, node, edge = graph + size, node + dn, edge + de
    return out
