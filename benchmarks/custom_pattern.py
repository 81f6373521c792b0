"""A user's pattern that states only ``mask`` against the built-in ``Window`` it equals.

``Band(r)`` defines nothing but ``mask = |q - k| <= r``; the kernels see no pieces and take
the generic tile path (the predicate scanned once per graph, only non-empty tiles computed).
``Window(r)`` takes the band path. Layer = ``SelfAttentionConv(256, 256, heads=4)`` forward,
fp32, batch 1, on a graph prepared once (as a FlexAttention ``BlockMask`` is); ``prepare`` is
that one-time cost (build + plan). Medians of alternated rounds after a warm-up; peak memory
is the growth of the peak RSS during one forward, in a fresh process per row.

    python benchmarks/custom_pattern.py            # n = 16384, radius 128
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from graphattn import AttentionGraph, ops
from graphattn.nn import SelfAttentionConv
from graphattn.patterns import Pattern, Window


class Band(Pattern):
    """``|q - k| <= radius``, stated only as a predicate."""

    def __init__(self, radius: int):
        self.radius = radius

    def mask(self, q_idx, k_idx, n):
        return (q_idx - k_idx).abs() <= self.radius

    def __repr__(self) -> str:
        return f"Band({self.radius})"


def prepared(pattern: Pattern, n: int) -> tuple[AttentionGraph, float]:
    start = time.perf_counter()
    graph = AttentionGraph.build(pattern, n)
    ops.choose_backend(graph)  # the choice and (for Band) the tile scan
    q = torch.zeros(n, 1, 1)
    ops.attention(q, q, q, graph)  # derives and caches the plan
    return graph, time.perf_counter() - start


def setup(n: int, radius: int):
    torch.manual_seed(0)
    layer = SelfAttentionConv(256, 256, heads=4).eval()
    x = torch.randn(n, 256)
    return layer, x, {"Window (built-in)": Window(radius), "Band (mask only)": Band(radius)}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def probe(n: int, radius: int, name: str) -> None:
    layer, x, patterns = setup(n, radius)
    graph, _ = prepared(patterns[name], n)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status_kb("VmRSS")
    with torch.no_grad():
        layer(x, graph)
    print((_status_kb("VmHWM") - before) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16384)
    parser.add_argument("--radius", type=int, default=128)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe(args.n, args.radius, args.probe)
    layer, x, patterns = setup(args.n, args.radius)
    graphs = {name: prepared(p, args.n) for name, p in patterns.items()}
    times: dict[str, list[float]] = {name: [] for name in patterns}
    with torch.no_grad():
        for graph, _ in graphs.values():  # warm-up
            layer(x, graph)
        for _ in range(args.runs):
            for name, (graph, _) in graphs.items():
                start = time.perf_counter()
                layer(x, graph)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["Window (built-in)"])
    print(f"n = {args.n}, radius {args.radius}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| pattern | backend | forward (ms) | ratio to Window | prepare once (ms) | peak MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = []
    for name, (graph, prep) in graphs.items():
        t = statistics.median(times[name])
        cmd = [sys.executable, __file__, "--n", str(args.n), "--radius", str(args.radius), "--probe", name]
        peak = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout.strip().splitlines()[-1]
        rows.append({"pattern": name, "forward_s": t, "ratio": t / base, "prepare_s": prep, "peak_mb": float(peak)})
        print(f"| {name} | {ops.choose_backend(graph)} | {t * 1e3:.1f} | {t / base:.2f}x | {prep * 1e3:.0f} | "
              f"{float(peak):.0f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
