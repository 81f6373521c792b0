"""MUTAG graph classification: GraphGPS and its GIN control on the same folds, the transformer with virtual
nodes and encodings, the CLI on tiny runs."""

import json

import pytest
import torch

from graphattn.cli import main
from graphattn.experiments.splits import stratified_folds

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--folds", "2", "--epochs", "1", "--hidden", "16", "--heads", "2", "--layers", "1", "--no-progress"]


def test_graph_runs_gps_and_gin_on_the_same_folds_and_writes_json(offline_data, tmp_path, capsys):
    out = tmp_path / "mutag"
    assert main(["graph", *TINY, "--out", str(out)]) == 0
    metrics = json.loads((out / "results.json").read_text())
    assert metrics["dataset"] == "MUTAG" and metrics["num_graphs"] == 188 and len(metrics["folds"]) == 2
    assert metrics["majority_baseline"] == pytest.approx(125 / 188)
    assert list(metrics["models"]) == ["gps", "gin"] and metrics["model"] == "gps"  # the default and its control
    gps, gin = metrics["models"]["gps"], metrics["models"]["gin"]
    assert "Full()" in gps["pattern"] and metrics["encoding"] == "random_walk"
    for r in (gps, gin):
        assert sorted(f["num_test"] for f in r["folds"]) == [94, 94]
        assert all(f["num_train"] + f["num_val"] == 94 for f in r["folds"])
        assert r["test_acc_mean"] == pytest.approx(sum(f["test_acc"] for f in r["folds"]) / 2)
        assert r["run_time_s"] > 0
    assert [f["num_val"] for f in gps["folds"]] == [f["num_val"] for f in gin["folds"]]
    assert metrics["test_acc_mean"] == gps["test_acc_mean"]
    assert (out / "history.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "gps test_acc" in printed and "gin test_acc" in printed and "+-" in printed


@pytest.mark.parametrize("extra", [["--add", "VirtualNodes(1)", "--encoding", "laplacian", "--encoding-dim", "4"],
                                   ["--add", "VirtualNodes(2) | Expander(2)", "--encoding", "random_walk"]])
def test_transformer_with_virtual_nodes_and_encodings(extra, offline_data, tmp_path):
    out = tmp_path / "g"
    assert main(["graph", *TINY, "--models", "transformer", *extra, "--out", str(out)]) == 0
    assert "VirtualNodes" in json.loads((out / "results.json").read_text())["pattern"]


def test_gps_attention_along_another_pattern(offline_data, tmp_path):
    out = tmp_path / "g"
    assert main(["graph", *TINY, "--models", "gps", "--attention", "VirtualNodes(1) | Expander(2)",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "results.json").read_text())
    assert list(metrics["models"]) == ["gps"] and "VirtualNodes(count=1) | Expander" in metrics["pattern"]


@pytest.mark.parametrize("options, words", [({"models": ("gps", "gcn")}, "models must be one of"),
                                            ({"models": ()}, "models must name at least one"),
                                            ({"attention": "Window(-1)"}, "attention: ")])
def test_bad_graph_options_raise_naming_the_option(options, words):
    from graphattn.experiments.graph_config import GraphConfig

    with pytest.raises(ValueError, match=words):
        GraphConfig.from_options(**options)


def test_stratified_folds_keep_class_proportions():
    labels = torch.tensor([0] * 30 + [1] * 70)
    fold = stratified_folds(labels, 10, seed=0)
    assert torch.equal(fold, stratified_folds(labels, 10, seed=0))
    for k in range(10):
        assert labels[fold == k].bincount().tolist() == [3, 7]
