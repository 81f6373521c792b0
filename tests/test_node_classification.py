"""Node classification: the CLI's tiny run, exact resume, and refusals that leave results untouched."""

from __future__ import annotations

import json
import math

import pytest
import torch

from graphattn.cli import main
from graphattn.experiments.node_classification import ARCHITECTURES, ENCODINGS, MODELS, NodeConfig

TINY = ["--seeds", "1", "--hidden", "8", "--heads", "2", "--no-progress", "--threads", "1", "--workers", "1"]
SCHEMA = {"model": str, "pattern": str, "seed": int, "val_acc": float, "test_acc": float,
          "epochs": int, "epoch_time_s": float, "peak_mem_mb": float}


def node(out, *args: str) -> int:
    return main(["node", "--dataset", "Cora", "--out", str(out), *TINY, *args])


def test_tiny_cli_run_writes_json_table_and_png(offline_data, tmp_path, capsys):
    assert node(tmp_path, "--models", "graph", "graph+virtual,gcn", "--epochs", "2") == 0
    runs = json.loads((tmp_path / "results.json").read_text())
    assert [r["model"] for r in runs] == ["graph", "graph+virtual", "gcn"]
    for r in runs:
        for key, kind in SCHEMA.items():
            assert isinstance(r[key], kind), (key, r[key])
        assert 0 <= r["val_acc"] <= 1 and 0 <= r["test_acc"] <= 1
        assert r["epochs"] == 2 and r["seed"] == 0 and r["epoch_time_s"] > 0 and r["peak_mem_mb"] > 0
    assert runs[0]["pattern"] == "GraphEdges(num_edges=10556, num_nodes=2708) | SelfLoops()"
    assert runs[1]["pattern"].endswith("| VirtualNodes(count=1)")
    png = (tmp_path / "accuracy.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    table = (tmp_path / "results.md").read_text()
    printed = capsys.readouterr().out
    for name in ("graph", "graph+virtual", "gcn"):
        assert f"| {name} |" in table and f"| {name} |" in printed
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


def test_resume_continues_to_the_state_of_an_uninterrupted_run(offline_data, tmp_path):
    models = ["--models", "graph+expander", "gat"]
    split, straight = tmp_path / "split", tmp_path / "straight"
    assert node(split, *models, "--epochs", "2", "--save") == 0
    ckpt = torch.load(split / "checkpoints" / "gat-seed0.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["experiment"]["model"] == "gat"
    assert node(split, *models, "--epochs", "4", "--resume") == 0
    assert node(straight, *models, "--epochs", "4", "--save") == 0

    def stable(path):
        return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "peak_mem_mb")}
                for r in json.loads((path / "results.json").read_text())]

    assert stable(split) == stable(straight)
    assert [r["epochs"] for r in stable(split)] == [4, 4]
    for name in ("graph_expander", "gat"):
        a = torch.load(split / "checkpoints" / f"{name}-seed0.pt", weights_only=True)
        b = torch.load(straight / "checkpoints" / f"{name}-seed0.pt", weights_only=True)
        assert a["epoch"] == b["epoch"] == 4
        for key in ("model", "best_state"):
            assert a[key].keys() == b[key].keys()
            for k in a[key]:
                assert torch.equal(a[key][k], b[key][k]), (name, key, k)


