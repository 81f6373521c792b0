"""Pictures: PNGs of the requested pixel size, written headless and atomically."""

import struct
import sys

import networkx as nx
import pytest
import torch
from matplotlib.figure import Figure

from graphattn.convert import graph_to_data
from graphattn.patterns import Full, Global, Window, longformer
from graphattn.viz import attention_to_dense, draw_graph, pattern_gallery, plot_attention, plot_history, plot_pattern


def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_headless():
    assert "matplotlib.pyplot" not in sys.modules  # nothing here needs a display or pyplot


def test_plot_pattern_sizes(tmp_path):
    path = tmp_path / "sub" / "one.png"
    fig = plot_pattern(Window(2), 16, path=path, size=(320, 240))
    assert isinstance(fig, Figure) and png_size(path) == (320, 240)
    fig = plot_pattern({"local": Window(1), "global": Global((0,))}, 8, path=tmp_path / "two.png", figsize=(6, 3))
    assert png_size(tmp_path / "two.png") == (600, 300)
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["local", "global"]
    assert list(tmp_path.glob("**/.*tmp")) == []  # the temporary file was renamed away


def test_gallery(tmp_path):
    fig = pattern_gallery(16, path=tmp_path / "g.png", size=(800, 480))
    assert png_size(tmp_path / "g.png") == (800, 480) and (tmp_path / "g.png").stat().st_size > 5000
    assert sum(ax.get_title() != "" for ax in fig.axes) == 7


def test_attention_to_dense():
    ei = torch.tensor([[0, 1, 1, 2], [0, 0, 2, 2]])  # keys, queries
    alpha = torch.tensor([[0.25, 1.0], [0.75, 0.0], [0.5, 0.5], [0.5, 0.5]])
    dense = attention_to_dense(ei, alpha, 3)
    assert dense.shape == (2, 3, 3)
    assert dense[0].tolist() == [[0.25, 0.75, 0], [0, 0, 0], [0, 0.5, 0.5]]
    assert torch.equal(attention_to_dense(ei, alpha[:, 0], 3), dense[:1])
    with pytest.raises(ValueError, match="alpha must be"):
        attention_to_dense(ei, alpha[:3], 3)
    with pytest.raises(ValueError, match="only 2 nodes"):
        attention_to_dense(ei, alpha, 2)


def test_plot_attention_and_graph(tmp_path):
    pattern = longformer(1, (0,))
    ei = pattern.edge_index(10)
    alpha = torch.rand(ei.size(1), 4)
    fig = plot_attention((ei, alpha), 10, heads=[0, 3], path=tmp_path / "a.png", size=(500, 250))
    assert png_size(tmp_path / "a.png") == (500, 250) and len(fig.axes) == 4  # two panels, two colorbars
    data = graph_to_data(nx.cycle_graph(8))
    draw_graph(data, attention=(data.edge_index, torch.rand(data.edge_index.size(1), 2)), path=tmp_path / "d.png",
               size=(300, 300))
    assert png_size(tmp_path / "d.png") == (300, 300)
    draw_graph((Window(1), 6), layout="circular", path=tmp_path / "w.png")
    assert (tmp_path / "w.png").stat().st_size > 0
    with pytest.raises(ValueError, match="heads"):
        plot_attention((ei, alpha), 10, heads=[4])


def test_plot_history(tmp_path):
    rows = [{"epoch": 1, "loss": 1.0, "val_acc": 0.4, "note": "warmup"}, {"epoch": 2, "loss": 0.6, "val_acc": None}]
    fig = plot_history(rows, path=tmp_path / "h.png", size=(640, 320))
    assert png_size(tmp_path / "h.png") == (640, 320) and len(fig.axes) == 2
    assert len(plot_history({"loss": [3, 2, 1]}).axes) == 1
    with pytest.raises(ValueError, match="no numeric columns"):
        plot_history([{"note": "x"}])
    with pytest.raises(ValueError, match="equal lengths"):
        plot_history({"loss": [1, 2], "acc": [1]})
    with pytest.raises(TypeError, match="history must be"):
        plot_history(3)


@pytest.mark.parametrize("call,err,match", [
    (lambda: plot_pattern(Full(), 0), ValueError, "n must be"),
    (lambda: plot_pattern([], 4), TypeError, "patterns must be"),
    (lambda: plot_pattern(["Full()"], 4), TypeError, r"patterns\[0\]"),
    (lambda: plot_pattern([Full()], 4, titles=["a", "b"]), ValueError, "titles"),
    (lambda: plot_pattern(Full(), 4, size=(10, 10)), ValueError, "size"),
    (lambda: plot_pattern(Full(), 4, size=(100, 100), figsize=(1, 1)), ValueError, "not both"),
    (lambda: pattern_gallery(3), ValueError, "n must be >= 4"),
    (lambda: draw_graph((Window(1), 4), layout="nope"), ValueError, "layout"),
])
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()


# the experiments' pictures --------------------------------------------------------------------

def summary_rows(runs: int, accs: list[float], std: float = 0.004) -> list[dict]:
    return [{"model": f"m{i}", "pattern": f"Window({i})", "runs": runs, "test_acc_mean": a,
             "test_acc_std": std if runs > 1 else 0.0, "time_per_epoch_s": 0.1 * (i + 1),
             "peak_memory_mb": 100.0 * (i + 1)} for i, a in enumerate(accs)]


def labels_overlap(fig, axis) -> bool:
    """Whether any two tick labels of ``axis`` overlap once drawn."""
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in axis.get_ticklabels() if t.get_text() and t.get_visible()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


@pytest.mark.parametrize("runs", [1, 5])
def test_bars_start_at_zero_and_say_what_the_error_bars_are(runs):
    from graphattn.viz import plot_bars

    fig = plot_bars(summary_rows(runs, [0.81, 0.815, 0.82]), "Cora")
    ax = fig.axes[0]
    assert ax.get_ylim() == (0.0, 100.0)  # a 0.5-point difference looks like one
    notes = [t.get_text() for t in ax.texts]
    assert ("error bars: ± 1 std over 5 seeds" if runs > 1 else "1 seed: no spread to show") in notes
    assert ("81.0" in notes) and (len(ax.containers) == (2 if runs > 1 else 1))  # bars (+ error bars)
    assert not labels_overlap(fig, ax.xaxis)


@pytest.mark.parametrize("accs, runs", [([0.903, 0.906, 0.905], 2), ([0.2, 0.9], 3), ([0.995, 0.999], 1),
                                        ([0.01, 0.02, 0.015], 2)])
def test_the_study_plot_keeps_noise_small_and_its_labels_apart(accs, runs, tmp_path):
    from graphattn.viz import plot_accuracy_cost

    fig = plot_accuracy_cost(summary_rows(runs, accs), "ListOps", tmp_path / "p.png")
    assert png_size(tmp_path / "p.png")[0] == 1000
    for ax in fig.axes:
        low, high = ax.get_ylim()
        assert 10.0 - 1e-9 <= high - low and 0.0 <= low and high <= 100.0  # at least ten points shown
        assert all(low <= 100 * a <= high for a in accs)
        assert ax.get_xlim()[0] == 0.0 and not labels_overlap(fig, ax.xaxis)
    assert ("± 1 std over" in fig._suptitle.get_text()) == (runs > 1)
