"""A user's pattern that states only ``mask`` against the built-in patterns it equals.

``Band(r)`` defines nothing but ``mask = |q - k| <= r``; the kernels see no pieces and take
the tile kernel (the predicate scanned once per pattern value and length, only non-empty tiles
computed). ``Window(r)`` takes the band kernel. ``EvenBand(r)`` is issue 21's "same parity within
r" (``|q - k| <= r`` and ``q - k`` even), once stated only by its mask and once declaring its
pieces (``Pieces(band=self, left=r, right=r)``), beside ``Window(r) & Stride(2)``, the same graph
built in. Layer = ``SelfAttentionConv(256, 256, heads=4)`` forward, fp32, batch 1, on a graph
prepared once (as a FlexAttention ``BlockMask`` is); ``prepare`` is that one-time cost (build +
plan) for a first object, ``again`` for a second, equal object (patterns compare by value, so
its plan is remembered). Medians of alternated rounds after a warm-up; peak memory is the growth
of the peak RSS during one forward, in a fresh process per row.

    python benchmarks/custom_pattern.py                     # n = 16384, radius 128
    python benchmarks/custom_pattern.py --parity --radius 16 --n 4096
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
from graphattn.patterns import Pattern, Pieces, Stride, Window


class Band(Pattern):
    """``|q - k| <= radius``, stated only as a predicate."""

    def __init__(self, radius: int):
        self.radius = radius

    def mask(self, q_idx, k_idx, n):
        return (q_idx - k_idx).abs() <= self.radius

    def __repr__(self) -> str:
        return f"Band({self.radius})"


class EvenBand(Pattern):
    """``|q - k| <= radius`` and ``q - k`` even, stated only as a predicate."""

    def __init__(self, radius: int):
        self.radius = radius

    def mask(self, q_idx, k_idx, n):
        d = k_idx - q_idx
        return (d.abs() <= self.radius) & (d % 2 == 0)


class DeclaredEvenBand(EvenBand):
    """The same, declaring its structure: a band whose mask depends on ``k - q`` only."""

    def pieces(self) -> Pieces:
        return Pieces(band=self, left=self.radius, right=self.radius)


def prepared(pattern: Pattern, n: int) -> tuple[AttentionGraph, float]:
    start = time.perf_counter()
    graph = AttentionGraph.build(pattern, n)
    ops.choose_backend(graph)  # the choice and (for Band) the tile scan
    q = torch.zeros(n, 1, 1)
    ops.attention(q, q, q, graph)  # derives and caches the plan
    return graph, time.perf_counter() - start


def setup(n: int, radius: int, parity: bool = False):
    torch.manual_seed(0)
    layer = SelfAttentionConv(256, 256, heads=4).eval()
    x = torch.randn(n, 256)
    if parity:
        patterns = {"Window & Stride(2) (built-in)": Window(radius) & Stride(2),
                    "EvenBand (mask only)": EvenBand(radius), "EvenBand (declares pieces)": DeclaredEvenBand(radius)}
    else:
        patterns = {"Window (built-in)": Window(radius), "Band (mask only)": Band(radius)}
    return layer, x, patterns


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def probe(n: int, radius: int, name: str, parity: bool) -> None:
    layer, x, patterns = setup(n, radius, parity)
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
    parser.add_argument("--parity", action="store_true", help="issue 21's 'same parity within radius' patterns")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe(args.n, args.radius, args.probe, args.parity)
    layer, x, patterns = setup(args.n, args.radius, args.parity)
    graphs = {name: prepared(p, args.n) for name, p in patterns.items()}
    again = {name: prepared(type(p)(args.radius) if not isinstance(p, type(Window(1) & Stride(2))) else p, args.n)[1]
             for name, p in patterns.items()}  # a second, equal object
    times: dict[str, list[float]] = {name: [] for name in patterns}
    with torch.no_grad():
        for graph, _ in graphs.values():  # warm-up
            layer(x, graph)
        for _ in range(args.runs):
            for name, (graph, _) in graphs.items():
                start = time.perf_counter()
                layer(x, graph)
                times[name].append(time.perf_counter() - start)
    base_name = next(iter(patterns))
    base = statistics.median(times[base_name])
    print(f"n = {args.n}, radius {args.radius}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| pattern | kernel | forward (ms) | ratio to the built-in | prepare once (ms) | again (ms) | peak MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for name, (graph, prep) in graphs.items():
        t = statistics.median(times[name])
        cmd = [sys.executable, __file__, "--n", str(args.n), "--radius", str(args.radius), "--probe", name]
        cmd += ["--parity"] if args.parity else []
        peak = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout.strip().splitlines()[-1]
        rows.append({"pattern": name, "forward_s": t, "ratio": t / base, "prepare_s": prep, "again_s": again[name],
                     "peak_mb": float(peak)})
        kernel = ops.choose_kernel(graph, ops.ScoreSpec(scale=1.0)).name
        print(f"| {name} | {kernel} | {t * 1e3:.1f} | {t / base:.2f}x | {prep * 1e3:.0f} | {again[name] * 1e3:.0f} | "
              f"{float(peak):.0f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
