"""Mini-batch node classification: each loader, the missing-extra errors, the per-seed patterns of
disjoint batches, and the synthetic SBM graphs with their checksummed cache."""

from __future__ import annotations

import json

import pytest
import torch
from torch_geometric.data import Data

from graphattn.cli import main
from graphattn.datasets import get, load_sbm, sbm_graph
from graphattn.experiments.node_batches import Subgraphs, check_loader
from graphattn.experiments.node_config import NodeConfig
from graphattn.experiments.node_data import NodeData
from graphattn.experiments.node_models import build

pytestmark = [pytest.mark.usefixtures("one_thread"),  # torch-sparse's sampler, deprecated by PyG for pyg-lib's:
              pytest.mark.filterwarnings("ignore:Using 'NeighborSampler' without a 'pyg-lib':UserWarning")]

TINY = ["--seeds", "1", "--hidden", "8", "--heads", "2", "--no-progress", "--workers", "1", "--epochs", "2"]
WITH_SPARSE = pytest.importorskip("torch_geometric.typing").WITH_TORCH_SPARSE


def cora(out, *args: str) -> list[dict]:
    assert main(["node", "--dataset", "Cora", "--out", str(out), *TINY, *args]) == 0
    return json.loads((out / "results.json").read_text())


# ------------------------------------------------------------------------- the loaders


def test_random_loader_trains_every_model_and_records_how(offline_data, tmp_path):
    runs = cora(tmp_path, "--loader", "random", "--batch-size", "1000",
                "--models", "graph", "graph+virtual", "graph+bigbird", "full", "gcn")
    assert [r["model"] for r in runs] == ["graph", "graph+virtual", "graph+bigbird", "full", "gcn"]
    for r in runs:
        assert (r["loader"], r["batch_size"], r["processes"], r["epochs"]) == ("random", 1000, 1, 2)
        assert 0 <= r["test_acc"] <= 1 and 0 <= r["val_acc"] <= 1


def test_random_loader_trains_local_global_and_its_twin_on_the_batches_nodes(offline_data, tmp_path):
    runs = cora(tmp_path, "--loader", "random", "--batch-size", "1000", "--models", "local-global", "local-only")
    assert [(r["model"], r["loader"], r["batch_size"]) for r in runs] == [("local-global", "random", 1000),
                                                                          ("local-only", "random", 1000)]
    assert all(0 <= r["test_acc"] <= 1 and r["epoch_time_s"] > 0 for r in runs)


def test_random_batches_partition_the_graph_the_same_way_in_every_process(offline_data):
    task = NodeData(NodeConfig(dataset="Cora"))
    config = NodeConfig.from_options(dataset="Cora", loader="random", batch_size=1000)
    batches = Subgraphs(task, config, 0, ("train", "val"), train=True)
    batches.set_epoch(3)
    first = [(sub.n_id if "n_id" in sub else sub.x.sum(1)).clone() for sub, _ in batches]
    again = [(sub.n_id if "n_id" in sub else sub.x.sum(1)).clone() for sub, _ in batches]
    assert len(first) == 3 and all(torch.equal(a, b) for a, b in zip(first, again))
    seen = 0
    for sub, targets in batches:
        assert torch.equal(targets["train"], sub.train_mask.nonzero().view(-1))
        seen += sub.num_nodes
    assert seen == task.num_nodes  # a partition: every node once
    batches.set_epoch(4)
    assert not all(torch.equal(a, b.x.sum(1)) for a, (b, _) in zip(first, batches))  # reshuffled per epoch


@pytest.mark.skipif(not WITH_SPARSE, reason="NeighborLoader needs torch-sparse or pyg-lib")
def test_neighbor_loader_scores_seeds_on_sampled_subgraphs(offline_data, tmp_path):
    config = NodeConfig.from_options(dataset="Cora", loader="neighbor", batch_size=64, num_neighbors=(4, 2))
    task = NodeData(config)
    batches = Subgraphs(task, config, 0, ("train",), train=True)
    batches.set_epoch(1)
    seeds = []
    for sub, targets in batches:
        assert torch.equal(targets["train"], torch.arange(sub.batch_size))  # the seeds come first
        assert bool(sub.train_mask[: sub.batch_size].all())
        seeds.append(sub.n_id[: sub.batch_size])
        again = seeds[-1]
    assert torch.equal(torch.cat(seeds).sort().values, task.masks["train"].nonzero().view(-1))
    twice = [sub.n_id.clone() for sub, _ in batches]
    assert torch.equal(twice[-1][: again.numel()], again)  # the same draws for the same (seed, epoch)
    runs = cora(tmp_path, "--loader", "neighbor", "--batch-size", "64", "--num-neighbors", "4,2",
                "--models", "graph", "gat")
    assert [(r["model"], r["loader"]) for r in runs] == [("graph", "neighbor"), ("gat", "neighbor")]


def test_full_loader_as_one_batch_equals_the_full_batch_forward(offline_data):
    config = NodeConfig.from_options(dataset="Cora", dropout=0.0)
    task = NodeData(config)
    run = build("graph+virtual", task, config, 0)
    run.model.eval()
    with torch.no_grad():  # a batch's fresh subgraph of dense features, against the run's whole graph
        whole = run.model(task.data.x, Data(edge_index=task.data.edge_index, num_nodes=task.num_nodes))
        reference = run.model(task.x, task.graph)
    torch.testing.assert_close(whole, reference, atol=1e-5, rtol=1e-5)
    ((sub, targets),) = list(Subgraphs(task, config, 0, ("train",), train=True))
    assert sub is task.data and targets["train"].numel() == 140


