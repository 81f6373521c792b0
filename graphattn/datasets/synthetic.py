"""Synthetic node-classification graphs: a homophilous stochastic block model, generated once and cached.

:func:`sbm_graph` builds the graph from a seed alone (same arguments, same tensors): ``C``
balanced classes; every node draws ``degree / 2`` partners, each of its own class with
probability ``homophily`` and uniformly from all nodes otherwise; the edges are made undirected
(duplicates and self-loops dropped), so a node has about ``degree`` neighbours. Features are a
class mean plus unit Gaussian noise, ``x_i = signal * mu_{y_i} + eps_i`` with ``mu_c`` a random
unit vector per class: weak enough that a node's own features leave it often misclassified,
so the graph's edges carry the rest. Split: a seeded permutation, 50% train, 25% validation,
25% test.

:func:`load_sbm` generates a catalogued size (``SBM-10k``, ``SBM-100k``, ``SBM-1M``) on first
use into ``<data root>/synthetic/<name>/graph.pt`` and records the sha256 of the bytes written
(and the generator's arguments) in ``graph.json`` beside it. A later load uses the file only
if its sha256 and arguments match; a corrupted, truncated or stale cache is regenerated
(with a warning), never used.
"""

from __future__ import annotations

import json
import logging
import os

import torch

from ..checks import MAX_SEED, check_allocation, check_float, check_int, check_probability
from ..files import sha256_file, write_atomic
from .roots import data_root

__all__ = ["sbm_graph", "load_sbm", "SBM_SIZES", "SBM_OPTIONS"]

log = logging.getLogger(__name__)

#: catalogued name -> number of nodes
SBM_SIZES = {"SBM-10k": 10_000, "SBM-100k": 100_000, "SBM-1M": 1_000_000}
#: the generator's other arguments for every catalogued size
SBM_OPTIONS = {"num_classes": 10, "num_features": 32, "degree": 10, "homophily": 0.8, "signal": 1.0, "seed": 0}
_FORMAT = 1  # bump when sbm_graph changes what it generates: old caches are then regenerated


def sbm_graph(num_nodes: int, num_classes: int = 10, num_features: int = 32, degree: int = 10,
              homophily: float = 0.8, signal: float = 1.0, seed: int = 0):
    """A homophilous stochastic block model with class-dependent Gaussian features.

    Args:
        num_nodes: nodes ``N`` (at least ``num_classes``).
        num_classes: balanced classes ``C``. (default: 10)
        num_features: feature width ``F``. (default: 32)
        degree: mean number of neighbours, even (``degree / 2`` partners drawn per node, then
            made undirected). (default: 10)
        homophily: probability that a drawn partner shares the node's class. (default: 0.8)
        signal: length of the class mean added to the unit noise of every feature vector. (default: 1.0)
        seed: seeds everything. (default: 0)

    Returns:
        ``torch_geometric.data.Data`` with ``x [N, F]`` (float32), ``y [N]``, an undirected
        ``edge_index [2, E]`` sorted by query (E about ``degree * N``), and boolean
        ``train_mask`` / ``val_mask`` / ``test_mask`` (50 / 25 / 25%).
    """
    from torch_geometric.data import Data
    from torch_geometric.utils import to_undirected

    check_int(num_classes, "num_classes", 2)
    check_int(num_nodes, "num_nodes", num_classes)
    check_int(num_features, "num_features")
    check_int(degree, "degree", 2)
    if degree % 2:
        raise ValueError(f"degree must be even (degree / 2 partners per node, made undirected), got {degree}")
    check_probability(homophily, "homophily")
    check_float(signal, "signal", minimum=0)
    check_int(seed, "seed", 0, MAX_SEED)
    # features, labels and masks, then the drawn and the undirected edges (int64 pairs, with their sorts)
    check_allocation(num_nodes * (4 * num_features + 8 * 4 + 16 * 4 * degree), f"sbm_graph(num_nodes={num_nodes}, "
                     f"num_features={num_features}, degree={degree})", "cpu", "use a smaller num_nodes, degree or "
                     "num_features")
    gen = torch.Generator().manual_seed(seed)
    y = torch.randperm(num_nodes, generator=gen) % num_classes  # balanced, in random order
    members = torch.argsort(y, stable=True)  # node ids grouped by class
    count = torch.bincount(y, minlength=num_classes)
    start = torch.cumsum(count, 0) - count

    src = torch.arange(num_nodes).repeat_interleave(degree // 2)  # (N * d / 2,)
    same = torch.rand(src.numel(), generator=gen) < homophily
    within = (torch.rand(src.numel(), generator=gen) * count[y[src]]).long()  # uniform in the own class
    anyone = torch.randint(num_nodes, (src.numel(),), generator=gen)
    dst = torch.where(same, members[start[y[src]] + within], anyone)
    keep = src != dst
    edge_index = to_undirected(torch.stack([src[keep], dst[keep]]), num_nodes=num_nodes)  # coalesced

    mu = torch.randn(num_classes, num_features, generator=gen)
    mu = mu / mu.norm(dim=1, keepdim=True)
    x = signal * mu[y] + torch.randn(num_nodes, num_features, generator=gen)  # (N, F)

    order = torch.randperm(num_nodes, generator=gen)
    masks = {}
    for split, (lo, hi) in {"train": (0, 0.5), "val": (0.5, 0.75), "test": (0.75, 1.0)}.items():
        mask = torch.zeros(num_nodes, dtype=torch.bool)
        mask[order[int(lo * num_nodes):int(hi * num_nodes)]] = True
        masks[f"{split}_mask"] = mask
    return Data(x=x, y=y, edge_index=edge_index, num_nodes=num_nodes, **masks)


def load_sbm(name: str, root: str | os.PathLike | None = None, mirror=None, *, progress: bool = True):
    """The catalogued SBM graph ``name`` (``SBM-10k``, ``SBM-100k``, ``SBM-1M``; case-insensitive)
    as a ``Data``, generated on first use and cached under ``<root>/synthetic/<name>/``.

    ``mirror`` and ``progress`` are accepted like every loader's and unused (nothing is copied).
    """
    from torch_geometric.data import Data

    canonical = {k.lower(): k for k in SBM_SIZES}.get(str(name).lower())
    if canonical is None:
        raise ValueError(f"name={name!r} is not a synthetic graph; expected one of {sorted(SBM_SIZES)}")
    folder = data_root(root) / "synthetic" / canonical.lower()
    graph, manifest = folder / "graph.pt", folder / "graph.json"
    arguments = {"num_nodes": SBM_SIZES[canonical], **SBM_OPTIONS}
    expected = {"format": _FORMAT, "arguments": arguments}
    if graph.is_file() and manifest.is_file():
        try:
            stored = json.loads(manifest.read_text())
        except (OSError, ValueError):
            stored = {}
        same = {k: stored.get(k) for k in expected} == expected
        if same and stored.get("sha256") == sha256_file(graph):
            return Data(**torch.load(graph, map_location="cpu", weights_only=True))
        log.warning("%s: cache %s does not match its recorded sha256 or arguments; regenerating it", canonical, graph)
    elif graph.exists() or manifest.exists():
        log.warning("%s: incomplete cache in %s; regenerating it", canonical, folder)
    data = sbm_graph(**arguments)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: data[k] for k in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask")}
    tensors["num_nodes"] = data.num_nodes
    write_atomic(graph, lambda f: torch.save(tensors, f))
    record = {**expected, "sha256": sha256_file(graph), "torch": torch.__version__}
    write_atomic(manifest, lambda f: f.write((json.dumps(record, indent=2) + "\n").encode()))
    return data
