"""Per-forward overhead of a model: the time spent outside projections and kernels.

A 4-layer ``GraphTransformer`` on ``Window(128)``, ``n = 4096`` (fp32, width 128, 4 heads, eval
mode, no grad). The attention compute (``F.scaled_dot_product_attention``, which the dense and
blocked kernels call) and every leaf module that does dense math (``Linear``, ``LayerNorm``,
``GELU``, ``Dropout``) are wrapped in a timer; what is left of the forward is overhead:
deriving the graph, plans and tile masks, gathering tiles, checks, dispatch, reshapes. Median
of ``--runs`` forwards after a warm-up.

    python benchmarks/overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from graphattn.models import GraphTransformer
from graphattn.patterns import Window

LEAVES = (nn.Linear, nn.LayerNorm, nn.GELU, nn.Dropout)


class Clock:
    """Seconds spent inside wrapped calls (never nested: SDPA calls no leaf module)."""

    def __init__(self) -> None:
        self.inside = 0.0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.inside += time.perf_counter() - start
        return timed


def measure(n: int, layers: int, runs: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = GraphTransformer(128, 128, 10, num_layers=layers, heads=4, pattern=Window(128)).eval()
    x = torch.randn(n, 128)
    clock = Clock()
    F.scaled_dot_product_attention = clock.wrap(F.scaled_dot_product_attention)
    for module in model.modules():
        if isinstance(module, LEAVES):
            module.forward = clock.wrap(module.forward)
    totals, overheads = [], []
    with torch.no_grad():
        for i in range(runs + 1):
            clock.inside = 0.0
            start = time.perf_counter()
            model(x)
            total = time.perf_counter() - start
            if i:  # the first call warms up
                totals.append(total)
                overheads.append(total - clock.inside)
    return statistics.median(totals), statistics.median(overheads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    total, overhead = measure(args.n, args.layers, args.runs)
    print(f"| model | n | forward (ms) | overhead (ms) | overhead share |\n| --- | --- | --- | --- | --- |\n"
          f"| GraphTransformer, {args.layers} layers, Window(128) | {args.n} | {total * 1e3:.1f} | "
          f"{overhead * 1e3:.1f} | {overhead / total:.0%} |")


if __name__ == "__main__":
    main()
