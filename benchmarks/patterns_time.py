"""Accuracy (or error) against time per epoch for the attention patterns, one panel per benchmark.

Reads the ``results.json`` that ``graphattn zinc``, ``graphattn peptides`` and ``graphattn node``
write (one row per model and seed), summarises each model over its seeds
(:func:`graphattn.experiments.results.summarise`) and draws, for each file, its test metric
(mean ± 1 std over seeds) against its mean time per epoch, each point named after its model. The
time axes start at 0, so ratios of cost read off the picture. The metric is the file's own: MAE
for ZINC (lower is better), average precision for Peptides-func, accuracy for the node graphs.

    python benchmarks/patterns_time.py runs/ZINC/cpu/results.json runs/Peptides-func/cpu/results.json \\
        runs/node/Amazon-Computers/results.json --out docs/results/patterns-time.png
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from matplotlib.figure import Figure

from graphattn.experiments.metrics import Accuracy, AveragePrecision, MeanAbsoluteError
from graphattn.experiments.results import summarise
from graphattn.viz import DPI

METRICS = [MeanAbsoluteError(), AveragePrecision(), Accuracy()]


def panel(ax, path: Path) -> None:
    """One benchmark's models on ``ax``: the first of :data:`METRICS` its rows hold."""
    runs = json.loads(path.read_text())
    metric = next(m for m in METRICS if f"test_{m.name}" in runs[0])
    scale = 100.0 if metric.percent else 1.0
    summary = summarise(runs, [metric])
    seeds = min(row["runs"] for row in summary)
    for i, row in enumerate(summary):
        x, y = row["epoch_time_s"], scale * row[f"test_{metric.name}_mean"]
        ax.errorbar(x, y, yerr=scale * row[f"test_{metric.name}_std"] if seeds > 1 else None, fmt="o", capsize=3,
                    color=f"C{i % 10}")
        ax.annotate(row["model"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlim(0, 1.2 * max(row["epoch_time_s"] for row in summary))
    ax.set_xlabel("time per epoch (s)")
    arrow = "lower is better" if not metric.higher_is_better else "higher is better"
    ax.set_ylabel(f"test {metric.name.upper()}{' (%)' if metric.percent else ''}, {arrow}")
    ax.set_title(f"{path.parent.name if path.parent.name not in ('cpu', 'published') else path.parent.parent.name}"
                 f" ({seeds} seed{'s' * (seeds != 1)})", fontsize=10)
    ax.grid(alpha=0.3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results.json files of benchmark runs")
    parser.add_argument("--out", type=Path, default=Path("patterns-time.png"), help="the picture to write")
    args = parser.parse_args(argv)
    columns = min(3, len(args.results))
    rows = math.ceil(len(args.results) / columns)
    fig = Figure(figsize=(5.0 * columns, 4.0 * rows), dpi=DPI, layout="constrained")
    axes = list(fig.subplots(rows, columns, squeeze=False).flat)
    for ax, path in zip(axes, args.results):
        panel(ax, path)
    for ax in axes[len(args.results):]:
        ax.set_visible(False)
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
