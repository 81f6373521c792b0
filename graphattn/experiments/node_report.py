"""What a node-classification run leaves behind: ``results.json`` (one row per run), a markdown
table and a bar chart of the test accuracy, and the lines ``graphattn node`` prints.

Every file is written to a temporary file in the output folder and renamed into place, so an
interrupted run leaves the previous results or the new ones, never a torn file.
"""

from __future__ import annotations

from typing import Any

from .metrics import Accuracy
from .node_config import PLANETOID_DATASETS, NodeConfig
from .options import resolved
from .published import published_table
from .results import markdown_table, write_json, write_text

__all__ = ["write_outputs", "report", "title"]


def title(config: NodeConfig, runs: list[dict[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in runs})
    b = config.batching
    split = {"public": "public split" if config.dataset in PLANETOID_DATASETS else "its split",
             "random": "random 60/20/20 split drawn per seed",
             "per-class": "20 + 30 per class drawn per seed"}[resolved(config.split, "split")]
    batches = "" if b.loader == "full" else f", {b.loader} batches of {b.batch_size}"
    return (f"{config.dataset}, {split}{batches}, {len(seeds)} seed{'s' if len(seeds) != 1 else ''}, "
            f"graphattn {config.architecture}")


def write_outputs(config: NodeConfig, runs: list[dict[str, Any]], summary: list[dict[str, Any]],
                  wall_time_s: float) -> None:
    """``results.json`` (one object per run), ``results.md`` and ``accuracy.png`` in ``config.out_dir``."""
    from ..viz import plot_bars

    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    name = title(config, runs)
    published = published_table(config.dataset, Accuracy()) if config.split == "random" else ""
    md = (f"# Node classification: {name}\n\n{markdown_table(summary, Accuracy())}\n\n"
          f"Early stopping on validation accuracy, ties broken by validation loss "
          f"(at most {config.training.epochs} epochs, patience {config.training.patience}); "
          f"test accuracy of the best validation epoch, mean ± sample std over seeds. "
          f"Total wall time {wall_time_s:.0f} s.\n" + (f"\n## Published\n\n{published}\n" if published else ""))
    write_json(out / "results.json", runs, allow_nan=True)
    write_text(out / "results.md", md)
    plot_bars(summary, name, path=out / "accuracy.png")


def report(results: dict[str, Any]) -> str:
    """The summary table and one line: how many runs, how long, what was written (rank 0 only:
    under ``torchrun`` the other ranks print nothing)."""
    if results.get("rank", 0) != 0:
        return ""
    return (f"{markdown_table(results['summary'], Accuracy())}\n{len(results['runs'])} runs in "
            f"{results['wall_time_s']:.0f} s; wrote results.json, results.md, accuracy.png to {results['out']}")
