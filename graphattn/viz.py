"""Pictures: attention patterns as adjacency images, attention maps, graphs, training curves, and
the experiments' results (a bar per model, accuracy or error against cost per pattern).

Every function returns a matplotlib ``Figure`` built without ``pyplot`` (so it works headless,
leaves nothing open in pyplot's registry and renders with Agg), and writes a PNG when given
``path`` (atomically: a temporary file in the same folder, then a rename). Sizes are given
either as ``size=(width_px, height_px)`` (the PNG has exactly that many pixels) or as
matplotlib's ``figsize`` in inches at :data:`DPI` dots per inch.

In the adjacency pictures rows are queries ``i`` and columns keys ``j`` (masks are indexed
``[query, key]``, see docs/architecture.md):
a dark cell at ``(i, j)`` means query ``i`` attends to key ``j``.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .checks import MAX_INDEX, check_allocation, check_float, check_int, check_path
from .files import write_atomic
from .patterns import Full, Global, Pattern, Random, Stride, Window, bigbird, check_edge_index, longformer

__all__ = ["plot_pattern", "pattern_gallery", "attention_to_dense", "plot_attention", "draw_graph",
           "plot_history", "plot_bars", "plot_accuracy_cost", "plot_metric_time", "DPI", "MAX_PICTURE_NODES"]

DPI = 100
MAX_PICTURE_NODES = 4096
"""The largest ``n`` drawn as an ``n x n`` picture (the dense mask is built)."""


def _figure(size: tuple[int, int] | None, figsize: tuple[float, float] | None, default: tuple[float, float]) -> Figure:
    if size is not None and figsize is not None:
        raise ValueError("give either size=(width_px, height_px) or figsize=(width_in, height_in), not both")
    if size is not None:
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 16 for s in size)):
            raise ValueError(f"size must be (width_px, height_px), two ints >= 16, got {size!r}")
        figsize = (size[0] / DPI, size[1] / DPI)
    elif figsize is not None:
        if not isinstance(figsize, (tuple, list)) or len(figsize) != 2 or not all(
                isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s < math.inf for s in figsize):
            raise ValueError(f"figsize must be (width_in, height_in), two positive numbers, got {figsize!r}")
    width, height = figsize or default
    # the canvas is width x height RGBA pixels at DPI
    check_allocation(int(width * DPI) * int(height * DPI) * 4, f"a {width * DPI:.0f} x {height * DPI:.0f} pixel "
                     "picture (size / figsize)", "cpu", "use a smaller size or figsize")
    return Figure(figsize=(width, height), dpi=DPI, layout="tight")


def _save(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is None:
        return fig
    path = Path(check_path(path, "path"))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
    return fig


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PICTURE_NODES:
        raise ValueError(f"n must be an int in [1, {MAX_PICTURE_NODES}] to draw an n x n picture, got {n!r}")
    return n


def _grid(count: int, ncols: int | None) -> tuple[int, int]:
    cols = min(count, 4) if ncols is None else check_int(ncols, "ncols", 1, MAX_INDEX)
    cols = min(cols, count)
    return math.ceil(count / cols), cols


def _panels(count: int, ncols: int | None, size, figsize, panel: tuple[float, float]) -> tuple[Figure, list, int]:
    """A figure with ``count`` axes laid ``ncols`` to a row (spare cells blanked), ``panel``
    inches each unless ``size`` / ``figsize`` is given; returns the figure, the axes, the columns."""
    rows, cols = _grid(count, ncols)
    fig = _figure(size, figsize, (panel[0] * cols, panel[1] * rows))
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[count:]:
        ax.set_axis_off()
    return fig, axes[:count], cols


def plot_pattern(patterns: Pattern | Sequence[Pattern] | Mapping[str, Pattern], n: int, *,
                 titles: Sequence[str] | None = None, path: str | os.PathLike | None = None,
                 size: tuple[int, int] | None = None, figsize: tuple[float, float] | None = None,
                 ncols: int | None = None) -> Figure:
    """Adjacency pictures of one or more patterns on ``n`` nodes, side by side.

    Args:
        patterns: a pattern, a list of them, or a dict ``name -> pattern`` (names become titles).
        n: the number of nodes (``1 .. MAX_PICTURE_NODES``).
        titles: one title per pattern (default: the names, or each pattern's ``repr``).
        path: where to write a PNG.
        size, figsize: the picture size in pixels, or in inches.
        ncols: panels per row (default: up to 4).
    """
    if isinstance(patterns, Pattern):
        patterns = [patterns]
    if isinstance(patterns, Mapping):
        names, patterns = list(patterns.keys()), list(patterns.values())
        titles = names if titles is None else titles
    if not isinstance(patterns, (list, tuple)) or not patterns:
        raise TypeError("patterns must be a Pattern, a non-empty list of them or a dict name -> Pattern")
    for i, p in enumerate(patterns):
        if not isinstance(p, Pattern):
            raise TypeError(f"patterns[{i}] must be a Pattern, got {type(p).__name__}")
    n = _check_n(n)
    if titles is not None and (isinstance(titles, str) or not isinstance(titles, Sequence)):
        raise TypeError(f"titles must be a list of str, one per pattern, got {type(titles).__name__}")
    titles = [repr(p) for p in patterns] if titles is None else list(titles)
    if len(titles) != len(patterns):
        raise ValueError(f"titles must have one entry per pattern ({len(patterns)}), got {len(titles)}")
    fig, axes, cols = _panels(len(patterns), ncols, size, figsize, (3.0, 3.5))
    for k, ax in enumerate(axes):
        mask = patterns[k].dense_mask(n)  # (n, n) [query, key]
        edges = int(mask.sum())
        ax.imshow(mask.numpy(), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title("\n".join(textwrap.wrap(str(titles[k]), 32)) + f"\n{edges} edges ({edges / n**2:.0%})",
                     fontsize=8)
        ax.set_xlabel("key j", fontsize=8)
        if k % cols == 0:
            ax.set_ylabel("query i", fontsize=8)
        ax.tick_params(labelsize=6)
    return _save(fig, path)


def pattern_gallery(n: int = 32, *, path: str | os.PathLike | None = None, size: tuple[int, int] | None = None,
                    figsize: tuple[float, float] | None = None) -> Figure:
    """The figure every sparse-attention lecture shows: full, local, stride, global, random,
    Longformer and BigBird on ``n`` nodes (``n >= 4``)."""
    if isinstance(n, int) and not isinstance(n, bool) and n < 4:
        raise ValueError(f"n must be >= 4 for the gallery (random draws 3 keys per query), got {n}")
    gallery = {
        "full": Full(),
        "local: Window(2)": Window(2),
        "stride: Stride(4)": Stride(4),
        "global: Global((0,))": Global((0,)),
        "random: Random(3)": Random(3, seed=0),
        "Longformer": longformer(2, (0,)),
        "BigBird": bigbird(2, (0,), 2, seed=0),
    }
    return plot_pattern(gallery, n, path=path, size=size, figsize=figsize, ncols=4)


def attention_to_dense(edge_index: Tensor, alpha: Tensor, n: int) -> Tensor:
    """Attention weights ``(edge_index, alpha)`` as a dense ``[H, n, n]`` matrix ``[head, query, key]``.

    ``alpha`` is ``[E, H]`` (or ``[E]`` for one head); absent edges are 0, duplicate edges add up.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    edge_index = check_edge_index(edge_index, n)
    if isinstance(alpha, Tensor) and not alpha.is_floating_point():
        raise TypeError(f"alpha must be a float tensor of attention weights, got dtype {alpha.dtype}")
    if not isinstance(alpha, Tensor) or alpha.dim() not in (1, 2) or alpha.size(0) != edge_index.size(1):
        shape = list(alpha.shape) if isinstance(alpha, Tensor) else type(alpha).__name__
        raise ValueError(f"alpha must be a tensor [E, H] or [E] with E={edge_index.size(1)}, got {shape}")
    alpha = alpha.detach()
    alpha = alpha[:, None] if alpha.dim() == 1 else alpha  # (E, H)
    check_allocation(n * n * alpha.size(1) * alpha.element_size(), f"a dense [H, n, n] = [{alpha.size(1)}, {n}, {n}] "
                     "attention matrix", alpha.device, "keep the weights as (edge_index, alpha), or take a subgraph")
    dense = alpha.new_zeros(n, n, alpha.size(1))  # (n, n, H) [query, key, head]
    dense.index_put_((edge_index[1], edge_index[0]), alpha, accumulate=True)
    return dense.permute(2, 0, 1).contiguous()  # (H, n, n)


def plot_attention(weights: tuple[Tensor, Tensor], n: int, *, heads: Sequence[int] | None = None,
                   path: str | os.PathLike | None = None, size: tuple[int, int] | None = None,
                   figsize: tuple[float, float] | None = None, ncols: int | None = None) -> Figure:
    """Heatmaps of attention weights ``(edge_index, alpha[E, H])``, one panel per head;
    pairs that are not edges stay white.

    Args:
        weights: the pair every kernel returns.
        n: the number of nodes.
        heads: which heads to show (default: all).
        path, size, figsize, ncols: as in :func:`plot_pattern`.
    """
    if not isinstance(weights, (tuple, list)) or len(weights) != 2:
        raise TypeError("weights must be a pair (edge_index [2, E], alpha [E, H])")
    dense = attention_to_dense(weights[0], weights[1], _check_n(n)).float().cpu()  # (H, n, n)
    edges = attention_to_dense(weights[0], torch.ones(weights[0].size(1)), n)[0] > 0  # (n, n)
    dense = dense.masked_fill(~edges, math.nan)  # non-edges are blank, not "weight 0"
    if heads is not None and (isinstance(heads, str) or not isinstance(heads, Sequence)):
        raise TypeError(f"heads must be a list of head indices, got {type(heads).__name__}")
    heads = list(range(dense.size(0))) if heads is None else list(heads)
    bad = [h for h in heads if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h < dense.size(0)]
    if bad or not heads:
        raise ValueError(f"heads must be a non-empty list of head indices in [0, {dense.size(0)}), got {heads}")
    fig, axes, _ = _panels(len(heads), ncols, size, figsize, (3.3, 3.0))
    for k, ax in enumerate(axes):
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
        image = ax.imshow(dense[heads[k]].numpy(), cmap=cmap, vmin=0, interpolation="nearest")
        fig.colorbar(image, ax=ax, shrink=0.8)
        ax.set_title(f"head {heads[k]}", fontsize=9)
        ax.set_xlabel("key j", fontsize=8)
        ax.set_ylabel("query i", fontsize=8)
        ax.tick_params(labelsize=6)
    return _save(fig, path)


def draw_graph(data, attention: tuple[Tensor, Tensor] | None = None, path: str | os.PathLike | None = None, *,
               layout: str = "spring", seed: int = 0, size: tuple[int, int] | None = None,
               figsize: tuple[float, float] | None = None) -> Figure:
    """Draw the attention graph of ``data`` (a ``Data`` or a ``Pattern`` with ``n`` via
    ``(pattern, n)``); with ``attention`` edge widths follow the mean weight over heads.

    Args:
        data: a ``Data`` with ``edge_index``, or a pair ``(pattern, n)``.
        attention: weights ``(edge_index, alpha[E, H])`` on the same graph.
        path: where to write a PNG.
        layout: ``"spring"`` (seeded), ``"circular"`` or ``"kamada_kawai"``.
        seed: the spring layout's seed.
        size, figsize: as in :func:`plot_pattern`.
    """
    import networkx as nx

    from .convert import to_networkx

    layouts = {"spring": lambda g: nx.spring_layout(g, seed=seed), "circular": nx.circular_layout,
               "kamada_kawai": nx.kamada_kawai_layout}
    if layout not in layouts:
        raise ValueError(f"layout must be one of {sorted(layouts)}, got {layout!r}")
    check_int(seed, "seed", 0, (1 << 32) - 1)  # numpy's RandomState takes 32 bits
    if seed and layout != "spring":  # never dropped silently
        raise ValueError(f"seed={seed} seeds the spring layout only, got layout={layout!r}")
    pattern = isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Pattern)
    n = data[1] if pattern else getattr(data, "num_nodes", None)
    if isinstance(n, int) and n > MAX_PICTURE_NODES:  # layouts are O(n^2)
        raise ValueError(f"draw_graph draws at most {MAX_PICTURE_NODES} nodes, got {n}; draw a subgraph")
    graph = to_networkx(data[0], data[1], attention=attention) if pattern else to_networkx(data, attention=attention)
    fig = _figure(size, figsize, (5.0, 5.0))
    ax = fig.subplots()
    ax.set_axis_off()
    pos = layouts[layout](graph)
    weights = [graph.edges[e].get("weight", 1.0) for e in graph.edges]
    top = max(weights, default=1.0) or 1.0
    widths = [0.3 + 3.0 * w / top for w in weights] if attention is not None else 1.0
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=120, node_color="#4c72b0")
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=6, font_color="white")
    nx.draw_networkx_edges(graph, pos, ax=ax, width=widths, alpha=0.6, arrowsize=6, node_size=120)
    return _save(fig, path)


