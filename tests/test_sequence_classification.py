"""Sequence classification end to end: text, speech and image through the CLI on tiny runs."""

import json
import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_geometric.data import Data

from graphattn.checks import MAX_SEED
from graphattn.cli import main
from graphattn.experiments.sequence_classification import SequenceConfig, _mean_probability, run
from graphattn.experiments.sequence_data import _carve
from graphattn.experiments.study_config import StudyConfig

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


@settings(max_examples=40, deadline=None)
@given(models=st.integers(1, 4), examples=st.integers(1, 12), classes=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_mean_probability_scores_the_average_of_the_models_probabilities(models, examples, classes, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(models, examples, classes, generator=g, dtype=torch.float64) * 3
    y = torch.randint(classes, (examples,), generator=g)
    split = [Data(y=y[i : i + 1]) for i in range(examples)]
    acc, loss = _mean_probability(list(F.log_softmax(logits, -1)), split)
    mean = logits.softmax(-1).mean(0)  # (examples, classes)
    assert acc == pytest.approx(float((mean.argmax(-1) == y).double().mean()))
    assert loss == pytest.approx(float(-mean[torch.arange(examples), y].log().mean()))
    if models == 1:  # one model: its own accuracy and cross-entropy
        assert loss == pytest.approx(float(F.cross_entropy(logits[0], y)))


def test_an_ensembles_first_model_is_the_single_run_and_each_model_is_reported(offline_data):
    tiny = {"limit": 48, "epochs": 1, "hidden": 16, "heads": 2, "layers": 1, "progress": False}
    single = run(SequenceConfig.from_options(task="text", ensemble=1, **tiny))
    three = run(SequenceConfig.from_options(task="text", ensemble=3, seed=0, **tiny))
    assert three["ensemble"] == 3 and [m["seed"] for m in three["members"]] == [0, 1, 2]
    untimed = [{k: v for k, v in m["members"][0].items() if k != "time_per_epoch_s"} for m in (single, three)]
    assert untimed[0] == untimed[1] and [r["val_acc"] for r in three["history"]] == [r["val_acc"] for r in single["history"]]
    assert single["test_acc"] == single["members"][0]["test_acc"]
    assert single["best_val_acc"] == single["members"][0]["best_val_acc"]
    accs = [m["test_acc"] for m in three["members"]]
    assert three["member_test_acc_mean"] == pytest.approx(statistics.fmean(accs))
    assert three["member_test_acc_std"] == pytest.approx(statistics.stdev(accs))
    assert 0.0 <= three["test_acc"] <= 1.0 and math.isfinite(three["test_loss"])


def test_ensemble_size_resolves_per_task_and_is_checked():
    assert SequenceConfig.from_options(task="text").ensemble == 5
    assert SequenceConfig.from_options(task="speech").ensemble == 1
    assert StudyConfig.from_options(task="text").ensemble == 1  # a study compares single models
    assert StudyConfig.from_options(task="text", ensemble=None).ensemble == 5
    with pytest.raises(ValueError, match="ensemble must be a positive int"):
        SequenceConfig.from_options(task="text", ensemble=0)
    with pytest.raises(TypeError, match="ensemble must be an int"):
        SequenceConfig.from_options(task="text", ensemble=True)
    with pytest.raises(ValueError, match="ensemble must be <= 2, got 3"):
        SequenceConfig.from_options(task="text", ensemble=3, seed=MAX_SEED - 1)  # seeds beyond MAX_SEED
    with pytest.raises(ValueError, match="seed must be <="):
        SequenceConfig.from_options(task="speech", seed=MAX_SEED + 1)


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
