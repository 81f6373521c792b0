"""graphattn's drop-in GATConv and TransformerConv against PyG's, called as PyG users call them.

Each layer is called every step with the raw ``edge_index`` (``conv(x, edge_index)``, PyG's
defaults: ``GATConv`` replaces self-loops, ``TransformerConv`` has its root weight), forward and
backward, and graphattn's layer also on a prepared ``AttentionGraph`` of the same edges (with the
self-loops ``GATConv`` adds): the raw call should cost what the prepared one costs (the adjacency is
prepared once per tensor and found again). One layer, 4 heads x 32 channels, fp32, 128 input
features, on a homophilous stochastic block model (10 blocks) with 50k nodes / ~0.5M edges.

Times are medians of ``--runs`` rounds after a warm-up, the methods alternated within each round;
each ratio is to PyG's layer of the same kind in the same run. Peak memory is the growth of the
peak RSS during one step, in a fresh process per method. ``--quick`` runs a 5k-node graph, 3
rounds, no memory probes (a smoke test, not a measurement).

    python benchmarks/pyg_layers.py                 # 50k nodes, 5 rounds, memory
    python benchmarks/pyg_layers.py --quick
    python benchmarks/pyg_layers.py --threads 1     # steadier on a shared machine
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
import torch_geometric.nn as pyg_nn
from torch_geometric.utils import add_self_loops, remove_self_loops

import graphattn.nn as ga_nn
from graphattn import AttentionGraph

HEADS, C, F = 4, 32, 128
METHODS = ("graphattn GATConv", "graphattn GATConv, prepared", "PyG GATConv",
           "graphattn TransformerConv", "graphattn TransformerConv, prepared", "PyG TransformerConv")


def sbm(n: int, edges: int, blocks: int = 10, inside: float = 0.8, seed: int = 0) -> torch.Tensor:
    """About ``edges`` directed edges, a fraction ``inside`` of them within one of ``blocks`` equal blocks."""
    gen = torch.Generator().manual_seed(seed)
    n_in = int(edges * inside)
    block = torch.randint(blocks, (n_in,), generator=gen)
    size = n // blocks
    inner = torch.stack([block * size + torch.randint(size, (n_in,), generator=gen),
                         block * size + torch.randint(size, (n_in,), generator=gen)])
    return torch.cat([inner, torch.randint(n, (2, edges - n_in), generator=gen)], dim=1)


def graph(quick: bool) -> tuple[torch.Tensor, torch.Tensor]:
    n = 5_000 if quick else 50_000
    torch.manual_seed(0)
    return torch.randn(n, F), sbm(n, 10 * n)


def build(method: str, x: torch.Tensor, ei: torch.Tensor) -> Callable[[], torch.Tensor]:
    """One training step's forward of ``method``, as its users call it."""
    torch.manual_seed(0)
    kind = "GATConv" if "GATConv" in method else "TransformerConv"
    layer = getattr(pyg_nn if method.startswith("PyG") else ga_nn, kind)(F, C, heads=HEADS)
    x = x.clone().requires_grad_(True)
    if method.endswith("prepared"):
        edges = add_self_loops(remove_self_loops(ei)[0], num_nodes=x.size(0))[0] if kind == "GATConv" else ei
        prepared = AttentionGraph.build(edges, x.size(0))
        return lambda: layer(x, prepared)
    return lambda: layer(x, ei)


def step(fn: Callable[[], torch.Tensor]) -> None:
    fn().sum().backward()


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def probe(method: str, quick: bool) -> None:
    """Print the peak RSS growth (MB) of one step of ``method`` after a warm-up step."""
    x, ei = graph(quick)
    fn = build(method, x, ei)
    step(fn)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status_kb("VmRSS")
    step(fn)
    print((_status_kb("VmHWM") - before) / 1024)


def peak_mb(method: str, quick: bool) -> float | None:
    cmd = [sys.executable, __file__, "--probe", json.dumps([method, quick]), "--threads", str(torch.get_num_threads())]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    try:
        return float(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="5k nodes, 3 rounds, no memory probes")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        probe(*json.loads(args.probe))
        return 0
    runs, memory = (3, False) if args.quick else (args.runs, not args.no_memory)
    x, ei = graph(args.quick)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"# {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}; "
          f"{x.size(0)} nodes, {ei.size(1)} edges, fwd+bwd, medians of {runs} rounds")
    fns = {m: build(m, x, ei) for m in args.methods}
    times: dict[str, list[float]] = {m: [] for m in fns}
    for fn in fns.values():
        step(fn)  # warm-up: the adjacency is prepared here, once
    for _ in range(runs):
        for m, fn in fns.items():
            start = time.perf_counter()
            step(fn)
            times[m].append(time.perf_counter() - start)
    print("| method | median ms | PyG's / this | peak MB | this / PyG's peak |")
    print("| --- | --- | --- | --- | --- |")
    medians = {m: statistics.median(t) * 1e3 for m, t in times.items()}
    peaks = {m: peak_mb(m, args.quick) if memory else None for m in fns}
    rows = []
    for m in fns:
        base = "PyG " + ("GATConv" if "GATConv" in m else "TransformerConv")
        speedup = medians[base] / medians[m] if base in medians else None
        mem = peaks[m] / peaks[base] if peaks[m] and peaks.get(base) else None
        rows.append({"method": m, "ms": medians[m], "speedup": speedup, "peak_mb": peaks[m], "peak_ratio": mem})
        print(f"| {m} | {medians[m]:.1f} | {'-' if speedup is None else f'{speedup:.2f}x'} | "
              f"{'-' if peaks[m] is None else f'{peaks[m]:.0f}'} | {'-' if mem is None else f'{mem:.2f}'} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