def _columns(history: object) -> dict[str, list[float]]:
    if isinstance(history, Mapping):
        cols = {str(k): list(v) for k, v in history.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise ValueError(f"history columns must have equal lengths, got {sorted(lengths)}")
    elif isinstance(history, Sequence) and not isinstance(history, str):
        if not all(isinstance(row, Mapping) for row in history):
            raise TypeError("history must be a list of dict rows or a dict of lists")
        keys = list(dict.fromkeys(k for row in history for k in row))
        cols = {str(k): [row.get(k) for row in history] for k in keys}
    else:
        raise TypeError(f"history must be a list of dict rows or a dict of lists, got {type(history).__name__}")
    numeric = {}
    for k, values in cols.items():
        if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values) and any(
                v is not None for v in values):
            numeric[k] = [math.nan if v is None else float(v) for v in values]
    return numeric


def plot_history(history: Sequence[Mapping[str, float]] | Mapping[str, Sequence[float]],
                 path: str | os.PathLike | None = None, *, keys: Sequence[str] | None = None,
                 size: tuple[int, int] | None = None, figsize: tuple[float, float] | None = None) -> Figure:
    """Training curves: losses in one panel, the other metrics in a second one.

    Args:
        history: one dict per epoch (``[{"epoch": 1, "loss": 0.9, "val_acc": 0.5}, ...]``) or a
            dict of lists. The x axis is ``epoch`` when present, else 1, 2, ...; missing
            values are gaps; non-numeric columns are skipped.
        path: where to write a PNG.
        keys: the columns to draw (default: every numeric one).
        size, figsize: as in :func:`plot_pattern`.
    """
    cols = _columns(history)
    xs = cols.pop("epoch", None)
    if keys is not None:
        missing = [k for k in keys if k not in cols]
        if missing:
            raise ValueError(f"keys {missing} are not numeric columns of history; have {sorted(cols)}")
        cols = {k: cols[k] for k in keys}
    if not cols:
        raise ValueError("history has no numeric columns to plot (expected e.g. rows with a 'loss')")
    length = len(next(iter(cols.values())))
    xs = xs if xs is not None else list(range(1, length + 1))
    groups = [g for g in ([k for k in cols if "loss" in k], [k for k in cols if "loss" not in k]) if g]
    fig = _figure(size, figsize, (5.0 * len(groups), 3.5))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, group in zip(axes, groups, strict=True):
        for k in group:
            ax.plot(xs, cols[k], marker="o", markersize=3, label=k)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if "loss" in group[0] else "metric")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _spread(runs: int) -> str:
    return f"error bars: ± 1 std over {runs} seeds" if runs > 1 else "1 seed: no spread to show"