def test_refusals_leave_previous_results_byte_for_byte(offline_data, tmp_path, capsys):
    assert node(tmp_path, "--models", "graph", "--epochs", "2", "--save") == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    capsys.readouterr()

    cases = [
        (["--models", "graph", "--epochs", "3", "--resume", "--hidden", "16"], "another experiment"),  # other config
        (["--models", "graph", "--epochs", "3", "--resume", "--seeds", "2", "--dropout", "0.5"], "another experiment"),
        (["--models", "graph", "--epochs", "3", "--resume", "--architecture", "transformer"], "architecture"),
        (["--models", "transformer"], "transformer"),  # unknown model
        (["--models", "gcn", "--dataset", "Pubmedd"], "dataset"),  # unknown dataset
    ]
    for args, message in cases:
        assert node(tmp_path, *args) == 2, args
        err = capsys.readouterr().err
        assert "error" in err and message in err, (args, err)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def test_unwritable_output_and_missing_checkpoints_are_refused(offline_data, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert node(blocker / "out", "--models", "graph", "--epochs", "1") == 2
    assert "not a writable folder" in capsys.readouterr().err
    assert node(tmp_path / "empty", "--models", "graph", "--epochs", "1", "--resume") == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("kwargs, name, error", [
    ({"dataset": "MUTAG"}, "dataset", ValueError), ({"models": ("gcn", "gcn")}, "models", ValueError),
    ({"models": ()}, "models", ValueError), ({"seeds": 0}, "seeds", ValueError),
    ({"patience": 0}, "patience", ValueError),
    ({"hidden": 10, "heads": 4}, "heads", ValueError), ({"dropout": 1.0}, "dropout", ValueError),
    ({"encoding": "sinusoidal"}, "encoding", ValueError), ({"encoding": "randomwalk"}, "encoding", ValueError),
    ({"expander_degree": 3}, "expander_degree", ValueError), ({"lr": -1.0}, "lr", ValueError),
    ({"models": ("local-global",), "global_layers": 3}, "global_layers", ValueError),
    ({"save": "yes"}, "save", TypeError), ({"architecture": "gat"}, "architecture", ValueError),
])
def test_config_names_the_bad_argument(kwargs, name, error):
    # graphattn.checks' rule: a wrong type is a TypeError, a bad value of the right type a ValueError
    with pytest.raises(error, match=name):
        NodeConfig.from_options(**kwargs)


def test_config_canonicalises_and_cli_lists_the_same_names(capsys):
    config = NodeConfig(dataset="citeseer", models=["gat", "graph"])
    assert config.dataset == "CiteSeer" and config.models == ("gat", "graph")
    assert str(config.out_dir) == "runs/node/CiteSeer"
    assert main(["node", "--help"]) == 0
    help_text = capsys.readouterr().out
    for name in (*MODELS, *ENCODINGS, *ARCHITECTURES):
        assert name in help_text


def test_random_walk_encoding_runs(offline_data, tmp_path):
    assert node(tmp_path, "--models", "graph", "--epochs", "1", "--encoding", "random_walk", "--encoding-dim", "4") == 0
    (run,) = json.loads((tmp_path / "results.json").read_text())
    assert run["encoding"] == "random_walk" and math.isfinite(run["test_acc"])


def test_transformer_architecture_runs_and_is_part_of_the_checkpoint_identity(offline_data, tmp_path):
    assert node(tmp_path, "--models", "graph", "--epochs", "2", "--architecture", "transformer", "--save") == 0
    ckpt = torch.load(tmp_path / "checkpoints" / "graph-seed0.pt", weights_only=True)
    assert ckpt["experiment"]["architecture"] == "transformer"
    assert any(k.startswith("blocks.") for k in ckpt["model"])  # a GraphTransformer's weights
    assert "graphattn transformer" in (tmp_path / "results.md").read_text()


def test_local_global_and_its_local_only_twin_run_side_by_side(offline_data, tmp_path):
    assert node(tmp_path, "--models", "local-global", "local-only", "--epochs", "2", "--save") == 0
    runs = json.loads((tmp_path / "results.json").read_text())
    assert [(r["model"], r["pattern"]) for r in runs] == [("local-global", "GCN + linear global attention (sigmoid)"),
                                                          ("local-only", "GCN (local only)")]
    glob, local = runs
    for r in runs:
        assert r["epochs"] == 2 and r["epoch_time_s"] > 0 and r["peak_mem_mb"] > 0 and r["encoding"] == "none"
    # the twin is the same model without the global branch: the attention's q, k, v, out projections
    assert glob["parameters"] - local["parameters"] == 2 * 4 * (8 * 8 + 8)
    weights = torch.load(tmp_path / "checkpoints" / "local-global-seed0.pt", weights_only=True)["model"]
    assert any(k.startswith("attns.1.") for k in weights)
    table = (tmp_path / "results.md").read_text()
    assert "| local-global |" in table and "| local-only |" in table


@pytest.mark.parametrize("option", [("--architecture", "transformer"), ("--encoding", "random_walk")])
def test_options_the_local_global_models_do_not_read_are_refused(option, capsys):
    assert main(["node", "--dataset", "Cora", "--models", "local-global", *option, "--no-progress"]) == 2
    assert "local-global, local-only have their own architecture" in capsys.readouterr().err