def test_disjoint_batches_lay_the_pattern_on_each_seeds_own_nodes():
    """Two seeds' subgraphs in one disjoint batch give what each gives alone, with Full() too."""
    config = NodeConfig.from_options(dataset="SBM-10k", hidden=8, heads=2, dropout=0.0)

    class Fake:  # just what build() reads of a Task
        num_nodes, num_features, num_classes = 7, 3, 2
        edge_index = torch.tensor([[0, 1, 2, 4, 5], [1, 2, 0, 5, 6]])
        pos = None

    for name in ("full", "graph+virtual", "graph", "local-global", "local-only"):
        run = build(name, Fake(), config, 0)
        run.model.eval()
        x = torch.randn(7, 3)
        batch = torch.tensor([0, 0, 0, 0, 1, 1, 1])
        together = run.model(x, Data(edge_index=Fake.edge_index, num_nodes=7, batch=batch))
        first = run.model(x[:4], Data(edge_index=Fake.edge_index[:, :3], num_nodes=4))
        second = run.model(x[4:], Data(edge_index=Fake.edge_index[:, 3:] - 4, num_nodes=3))
        torch.testing.assert_close(together, torch.cat([first, second]), atol=1e-5, rtol=1e-5)


def test_missing_extras_are_named_before_anything_runs(monkeypatch, tmp_path, capsys):
    import torch_geometric.typing as pyg

    neighbor = NodeConfig.from_options(dataset="Cora", loader="neighbor")
    disjoint = NodeConfig.from_options(dataset="Cora", loader="neighbor", disjoint=True)
    if not pyg.WITH_PYG_LIB:
        with pytest.raises(ValueError, match="disjoint=True needs the optional extra pyg-lib"):
            check_loader(disjoint)
    monkeypatch.setattr(pyg, "WITH_PYG_LIB", False)
    monkeypatch.setattr(pyg, "WITH_TORCH_SPARSE", False)
    with pytest.raises(ValueError, match=r"loader='neighbor' needs the optional extra 'neighbor' \(pyg-lib or "
                                         r"torch-sparse"):
        check_loader(neighbor)
    check_loader(NodeConfig.from_options(dataset="Cora", loader="random"))  # pure torch: always there
    out = tmp_path / "out"
    assert main(["node", "--dataset", "Cora", "--loader", "neighbor", "--out", str(out), *TINY]) == 2
    assert "needs the optional extra 'neighbor'" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("options, message", [
    ({"batch_size": 64}, "batch_size=64 needs loader='random' or 'neighbor'"),
    ({"loader": "random", "num_neighbors": (3,)}, "num_neighbors and disjoint need loader='neighbor'"),
    ({"loader": "neighbor", "num_neighbors": (0,)}, "num_neighbors must be positive or -1"),
    ({"loader": "tree"}, "loader"),
    ({"loader": "random", "batch_size": 0}, "batch_size"),
])
def test_batch_settings_name_the_bad_argument(options, message):
    with pytest.raises(ValueError, match=message):
        NodeConfig.from_options(dataset="Cora", **options)


def test_defaults_keep_planetoid_full_and_batch_the_large_graphs():
    assert NodeConfig().batching.loader == "full" and NodeConfig().batching.batch_size is None
    large = NodeConfig(dataset="sbm-1m").batching
    assert (large.loader, large.batch_size) == ("random", 4096)
    hops = NodeConfig.from_options(dataset="SBM-1M", loader="neighbor", layers=3).batching.num_neighbors
    assert hops == (10, 10, 10)


# ------------------------------------------------------------------------- synthetic graphs


def test_sbm_is_seeded_homophilous_and_about_ten_edges_per_node():
    from torch_geometric.utils import homophily, is_undirected

    a, b, c = sbm_graph(2000, seed=1), sbm_graph(2000, seed=1), sbm_graph(2000, seed=2)
    for key in ("x", "y", "edge_index", "train_mask", "test_mask"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a.edge_index, c.edge_index)
    assert 9.0 < a.edge_index.size(1) / a.num_nodes <= 10.0 and is_undirected(a.edge_index)
    assert bool((a.edge_index[0] != a.edge_index[1]).all())
    assert 0.75 < homophily(a.edge_index, a.y) < 0.85  # 0.8 drawn within the class, plus chance
    assert torch.equal(torch.bincount(a.y), torch.full((10,), 200))
    masks = torch.stack([a.train_mask, a.val_mask, a.test_mask])
    assert bool((masks.sum(0) == 1).all()) and masks.sum(1).tolist() == [1000, 500, 500]
    with pytest.raises(ValueError, match="degree must be even"):
        sbm_graph(100, degree=5)


def test_sbm_cache_is_checked_and_a_corrupt_one_regenerated(tmp_path, caplog):
    assert get("SBM-10k").loader.__name__ == "load_sbm" and get("sbm-1m").files == ()
    data = load_sbm("SBM-10k", root=tmp_path)
    folder = tmp_path / "synthetic" / "sbm-10k"
    manifest = json.loads((folder / "graph.json").read_text())
    assert manifest["arguments"]["num_nodes"] == 10_000 and len(manifest["sha256"]) == 64
    stamp = (folder / "graph.pt").stat().st_mtime_ns
    again = load_sbm("sbm-10k", root=tmp_path)  # from the cache: not written again
    assert (folder / "graph.pt").stat().st_mtime_ns == stamp and torch.equal(again.edge_index, data.edge_index)
    raw = bytearray((folder / "graph.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte inside the tensors
    (folder / "graph.pt").write_bytes(bytes(raw))
    with caplog.at_level("WARNING"):
        fixed = load_sbm("SBM-10k", root=tmp_path)
    assert "regenerating" in caplog.text
    assert torch.equal(fixed.x, data.x) and torch.equal(fixed.edge_index, data.edge_index)
    with pytest.raises(ValueError, match="name='SBM-3'"):
        load_sbm("SBM-3", root=tmp_path)