def plot_bars(summary: Sequence[Mapping[str, Any]], title: str, *, key: str = "test_acc", scale: float = 100.0,
              label: str = "test accuracy (%)", limits: tuple[float, float] | None = (0.0, 100.0),
              path: str | os.PathLike | None = None) -> Figure:
    """A bar per model of ``summary`` (rows with ``model``, ``runs``, ``<key>_mean`` and
    ``<key>_std``): the mean times ``scale``, written on the bar, with ± 1 standard deviation over
    the seeds as an error bar, said so in the corner. Bars start at the axis' zero: the y axis
    spans ``limits`` (default 0-100 %; ``None``: 0 to the largest bar), so a small difference
    looks small."""
    check_float(scale, "scale", above=0)
    if limits is not None and (not isinstance(limits, (tuple, list)) or len(limits) != 2
                               or check_float(limits[0], "limits[0]") >= check_float(limits[1], "limits[1]")):
        raise ValueError(f"limits must be None or (low, high) with low < high, got {limits!r}")
    names = [str(row["model"]) for row in summary]
    means = [scale * float(row[f"{key}_mean"]) for row in summary]
    stds = [scale * float(row[f"{key}_std"]) for row in summary]
    runs = min(int(row["runs"]) for row in summary)
    fig = Figure(figsize=(1.2 * len(names) + 2.5, 3.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.bar(range(len(names)), means, yerr=stds if runs > 1 else None, capsize=4, color="tab:blue", alpha=0.8)
    top = limits[1] if limits is not None else 1.15 * max(m + s for m, s in zip(means, stds))
    for i, (m, sd) in enumerate(zip(means, stds)):
        ax.text(i, m + sd + 0.01 * top, f"{m:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylim(limits[0] if limits is not None else 0.0, top)
    ax.set_ylabel(label)
    ax.text(0.99, 0.98, _spread(runs), transform=ax.transAxes, ha="right", va="top", fontsize=8, color="0.3")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_accuracy_cost(rows: Sequence[Mapping[str, Any]], title: str, path: str | os.PathLike | None = None,
                       *, min_span: float = 10.0) -> Figure:
    """Test accuracy (mean ± 1 std over seeds, in %) of each pattern against its time per epoch
    and against its peak memory. The cost axes start at 0, so ratios read off the picture; the
    accuracy axis spans at least ``min_span`` points around the results (a few tenths of a point
    of seed noise must not fill the axis); the legend sits below the panels, where long pattern
    texts do not cover the points."""
    from matplotlib.ticker import MaxNLocator

    check_float(min_span, "min_span", above=0)
    fig = Figure(figsize=(10, 4.5 + 0.2 * len(rows)), dpi=DPI, layout="constrained")
    accs = [100 * float(r["test_acc_mean"]) for r in rows]
    stds = [100 * float(r["test_acc_std"]) for r in rows]
    low, high = min(a - s for a, s in zip(accs, stds)), max(a + s for a, s in zip(accs, stds))
    span = min(100.0, max(min_span, high - low + 2))  # a window of span points around the results, inside 0-100
    y0 = min(max(0.0, (low + high - span) / 2), 100.0 - span)
    runs = min(int(r["runs"]) for r in rows)
    for ax, key, label in zip(fig.subplots(1, 2), ("time_per_epoch_s", "peak_memory_mb"),
                              ("time per epoch (s)", "peak memory (MiB)")):
        for i, r in enumerate(rows):
            ax.errorbar(float(r[key]), accs[i], yerr=stds[i] if runs > 1 else None, fmt="o", capsize=3,
                        color=f"C{i % 10}", label=str(r["pattern"]))
        ax.set_xlim(0, 1.15 * max(float(r[key]) for r in rows))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.set_ylim(y0, y0 + span)
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=7)
    fig.suptitle(f"{title} ({_spread(runs)})")
    return _save(fig, path)


def plot_metric_time(summary: Sequence[Mapping[str, Any]], metric: str, title: str, *, label: str,
                     scale: float = 1.0, path: str | os.PathLike | None = None) -> Figure:
    """The test ``metric`` of each model of ``summary`` (summary rows: ``model``, ``runs``,
    ``test_<metric>_mean`` / ``_std``, ``epoch_time_s``; times ``scale``, ± 1 std over the
    seeds) against its time per epoch, each point named after its model. The time axis starts
    at 0, so ratios of cost read off the picture; ``label`` names the metric's axis."""
    fig = Figure(figsize=(6.5, 4.2), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    runs = min(int(row["runs"]) for row in summary)
    for i, row in enumerate(summary):
        x, y = float(row["epoch_time_s"]), scale * float(row[f"test_{metric}_mean"])
        ax.errorbar(x, y, yerr=scale * float(row[f"test_{metric}_std"]) if runs > 1 else None, fmt="o", capsize=3,
                    color=f"C{i % 10}")
        ax.annotate(str(row["model"]), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlim(0, 1.2 * max(float(row["epoch_time_s"]) for row in summary))
    ax.set_xlabel("time per epoch (s)")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.set_title(f"{title} ({_spread(runs)})", fontsize=10)
    return _save(fig, path)
