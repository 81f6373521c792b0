"""What each score-side positional encoding costs, relative to none, on every fast kernel.

The whole layer (``SelfAttentionConv``, fp32, d_model 256, 4 heads x 64) over ``Window(128)``
(blocked kernel) and ``Full()`` (dense kernel), forward and forward + backward. Encodings are
alternated within each round; the table gives the median of ``--runs`` rounds after a warm-up
and the median over rounds of each encoding's time divided by the time without one in the same round.

    python benchmarks/encodings.py            # n = 4096 (Window) and 1024 (Full)
    python benchmarks/encodings.py --quick    # smaller and fewer rounds
    python benchmarks/encodings.py --threads 1  # on a shared machine (set OMP_NUM_THREADS=1 too)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from graphattn import ops
from graphattn.nn import ALiBi, RelativePositionBias, RotaryEncoding, SelfAttentionConv
from graphattn.patterns import Full, Window

D, HEADS = 256, 4
ENCODINGS = {
    "none": lambda: None,
    "RotaryEncoding": lambda: RotaryEncoding(D // HEADS),
    "ALiBi": lambda: ALiBi(HEADS),
    "RelativePositionBias": lambda: RelativePositionBias(HEADS),
}


def bench(pattern, n: int, backward: bool, runs: int) -> dict[str, tuple[float, float]]:
    """``name -> (median seconds, median over rounds of the time / the time without an encoding
    in the same round)``: the per-round ratio cancels load that drifts between rounds."""
    torch.manual_seed(0)
    x = torch.randn(n, D, requires_grad=backward)
    layers = {name: SelfAttentionConv(D, D, HEADS, position=make()) for name, make in ENCODINGS.items()}

    def call(layer):
        if backward:
            layer(x, pattern).sum().backward()
        else:
            with torch.no_grad():
                layer(x, pattern)

    for layer in layers.values():
        call(layer)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(runs):
        for name, layer in layers.items():
            start = time.perf_counter()
            call(layer)
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), statistics.median(a / b for a, b in zip(t, times["none"])))
            for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 1024 / 512, 3 rounds")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    runs = 3 if args.quick else args.runs
    configs = [(Window(128), 1024 if args.quick else 4096), (Full(), 512 if args.quick else 1024)]
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| pattern | n | mode | kernel | encoding | median s | vs none |")
    print("|---|---|---|---|---|---|---|")
    for pattern, n in configs:
        kernel = ops.choose_backend(pattern, num_nodes=n)
        for backward in (False, True):
            for name, (t, ratio) in bench(pattern, n, backward, runs).items():
                mode = "fwd+bwd" if backward else "fwd"
                print(f"| {pattern!r} | {n} | {mode} | {kernel} | {name} | {t:.4f} | {ratio:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
