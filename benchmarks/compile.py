"""What torch.compile(fullgraph=True) buys: eager vs compiled forward (and forward + backward) time.

Three cases, one per kind of kernel, each a 4-layer ``GraphTransformer`` (width 128, 4 heads,
fp32) handed a prepared :class:`~graphattn.AttentionGraph` built once outside the timed calls:

* ``dense``: ``Full()`` on a batch of 8 sequences of 256 nodes (one SDPA call per layer);
* ``blocked``: ``Window(64)`` on one sequence of ``--n`` nodes (the non-empty tiles);
* ``sparse``: a random graph of ``--n`` nodes with 8 in-edges per node (explicit ``edge_index``;
  the eager model runs the CSR kernel, the compiled one its gather / scatter twin, which is
  all dynamo can trace: see ``ops.dispatch``).

Each compiled model is compiled once (``mode`` from ``--mode``), warmed up, then timed: the
median of ``--runs`` calls, eager and compiled alike. The compile time of the first call is
reported too. Prints a markdown table; ``--json FILE`` also writes the numbers.

    python benchmarks/compile.py                 # the measurement (a quiet machine, minutes)
    python benchmarks/compile.py --n 512 --runs 2 --batch 2 --length 64   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from graphattn import AttentionGraph, ops
from graphattn.models import GraphTransformer
from graphattn.patterns import Full, Window


def cases(n: int, batch: int, length: int, device: torch.device) -> dict[str, tuple[torch.Tensor, AttentionGraph]]:
    gen = torch.Generator().manual_seed(0)
    dst = torch.arange(n).repeat_interleave(8)
    edges = torch.stack([torch.randint(0, n, (8 * n,), generator=gen), dst])
    out = {"dense": (torch.randn(batch * length, 128, generator=gen),
                     AttentionGraph.build(Full(), lengths=[length] * batch)),
           "blocked": (torch.randn(n, 128, generator=gen), AttentionGraph.build(Window(64), n)),
           "sparse": (torch.randn(n, 128, generator=gen), AttentionGraph.build(edges, n))}
    return {name: (x.to(device), graph.to(device)) for name, (x, graph) in out.items()}


def median_time(fn: Callable[[], object], runs: int, device: torch.device) -> float:
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, x: torch.Tensor, graph: AttentionGraph, args: argparse.Namespace,
            device: torch.device) -> dict:
    torch.manual_seed(0)
    model = GraphTransformer(128, 128, 10, num_layers=4, heads=4, dropout=0.0).to(device)
    backend = ops.choose_backend(graph, device=device)

    def forward(m):
        with torch.no_grad():
            return m(x, graph)

    def train_step(m):
        m(x, graph).square().mean().backward()

    row = {"case": name, "n": x.size(0), "edges": graph.num_edges, "backend": backend}
    for what, step in (("forward", forward), ("train", train_step)):
        model.train(what == "train")
        torch._dynamo.reset()
        compiled = torch.compile(model, fullgraph=True, mode=args.mode)
        step(model)  # warm the eager path and the graph's caches
        start = time.perf_counter()
        step(compiled)
        row[f"{what}_compile_s"] = time.perf_counter() - start
        for _ in range(2):
            step(compiled)
        row[f"{what}_eager_ms"] = median_time(partial(step, model), args.runs, device) * 1e3
        row[f"{what}_compiled_ms"] = median_time(partial(step, compiled), args.runs, device) * 1e3
        row[f"{what}_speedup"] = row[f"{what}_eager_ms"] / row[f"{what}_compiled_ms"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192, help="nodes of the blocked and sparse cases")
    parser.add_argument("--batch", type=int, default=8, help="sequences of the dense case")
    parser.add_argument("--length", type=int, default=256, help="nodes per sequence of the dense case")
    parser.add_argument("--runs", type=int, default=10, help="timed calls per measurement (median)")
    parser.add_argument("--mode", default="default", choices=("default", "reduce-overhead", "max-autotune"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = [measure(name, x, graph, args, device) for name, (x, graph) in cases(args.n, args.batch, args.length,
                                                                                 device).items()]
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, mode={args.mode}\n")
    print("| case | n | edges | eager kernel | forward eager / compiled (ms) | speedup | "
          "train step eager / compiled (ms) | speedup | compile (s) fwd / train |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['case']} | {r['n']} | {r['edges']} | {r['backend']} | {r['forward_eager_ms']:.1f} / "
              f"{r['forward_compiled_ms']:.1f} | {r['forward_speedup']:.2f}x | {r['train_eager_ms']:.1f} / "
              f"{r['train_compiled_ms']:.1f} | {r['train_speedup']:.2f}x | {r['forward_compile_s']:.0f} / "
              f"{r['train_compile_s']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
