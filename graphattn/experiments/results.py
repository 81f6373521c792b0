"""What experiments report: result rows, summaries over seeds, tables, and the files they go to.

**A run's row** (one trained model, one seed) holds, for every task of the seed protocol
(:mod:`.seeds`)::

    model, pattern, seed,
    val_<metric>, test_<metric>      for each metric of the task's objective but the loss
    epochs, best_epoch, epoch_time_s, peak_mem_mb, parameters
    ...                              what the task adds (its encoding, loader, budget)

**A summary row** (one model over its seeds)::

    model, pattern, runs, test_<m>_mean, test_<m>_std, val_<m>_mean, epochs_mean, epoch_time_s,
    peak_mem_mb, parameters

with the sample standard deviation over seeds (0 for one seed). Tables print a single seed's
value without ``±``. Files are written atomically (:func:`graphattn.files.write_atomic`).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..files import write_atomic
from .metrics import Metric

__all__ = ["mean_std", "format_mean_std", "run_row", "summarise", "markdown_table", "key_value_table", "write_json",
           "write_text",
           "write_results"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def format_mean_std(mean: float, std: float, runs: int, *, scale: float = 1.0, digits: int = 1) -> str:
    """``"81.7 ± 0.3"``, or ``"81.7"`` for one run (one seed has no spread to show)."""
    text = f"{scale * mean:.{digits}f}"
    return text if runs == 1 else f"{text} ± {scale * std:.{digits}f}"


def run_row(model: str, pattern: str, seed: int, scores: dict[str, float], metrics: Sequence[Metric], history,
            peak_mem_mb: float, parameters: int, **extra: Any) -> dict[str, Any]:
    """The row of one run (see the module docstring): ``scores`` holds ``val_*`` / ``test_*``
    values, of which those of ``metrics`` (the loss left out) are kept."""
    kept = {f"{split}_{m.name}": scores[f"{split}_{m.name}"] for split in ("val", "test") for m in metrics
            if m.name != "loss"}
    return {"model": model, "pattern": pattern, "seed": seed, **kept, "epochs": history.epochs_run,
            "best_epoch": history.best_epoch, "epoch_time_s": history.mean_epoch_time_s, "peak_mem_mb": peak_mem_mb,
            "parameters": parameters, **extra}


def summarise(runs: list[dict[str, Any]], metrics: Sequence[Metric]) -> list[dict[str, Any]]:
    """One summary row per model, in first-seen order (see the module docstring)."""
    rows = []
    for name in dict.fromkeys(r["model"] for r in runs):
        group = [r for r in runs if r["model"] == name]
        row: dict[str, Any] = {"model": name, "pattern": group[0]["pattern"], "runs": len(group)}
        for m in metrics:
            if m.name == "loss":
                continue
            mean, std = mean_std([r[f"test_{m.name}"] for r in group])
            row.update({f"test_{m.name}_mean": mean, f"test_{m.name}_std": std,
                        f"val_{m.name}_mean": statistics.fmean(r[f"val_{m.name}"] for r in group)})
        row.update({"epochs_mean": statistics.fmean(r["epochs"] for r in group),
                    "epoch_time_s": statistics.fmean(r["epoch_time_s"] for r in group),
                    "peak_mem_mb": max(r["peak_mem_mb"] for r in group)})
        if "parameters" in group[0]:
            row["parameters"] = group[0]["parameters"]
        rows.append(row)
    return rows


def markdown_table(summary: list[dict[str, Any]], metric: Metric) -> str:
    """One row per model: the test ``metric`` (mean ± std over seeds; a percentage for accuracy),
    its validation mean, epochs run, time per epoch, peak memory, parameters, runs."""
    scale, unit = (100.0, " (%)") if metric.percent else (1.0, "")
    digits = 1 if metric.percent else 4
    name = {"acc": "acc", "mae": "MAE", "ap": "AP"}.get(metric.name, metric.name)
    lines = [f"| model | test {name}{unit} | val {name}{unit} | epochs | time / epoch (ms) | peak mem (MiB) "
             "| parameters | runs |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary:
        test = format_mean_std(row[f"test_{metric.name}_mean"], row[f"test_{metric.name}_std"], row["runs"],
                               scale=scale, digits=digits)
        lines.append(f"| {row['model']} | {test} | {scale * row[f'val_{metric.name}_mean']:.{digits}f} "
                     f"| {row['epochs_mean']:.0f} | {1000 * row['epoch_time_s']:.1f} | {row['peak_mem_mb']:.0f} "
                     f"| {row.get('parameters', 0):,} | {row['runs']} |")
    return "\n".join(lines)


def key_value_table(rows: Sequence[tuple[str, object]]) -> str:
    """Aligned ``key  value`` lines, floats to four decimals (what the sequence and graph commands print)."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{key:<{width}}  {f'{value:.4f}' if isinstance(value, float) else value}" for key, value in rows)


def write_json(path: str | Path, obj: Any, *, allow_nan: bool = False) -> None:
    """``obj`` as indented JSON; a NaN is refused unless ``allow_nan`` (then written as ``NaN``)."""
    text = json.dumps(obj, indent=2, allow_nan=allow_nan) + "\n"
    write_atomic(path, lambda f: f.write(text.encode()))


def write_text(path: str | Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode()))


def write_results(out: str | Path, metrics: dict, history: list[dict]) -> None:
    """``results.json`` (NaN refused) and, when there is a history, ``history.png`` in ``out``."""
    from ..viz import plot_history

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", metrics)
    if history:
        plot_history(history, out / "history.png")
