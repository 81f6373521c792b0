"""What an experiment leaves behind: ``results.json``, a markdown table and an accuracy plot.

Every file is written to a temporary file in the output folder and renamed into place, so an
interrupted run leaves the previous results or the new ones, never a torn file.
"""

from __future__ import annotations

import json
from typing import Any

from ..files import write_atomic
from .node_config import PLANETOID_DATASETS

__all__ = ["write_outputs", "markdown_table", "plot_accuracy"]


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """One row per model: test accuracy (mean ± std over seeds, %), validation accuracy, epochs
    run, time per epoch, peak memory, runs."""
    lines = ["| model | test acc (%) | val acc (%) | epochs | time / epoch (ms) | peak mem (MiB) | runs |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary:
        lines.append(
            f"| {row['model']} | {100 * row['test_acc_mean']:.1f} ± {100 * row['test_acc_std']:.1f} "
            f"| {100 * row['val_acc_mean']:.1f} | {row['epochs_mean']:.0f} | {1000 * row['epoch_time_s']:.1f} "
            f"| {row['peak_mem_mb']:.0f} | {row['runs']} |")
    return "\n".join(lines)


def plot_accuracy(summary: list[dict[str, Any]], title: str):
    """A bar per model: mean test accuracy (%) with the std over seeds as error bar."""
    from matplotlib.figure import Figure

    names = [row["model"] for row in summary]
    means = [100 * row["test_acc_mean"] for row in summary]
    stds = [100 * row["test_acc_std"] for row in summary]
    fig = Figure(figsize=(1.2 * len(names) + 2, 3.5), dpi=100, layout="tight")
    ax = fig.add_subplot()
    ax.bar(range(len(names)), means, yerr=stds, capsize=4, color="tab:blue", alpha=0.8)
    for i, (m, s) in enumerate(zip(means, stds, strict=True)):
        ax.text(i, m + s + 0.5, f"{m:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=20)
    low = min(m - s for m, s in zip(means, stds, strict=True))
    ax.set_ylim(max(0.0, low - 10), min(100.0, max(m + s for m, s in zip(means, stds, strict=True)) + 5))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    return fig


def write_outputs(config, runs: list[dict[str, Any]], summary: list[dict[str, Any]], wall_time_s: float) -> None:
    """``results.json`` (one object per run), ``results.md`` and ``accuracy.png`` in ``config.out_dir``."""
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    seeds = sorted({r["seed"] for r in runs})
    b = config.batching
    split = "public split" if config.dataset in PLANETOID_DATASETS else "its split"
    batches = "" if b.loader == "full" else f", {b.loader} batches of {b.batch_size}"
    title = (f"{config.dataset}, {split}{batches}, {len(seeds)} seed{'s' if len(seeds) != 1 else ''}, "
             f"graphattn {config.architecture}")
    table = markdown_table(summary)
    md = (f"# Node classification: {title}\n\n{table}\n\n"
          f"Early stopping on validation accuracy, ties broken by validation loss "
          f"(at most {config.training.epochs} epochs, patience {config.training.patience}); "
          f"test accuracy of the best validation epoch. Total wall time {wall_time_s:.0f} s.\n")
    write_atomic(out / "results.json", lambda f: f.write((json.dumps(runs, indent=2) + "\n").encode()))
    write_atomic(out / "results.md", lambda f: f.write(md.encode()))
    fig = plot_accuracy(summary, title)
    write_atomic(out / "accuracy.png", lambda f: fig.savefig(f, format="png"))
