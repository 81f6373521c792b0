"""Attention patterns and operators side by side on one sequence task: accuracy against cost.

Every branch of :class:`StudyConfig` ``patterns`` (a pattern, or an attention operator along
``Full()``: ``performer(M)``, ``linformer(K)``, see :mod:`.attention_spec`) is trained with every
seed under one protocol, the :mod:`~graphattn.experiments.sequence_classification` run with the
same model, data, budget and early stopping; only the attention differs. Per branch the study
reports the mean ± std test accuracy over seeds (sample std; 0 for one seed), the time per epoch
(training plus validation), the peak memory and the keys per query: for a fixed pattern its
edges over nodes on the first 256 test examples (what the pattern costs, whatever the kernel);
for a data-dependent one (``LSH``, ``KMeans``, ``TopK``) the edges the trained model chose there,
the mean over its layers and seeds (marked "routed"); for an operator its size instead, which no
edge count gives (Linformer's rank: summaries per query; Performer's random features). Against
the reference branch (``Full()`` when it is compared, else the first) it gives the accuracy
difference in points and the time and memory as fractions.

Peak memory: on CUDA the tensors' peak of the run; on CPU the peak resident set of the process,
so with ``isolate`` (the default) each run gets a fresh process (``spawn``) and its own peak,
which then includes Python, torch and the data (the same for every pattern) on top of the
attention.

Outputs in ``out`` (default ``runs/study/<task>``): ``runs/<pattern>/seed<k>/results.json`` per
run, ``results.json`` (summary and runs), ``results.md`` (the table) and ``accuracy_cost.png``.
A run whose ``results.json`` exists with the same settings is read instead of rerun, so an
interrupted study resumes where it stopped when the same command is given again.

    from graphattn.experiments.study import StudyConfig, run
    summary = run(StudyConfig.from_options(task="listops", patterns=("Full()", "Window(8)"), seeds=1))
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import time
from pathlib import Path

from tqdm.auto import tqdm

from ..files import FolderLock, check_output_file
from .registry import Task
from .results import OUTPUT_FILES, format_mean_std, write_json, write_text
from .sequence_config import TASKS
from .study_config import StudyConfig

__all__ = ["StudyConfig", "run", "report", "summarise", "markdown_table", "STUDY"]


def _slug(pattern: str) -> str:
    """A folder name for a pattern: its readable start and a hash of the whole text."""
    readable = re.sub(r"[^A-Za-z0-9]+", "-", pattern).strip("-")[:48]
    return f"{readable}-{hashlib.sha1(pattern.encode()).hexdigest()[:8]}"


def _one(cfg) -> dict:
    from .sequence_classification import run as run_sequence

    return run_sequence(cfg)


#: What a run's results.json must hold to be read back (older layouts lack some).
RUN_KEYS = ("pattern", "operator", "keys_counted", "test_acc", "best_val_acc", "epochs_run", "time_per_epoch_s",
            "peak_memory_mb", "keys_per_query", "parameters", "dataset", "data", "num_train", "num_val", "num_test", "device")


def _finished(folder: Path, options: dict) -> dict | None:
    """The metrics of a finished run with exactly these settings, else ``None``.

    Raises:
        ValueError: the run's ``results.json`` has these settings but an older layout (it lacks
            what the study reads); the one-line message says what to do.
    """
    path = check_output_file(folder / "results.json", "results")  # a FIFO there would block the read
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None

    def same(a: dict) -> dict:
        return {k: v for k, v in a.items() if k != "progress"}  # bars on or off: the same run

    if not (isinstance(metrics, dict) and isinstance(metrics.get("config"), dict)
            and same(metrics["config"]) == same(options)):
        return None
    missing = [k for k in RUN_KEYS if k not in metrics]
    if missing:
        raise ValueError(f"{str(folder / 'results.json')!r} was written by an older graphattn (it lacks "
                         f"{', '.join(missing)}); delete {str(folder)!r} to run it again, or use another --out")
    return metrics


def _run_one(cfg, isolate: bool) -> dict:
    if not isolate:
        return _one(cfg)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_one, cfg).result()


def branch(run: dict) -> str:
    """What a run compares: its operator (``performer(64)``), else its pattern."""
    return run.get("operator") or run["pattern"]


def summarise(runs: list[dict]) -> list[dict]:
    """One row per branch (in the order first seen) over its seeds; ``pattern`` names the
    branch (a pattern, or an operator along ``Full()``)."""
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(branch(r), []).append(r)
    rows = []
    for pattern, rs in by.items():
        accs = [r["test_acc"] for r in rs]
        rows.append({
            "pattern": pattern, "runs": len(rs), "seeds": [r["config"]["seed"] for r in rs],
            "test_acc_mean": statistics.fmean(accs), "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "test_accs": accs, "val_acc_mean": statistics.fmean(r["best_val_acc"] for r in rs),
            "epochs_mean": statistics.fmean(r["epochs_run"] for r in rs),
            "time_per_epoch_s": statistics.fmean(r["time_per_epoch_s"] for r in rs),
            "peak_memory_mb": max(r["peak_memory_mb"] for r in rs),
            "keys_per_query": statistics.fmean(r["keys_per_query"] for r in rs),
            "keys_counted": rs[0].get("keys_counted", "keys"), "parameters": rs[0]["parameters"],
        })
    ref = next((r for r in rows if r["pattern"] == "Full()"), rows[0])
    for r in rows:
        r["reference"] = ref["pattern"]
        r["acc_vs_reference_points"] = 100 * (r["test_acc_mean"] - ref["test_acc_mean"])
        r["time_vs_reference"] = r["time_per_epoch_s"] / ref["time_per_epoch_s"]
        r["memory_vs_reference"] = r["peak_memory_mb"] / ref["peak_memory_mb"]
    return rows


def _keys(row: dict) -> str:
    """The keys-per-query cell: a number for a fixed pattern, marked when counted otherwise."""
    counted = row.get("keys_counted", "keys")
    if counted in ("rank", "features"):
        return f"{row['keys_per_query']:.0f} ({counted})"
    return f"{row['keys_per_query']:.1f}" + (" (routed)" if counted == "keys (routed)" else "")


def markdown_table(rows: list[dict]) -> str:
    """The study table: accuracy, its difference to the reference, cost and its fraction."""
    ref = rows[0]["reference"]
    lines = [f"| attention | keys / query | test acc (%) | vs {ref} (points) | s / epoch | time vs {ref} "
             f"| peak MiB | memory vs {ref} | epochs | runs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        pattern = r["pattern"].replace("|", "\\|")  # a bare | would end the table cell, even in backticks
        acc = format_mean_std(r["test_acc_mean"], r["test_acc_std"], r["runs"], scale=100)
        lines.append(f"| `{pattern}` | {_keys(r)} | {acc} | {r['acc_vs_reference_points']:+.1f} | "
                     f"{r['time_per_epoch_s']:.2f} | {r['time_vs_reference']:.2f} | {r['peak_memory_mb']:.0f} | "
                     f"{r['memory_vs_reference']:.2f} | {r['epochs_mean']:.1f} | {r['runs']} |")
    return "\n".join(lines)


def _protocol(cfg: StudyConfig, first: dict) -> str:
    m, t = cfg.model, cfg.training
    data = first["data"]
    length = {k: data[k] for k in ("max_length", "tokens_mean", "frames_mean", "sequence_length", "hop_length")
              if k in data}
    return (f"{first['dataset']} ({cfg.task}): {first['num_train']} train / {first['num_val']} val / "
            f"{first['num_test']} test, {', '.join(f'{k} {v:.0f}' for k, v in length.items())}; "
            f"GraphTransformer {m.layers} layers, width {m.hidden}, {m.heads} heads, {first['parameters']} weights, "
            f"{cfg.pooling} pooling, {cfg.position} positions; AdamW lr {t.lr}, batch {t.batch_size}, at most "
            f"{t.epochs} epochs, early stopping on validation accuracy (patience {t.patience}), test accuracy of "
            f"the best validation epoch; {first['device']}.")


def run(cfg: StudyConfig) -> dict:
    """Run (or resume) the study; returns ``{"summary", "runs", ...}`` (also in ``out``, which
    the study holds against other runs)."""
    if not isinstance(cfg, StudyConfig):
        raise TypeError(f"cfg must be a StudyConfig, got {type(cfg).__name__}")
    with FolderLock(cfg.out_dir, outputs=OUTPUT_FILES):
        return _run(cfg)


def _run(cfg: StudyConfig) -> dict:
    out = cfg.out_dir
    tic = time.perf_counter()
    jobs = [(p, cfg.split.seed + k) for p in cfg.patterns for k in range(cfg.seeds)]
    runs, reused = [], 0
    for pattern, seed in (bar := tqdm(jobs, desc=f"study {cfg.task}", disable=not cfg.run.progress)):
        bar.set_postfix_str(f"{pattern}, seed {seed}")
        folder = out / "runs" / _slug(pattern) / f"seed{seed}"
        one = cfg.run_config(pattern, seed, str(folder))
        metrics = _finished(folder, one.options())
        reused += metrics is not None
        runs.append(metrics if metrics is not None else _run_one(one, cfg.isolate))
    rows = summarise(runs)
    protocol = _protocol(cfg, runs[0])
    title = f"{runs[0]['dataset']} ({cfg.task}), {cfg.seeds} seed{'s' if cfg.seeds > 1 else ''} per pattern"
    result = {"task": cfg.task, "protocol": protocol, "summary": rows, "wall_time_s": time.perf_counter() - tic,
              "runs_reused": reused, "config": cfg.options(), "out": str(out),
              "runs": [{k: v for k, v in r.items() if k != "history"} for r in runs]}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", result)
    md = (f"# Study: {title}\n\n{markdown_table(rows)}\n\n{protocol} Mean ± sample std over seeds; time per "
          f"epoch is training plus validation; peak memory as in graphattn.experiments.study. "
          f"Wall time {result['wall_time_s']:.0f} s ({reused} of {len(runs)} runs read from an earlier run).\n")
    write_text(out / "results.md", md)
    from ..viz import plot_accuracy_cost

    plot_accuracy_cost(rows, title, out / "accuracy_cost.png")
    return result


def report(m: dict) -> str:
    """What ``graphattn study`` prints: the table, then how many runs, how long, what was written."""
    return (f"{markdown_table(m['summary'])}\n{len(m['runs'])} runs ({m['runs_reused']} resumed) in "
            f"{m['wall_time_s']:.0f} s; wrote results.json, results.md, accuracy_cost.png to {m['out']}")


STUDY = Task(name="study", config=StudyConfig, runner=run, report=report, positional=("task", TASKS, "the sequence task"),
             help="compare attention patterns on one task: accuracy against time, memory and keys per query",
             description="Train every pattern with every seed under one protocol and report mean +- std test accuracy, "
                         "time per epoch, peak memory and keys per query. Rerun the same command to resume.")
