"""Sequence classification end to end: text, speech and image through the CLI on tiny runs."""

import json

import pytest
import torch

from graphattn.cli import main
from graphattn.experiments.sequence_classification import SequenceConfig, _carve

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--limit", "48", "--epochs", "1", "--hidden", "16", "--heads", "2", "--layers", "1", "--no-progress"]


@pytest.mark.parametrize("task, pattern, classes, tests", [
    ("text", "Window(radius=2) | Global(nodes=(0,))", 6, 500),
    ("speech", "Window(radius=8)", 10, 300),
    ("image", "Full()", 10, 2000),
])
def test_each_task_runs_and_writes_json(task, pattern, classes, tests, offline_data, tmp_path, capsys):
    out = tmp_path / task
    assert main([task, *TINY, "--out", str(out)]) == 0
    metrics = json.loads((out / "results.json").read_text())
    assert metrics["task"] == task and metrics["pattern"] == pattern and metrics["num_classes"] == classes
    assert (metrics["num_train"], metrics["num_val"], metrics["num_test"]) == (43, 5, tests)
    assert 0.0 <= metrics["test_acc"] <= 1.0 and metrics["epochs_run"] == 1 and len(metrics["history"]) == 1
    assert (out / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*"))  # no temporary files left behind
    printed = capsys.readouterr().out
    assert "test_acc" in printed and f"{metrics['test_acc']:.4f}" in printed


def test_other_patterns_positions_and_virtual_nodes(offline_data, tmp_path):
    # Learned virtual nodes replace the converter's zero rows; RoPE on 2-D patch positions.
    assert main(["speech", *TINY, "--pattern", "Window(4) | VirtualNodes(1)", "--position", "rope",
                 "--out", str(tmp_path / "s")]) == 0
    assert main(["image", *TINY, "--pattern", "Grid2D(2, 7)", "--position", "rope", "--out", str(tmp_path / "i")]) == 0
    assert json.loads((tmp_path / "i" / "results.json").read_text())["pattern"] == "Grid2D(radius=2, width=7)"


def test_bad_task_exits_2(capsys):
    assert main(["video"]) == 2
    assert "invalid choice: 'video'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="task must be one of"):
        SequenceConfig(task="video")


def test_validation_split_is_deterministic_and_disjoint():
    def config(**options):
        return SequenceConfig.from_options(**options)

    train, val = _carve(100, config(seed=3))
    assert (train, val) == _carve(100, config(seed=3)) and (train, val) != _carve(100, config(seed=4))
    assert len(val) == 10 and sorted(train + val) == list(range(100))
    assert _carve(100, config(seed=3, limit=20))[1] == val[:2]  # limit keeps a prefix of the same shuffle
    assert torch.tensor(train).unique().numel() == 90


@pytest.mark.parametrize("task, extra, sizes", [
    ("listops", ["--max-length", "24", "--pattern", "longformer(2, [0])"], (48, 2000, 2000)),
    ("pixels", ["--pattern", "Grid2D(1, 28)"], (43, 5, 2000)),
    ("speech", ["--hop", "40", "--pattern", "Window(left=4, right=0)"], (43, 5, 300)),
])
def test_long_sequence_tasks(task, extra, sizes, offline_data, tmp_path):
    out = tmp_path / task
    assert main([task, *TINY, *extra, "--out", str(out)]) == 0
    m = json.loads((out / "results.json").read_text())
    assert (m["num_train"], m["num_val"], m["num_test"]) == sizes and m["num_classes"] == 10
    assert 0 < m["keys_per_query"] < {"listops": 7, "pixels": 9.01, "speech": 5}[task]
    if task == "pixels":
        assert m["data"]["sequence_length"] == 784 and m["dataset"] == "MNIST"
    if task == "speech":  # half the 10 ms hop: about twice the frames
        assert m["data"]["hop_length"] == 40 and m["data"]["frames_mean"] > 60
    if task == "listops":
        assert m["data"]["tokens_max"] < 24 and m["data"]["vocabulary"] == 16
