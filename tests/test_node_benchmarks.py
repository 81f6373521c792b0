"""Node classification on Amazon and Coauthor: seeded 60/20/20 and 20-per-class splits drawn per seed,
Luo et al.'s tuned GCN and GAT beside graphattn's plus architecture, published numbers in the table."""

from __future__ import annotations

import json

import pytest
import torch

from graphattn.cli import main
from graphattn.experiments.node_config import NodeConfig
from graphattn.experiments.node_data import NodeData

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--hidden", "16", "--heads", "2", "--layers", "2", "--no-progress", "--threads", "1", "--workers", "1"]


@pytest.fixture(scope="module")
def photo(mirror, tmp_path_factory):
    return NodeData(NodeConfig.from_options(dataset="Amazon-Photo", mirror=str(mirror),
                                            root=str(tmp_path_factory.mktemp("photo")), progress=False))


def test_plus_architecture_beside_the_tuned_gcn_on_a_random_split(offline_data, tmp_path, capsys):
    out = tmp_path / "photo"
    assert main(["node", "--dataset", "amazon-photo", "--architecture", "plus", "--models", "exphormer", "gcn+", "gat+",
                 "--epochs", "2", "--lr", "0.01", "--seeds", "1", "--out", str(out), *TINY]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in rows] == ["exphormer", "gcn+", "gat+"]
    for r in rows:
        assert r["split"] == "random" and 0 < r["test_acc"] <= 1 and r["parameters"] > 0
    assert rows[0]["pattern"] == ("GCN + attention along GraphEdges(num_edges=238162, num_nodes=7650) | SelfLoops() "
                                  "| VirtualNodes(count=1) | Expander(degree=4, seed=0)")
    assert rows[1]["pattern"] == "graph (GCN, tuned)" and rows[2]["pattern"] == "graph (GAT, tuned)"
    assert rows[0]["parameters"] > rows[1]["parameters"]  # the same network plus its attention
    table = (out / "results.md").read_text()
    assert "Amazon-Photo, random 60/20/20 split drawn per seed, 1 seed, graphattn plus" in table
    assert "| Exphormer | 95.35 ± 0.22 |" in table and "| exphormer |" in capsys.readouterr().out


def test_each_seed_draws_its_own_split_and_shares_the_graph(photo):
    first, again, second = photo.for_seed(0), photo.for_seed(0), photo.for_seed(1)
    assert first is again and first.graph is photo.graph is second.graph and photo.masks is None
    n = photo.num_nodes
    sizes = [int(first.masks[s].sum()) for s in ("train", "val", "test")]
    assert sizes == [int(0.6 * n), int(0.2 * n), n - int(0.6 * n) - int(0.2 * n)]
    assert torch.equal(first.masks["train"] | first.masks["val"] | first.masks["test"], torch.ones(n, dtype=torch.bool))
    assert not torch.equal(first.masks["train"], second.masks["train"])
    assert torch.equal(first.data.train_mask, first.masks["train"]) and "train_mask" not in photo.data
    assert photo.x.layout == torch.strided  # 35% of Amazon's bag-of-words is non-zero: dense products are faster


def test_per_class_split_takes_twenty_and_thirty_of_each_class(offline_data, tmp_path):
    out = tmp_path / "photo"
    assert main(["node", "--dataset", "Amazon-Photo", "--split", "per-class", "--models", "gat+", "--epochs", "1",
                 "--seeds", "1", "--out", str(out), *TINY]) == 0
    (row,) = json.loads((out / "results.json").read_text())
    assert row["split"] == "per-class"
    assert "20 + 30 per class drawn per seed" in (out / "results.md").read_text()
    data = NodeData(NodeConfig.from_options(dataset="Amazon-Photo", split="per-class", progress=False))
    masks = data.for_seed(3).masks
    classes = int(data.y.max()) + 1
    for split, per_class in (("train", 20), ("val", 30)):
        assert torch.equal(torch.bincount(data.y[masks[split]], minlength=classes), torch.full((classes,), per_class))
    assert not (masks["train"] & masks["val"]).any() and int(masks["test"].sum()) == data.num_nodes - 50 * classes


@pytest.mark.parametrize("options, error", [
    ({"dataset": "Amazon-Computers", "split": "public"}, "publishes no split"),
    ({"architecture": "plus", "encoding": "random_walk"}, "takes no positional features"),
    ({"norm": "group"}, "norm"), ({"split": "halves"}, "split")])
def test_bad_benchmark_settings_are_refused_by_name(options, error):
    with pytest.raises(ValueError, match=error):
        NodeConfig.from_options(**options)


def test_every_command_on_the_benchmarks_page_makes_a_valid_config(monkeypatch):
    """The page's commands are what the lead runs: each parses and builds its config (a GPU one
    as if CUDA were there), so a renamed option cannot leave a dead command behind."""
    import shlex

    from markdown_support import ROOT, fences

    from graphattn.cli import build_parser
    from graphattn.experiments.options import option_fields

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    page = (ROOT / "docs" / "results" / "graph-benchmarks.md").read_text()
    commands = [line for f in fences(page) if f.info == "bash" for line in f.content.splitlines()
                if line.startswith("graphattn ")]
    assert len(commands) == 8
    parser = build_parser()
    for line in commands:
        args = parser.parse_args(shlex.split(line)[1:])
        task = args.func.args[0]
        given = {s.name: getattr(args, s.name) for s in option_fields(task.config) if s.name in args}
        config = task.make_config(**given)
        assert config.out_dir.parts[0] == "runs", line
