"""MUTAG graph classification: folds, virtual nodes, encodings and the CLI on tiny runs."""

import json

import pytest
import torch

from graphattn.cli import main
from graphattn.experiments.graph_classification import stratified_folds

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--folds", "2", "--epochs", "1", "--hidden", "16", "--heads", "2", "--layers", "1", "--no-progress"]


def test_graph_runs_and_writes_json(offline_data, tmp_path, capsys):
    out = tmp_path / "mutag"
    assert main(["graph", *TINY, "--out", str(out)]) == 0
    metrics = json.loads((out / "results.json").read_text())
    assert metrics["dataset"] == "MUTAG" and metrics["num_graphs"] == 188 and len(metrics["folds"]) == 2
    assert metrics["majority_baseline"] == pytest.approx(125 / 188)
    assert sorted(f["num_test"] for f in metrics["folds"]) == [94, 94]
    assert all(f["num_train"] + f["num_val"] == 94 for f in metrics["folds"])
    accs = [f["test_acc"] for f in metrics["folds"]]
    assert metrics["test_acc_mean"] == pytest.approx(sum(accs) / 2)
    assert (out / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert "+-" in capsys.readouterr().out


@pytest.mark.parametrize("extra", [["--add", "VirtualNodes(1)", "--encoding", "laplacian", "--encoding-dim", "4"],
                                   ["--add", "VirtualNodes(2) | Expander(2)", "--encoding", "random_walk"]])
def test_virtual_nodes_and_encodings(extra, offline_data, tmp_path):
    out = tmp_path / "g"
    assert main(["graph", *TINY, *extra, "--out", str(out)]) == 0
    assert "VirtualNodes" in json.loads((out / "results.json").read_text())["pattern"]


def test_stratified_folds_keep_class_proportions():
    labels = torch.tensor([0] * 30 + [1] * 70)
    fold = stratified_folds(labels, 10, seed=0)
    assert torch.equal(fold, stratified_folds(labels, 10, seed=0))
    for k in range(10):
        assert labels[fold == k].bincount().tolist() == [3, 7]
