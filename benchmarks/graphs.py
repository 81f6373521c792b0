"""Attention layers on real and generated graphs: graphattn's sparse kernel against PyG.

One layer, 4 heads x 32 channels, fp32, on the graph's edges with self-loops:

* ``graphattn sparse``: ``SelfAttentionConv(F, 128, heads=4)`` on a prepared ``AttentionGraph``
  (as a model prepares it once for all layers and epochs; ``prepare`` is that one-time cost),
  SDDMM / SpMM kernel, with the q, k, v and output projections (one more matrix than
  ``TransformerConv``, three more than ``GATConv``);
* ``graphattn sparse, GAT's weights``: the same layer with one shared projection and no ``W_o``
  (``projection="shared", project_out=False``: GAT's weight count, as the ``graph`` model of
  ``graphattn node`` uses it), the like-for-like comparison with ``GATConv``;
* ``graphattn scatter``: the same layer on the gather / scatter kernel;
* ``PyG TransformerConv``: ``TransformerConv(F, 32, heads=4, root_weight=False)`` (q, k, v
  projections, no output projection);
* ``PyG GATConv``: ``GATConv(F, 32, heads=4)`` (additive scores, one projection).

Graphs: Cora (2,708 nodes, its 1,433 features), Barabási–Albert and a homophilous stochastic
block model (10 blocks, 80% of edges inside a block) at 50k nodes / ~0.5M edges and 200k nodes /
~2M edges (128 random features). Times are medians of ``--runs`` rounds after a warm-up, methods
alternated within each round; peak memory is the growth of the peak RSS during one call, in a
fresh process per (graph, method, mode).

    python benchmarks/graphs.py                       # everything (long on 2 cores)
    python benchmarks/graphs.py --graphs ba-50k sbm-50k --runs 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch_geometric.nn import GATConv, TransformerConv
from torch_geometric.utils import barabasi_albert_graph, coalesce, remove_self_loops, to_undirected

from graphattn import AttentionGraph
from graphattn.nn import SelfAttentionConv

HEADS, C = 4, 32
METHODS = ("graphattn sparse", "graphattn sparse, GAT's weights", "graphattn scatter", "PyG TransformerConv", "PyG GATConv")


def with_self_loops(ei: torch.Tensor, n: int) -> torch.Tensor:
    ei, _ = remove_self_loops(ei)
    return coalesce(torch.cat([ei, torch.arange(n).repeat(2, 1)], dim=1), num_nodes=n)


def sbm(n: int, edges: int, blocks: int = 10, inside: float = 0.8, seed: int = 0) -> torch.Tensor:
    """``edges`` undirected edges, a fraction ``inside`` of them within one of ``blocks`` equal blocks."""
    gen = torch.Generator().manual_seed(seed)
    half = edges // 2
    n_in = int(half * inside)
    block = torch.randint(blocks, (n_in,), generator=gen)
    size = n // blocks
    a = block * size + torch.randint(size, (n_in,), generator=gen)
    b = block * size + torch.randint(size, (n_in,), generator=gen)
    rest = torch.randint(n, (2, half - n_in), generator=gen)
    return to_undirected(torch.cat([torch.stack([a, b]), rest], dim=1), num_nodes=n)


def load_graph(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, edge_index with self-loops)``."""
    torch.manual_seed(0)
    if name == "cora":
        from graphattn.datasets import load_planetoid

        data = load_planetoid("Cora", progress=False)[0]
        x = data.x.to_dense() if data.x.layout != torch.strided else data.x
        return x, with_self_loops(data.edge_index, data.num_nodes)
    kind, size = name.split("-")
    n = {"50k": 50_000, "200k": 200_000}[size]
    ei = barabasi_albert_graph(n, 5) if kind == "ba" else sbm(n, 10 * n)
    return torch.randn(n, 128), with_self_loops(ei, n)


def build(method: str, x: torch.Tensor, ei: torch.Tensor) -> tuple[torch.nn.Module, Callable]:
    torch.manual_seed(0)
    f, n = x.size(1), x.size(0)
    if method.startswith("graphattn"):
        gat_form = {"projection": "shared", "project_out": False} if method.endswith("GAT's weights") else {}
        layer = SelfAttentionConv(f, HEADS * C, heads=HEADS, backend=method.split()[1].rstrip(","), **gat_form)
        graph = AttentionGraph.build(ei, n)
        return layer, lambda: layer(x, graph)
    if method == "PyG TransformerConv":
        layer = TransformerConv(f, C, heads=HEADS, root_weight=False)
    else:
        layer = GATConv(f, C, heads=HEADS, add_self_loops=False)  # the edges have them already
    return layer, lambda: layer(x, ei)


def call(fn: Callable, backward: bool) -> None:
    if backward:
        fn().sum().backward()
    else:
        with torch.no_grad():
            fn()


def prepare_seconds(x: torch.Tensor, ei: torch.Tensor) -> float:
    """The one-time cost of the prepared graph: build, backend choice and the kernel's CSR plan."""
    layer = SelfAttentionConv(x.size(1), HEADS * C, heads=HEADS)
    start = time.perf_counter()
    graph = AttentionGraph.build(ei, x.size(0))
    with torch.no_grad():
        layer(x, graph)
    first = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        layer(x, graph)
    return first - (time.perf_counter() - start)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def probe(graph_name: str, method: str, backward: bool) -> None:
    x, ei = load_graph(graph_name)
    _, fn = build(method, x, ei)
    call(fn, backward)  # warm-up: the prepared graph's caches are built here, once
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status_kb("VmRSS")
    call(fn, backward)
    print((_status_kb("VmHWM") - before) / 1024)


def peak_mb(graph_name: str, method: str, backward: bool) -> float | None:
    cmd = [sys.executable, __file__, "--probe", json.dumps([graph_name, method, backward])]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    try:
        return float(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", nargs="*", default=["cora", "ba-50k", "sbm-50k", "ba-200k", "sbm-200k"])
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(*json.loads(args.probe))
        return 0
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"# {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}")
    print("| graph | nodes | edges | mode | method | median ms | vs sparse | peak MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for graph_name in args.graphs:
        x, ei = load_graph(graph_name)
        print(f"<!-- {graph_name}: prepare once {prepare_seconds(x, ei) * 1e3:.0f} ms -->", flush=True)
        fns = {m: build(m, x, ei)[1] for m in args.methods}
        for backward in (False, True):
            times: dict[str, list[float]] = {m: [] for m in fns}
            for fn in fns.values():
                call(fn, backward)  # warm-up
            for _ in range(args.runs):
                for m, fn in fns.items():
                    start = time.perf_counter()
                    call(fn, backward)
                    times[m].append(time.perf_counter() - start)
            base = statistics.median(times[args.methods[0]])
            for m in fns:
                t = statistics.median(times[m])
                peak = None if args.no_memory else peak_mb(graph_name, m, backward)
                row = {"graph": graph_name, "nodes": x.size(0), "edges": ei.size(1),
                       "mode": "fwd+bwd" if backward else "fwd", "method": m, "ms": t * 1e3, "peak_mb": peak}
                rows.append(row)
                print(f"| {graph_name} | {x.size(0)} | {ei.size(1)} | {row['mode']} | {m} | {t * 1e3:.1f} | "
                      f"{t / base:.2f}x | {'-' if peak is None else f'{peak:.0f}'} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
