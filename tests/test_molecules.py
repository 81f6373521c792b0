"""The molecule benchmarks: ZINC (MAE) and Peptides-func (AP) as registered tasks, run through the CLI
on a few molecules at both budgets; the pieces they add (width fitted to a parameter budget, atom and
bond embeddings, structural features, random eigenvector signs, per-split scoring, size buckets)."""

from __future__ import annotations

import json
import runpy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from peptides_support import peptides_mirror
from torch import nn
from torch_geometric.data import Batch as PyGBatch
from torch_geometric.data import Data

from graphattn.cli import main
from graphattn.experiments.harness import Batch, ExampleBatches, SplitExampleBatches
from graphattn.experiments.molecule_config import BUDGETS, MoleculeConfig
from graphattn.experiments.molecule_data import RandomSigns, structural_features
from graphattn.experiments.molecules import fit_width
from graphattn.nn import CategoricalEncoder

pytestmark = pytest.mark.usefixtures("one_thread")


def rows(folder):
    return json.loads((folder / "results.json").read_text())


# ---------------------------------------------------------------- the commands

def test_zinc_cpu_budget_trains_gps_patterns_and_tuned_gine_with_published_numbers_beside(offline_data, tmp_path,
                                                                                           capsys):
    out = tmp_path / "zinc"
    assert main(["zinc", "--limit", "24", "--epochs", "1", "--seeds", "2", "--models", "gps", "exphormer", "bigbird",
                 "gine+", "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    assert "| gps |" in capsys.readouterr().out
    found = rows(out)
    assert [(r["model"], r["seed"]) for r in found] == [(m, s) for m in ("gps", "exphormer", "bigbird", "gine+")
                                                        for s in (0, 1)]
    for r in found:
        assert 0 < r["parameters"] <= BUDGETS[("ZINC", "cpu")]["parameters"] and r["budget"] == "cpu"
        assert r["test_mae"] > 0 and r["val_mae"] > 0 and r["epochs"] == 1 and r["encoding"] == "random_walk(20)"
    patterns = {r["model"]: r["pattern"] for r in found}
    assert patterns["gps"] == "GINE + attention along Full()" and patterns["gine+"] == "GINE (no attention)"
    assert [r["pattern"] for r in found if r["model"] == "exphormer"] == [
        f"GINE + attention along VirtualNodes(count=1) | Expander(degree=4, seed={s})" for s in (0, 1)]
    assert found[0]["test_mae"] != found[1]["test_mae"]  # two seeds, two models
    table = (out / "results.md").read_text()
    assert "cpu budget (1 epochs, size-bucketed batches of 32" in table and "| gps | " in table and " ± " in table
    assert "| GraphGPS (GINE + Transformer, RWSE) | 0.070 ± 0.004 |" in table
    assert (out / "mae_time.png").stat().st_size > 0
    picture = tmp_path / "patterns.png"  # the benchmarks' figure of every run
    assert runpy.run_path("benchmarks/patterns_time.py")["main"]([str(out / "results.json"), "--out", str(picture)]) == 0
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_zinc_published_protocol_runs_an_epoch_at_the_500k_budget(offline_data, tmp_path):
    out = tmp_path / "zinc-published"
    assert main(["zinc", "--budget", "published", "--epochs", "1", "--limit", "16", "--seeds", "1",
                 "--models", "gps", "gine+", "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    for r in rows(out):
        assert 450_000 <= r["parameters"] <= 500_000 and r["layers"] == 10 and r["budget"] == "published"
    assert "published budget (1 epochs, batches of 32, lr 0.001, warmup 50, 10 layers" in (out / "results.md").read_text()


@pytest.fixture
def peptides(mirror, tmp_path, monkeypatch):
    """40 real peptides (24 / 8 / 8) through the loader's own path, with the data root in tmp_path."""
    pytest.importorskip("rdkit")
    pytest.importorskip("ogb")
    return peptides_mirror(mirror, tmp_path / "mirror", monkeypatch, (24, 8, 8))


@pytest.mark.parametrize("budget, encoding", [("cpu", "random_walk"), ("published", "laplacian")])
def test_peptides_both_budgets_score_average_precision(peptides, tmp_path, budget, encoding):
    out = tmp_path / budget
    assert main(["peptides", "--budget", budget, "--epochs", "1", "--seeds", "1", "--models", "exphormer", "gatedgcn+",
                 "--encoding", encoding, "--encoding-dim", "4", "--mirror", str(peptides), "--root",
                 str(tmp_path / "root"), "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    found = rows(out)
    assert [r["model"] for r in found] == ["exphormer", "gatedgcn+"]
    for r in found:
        assert 0 < r["test_ap"] <= 1 and 0 < r["val_ap"] <= 1 and r["local"] == "gatedgcn"
        assert r["parameters"] <= BUDGETS[("Peptides-func", budget)]["parameters"]
    assert "| GraphGPS (GatedGCN + Transformer, LapPE) | 65.35 |" in (out / "results.md").read_text()


def test_settings_come_from_the_budget_unless_given():
    config = MoleculeConfig.from_options(dataset="Peptides-func", budget="published", lr=0.01, hidden=64)
    t = config.training
    assert (t.epochs, t.batch_size, t.lr, t.warmup) == (200, 128, 0.01, 10)
    assert (config.model.layers, config.model.attn_dropout, config.model.local, config.model.hidden) == \
           (4, 0.5, "gatedgcn", 64)
    assert MoleculeConfig().model.attn_dropout == 0.0 and MoleculeConfig().bucket  # the cpu budget
    assert config.with_options(progress=False).training == t  # resolving twice changes nothing


@pytest.mark.parametrize("options, error", [
    ({"models": ("gps", "nope")}, "unknown: \\['nope'\\]"), ({"expander_degree": 3}, "expander_degree must be even"),
    ({"attention": "Nope()"}, "attention:"), ({"hidden": 30, "heads": 4}, "heads \\(4\\) must divide hidden"),
    ({"budget": "gpu"}, "budget"), ({"local": "gcn"}, "local")])
def test_bad_settings_are_refused_by_name(options, error):
    with pytest.raises((TypeError, ValueError), match=error):
        MoleculeConfig.from_options(dataset="ZINC", **options)


def test_an_unknown_model_is_refused_in_one_line(capsys):
    assert main(["zinc", "--models", "transformer"]) == 2
    assert "models must be distinct names from" in capsys.readouterr().err


# ---------------------------------------------------------------- the pieces

@settings(max_examples=40, deadline=None)
@given(parameters=st.integers(10, 200_000), multiple=st.integers(1, 16))
def test_fit_width_is_the_largest_multiple_within_the_budget(parameters, multiple):
    def make(width):
        return nn.Linear(width, width)  # width^2 + width parameters

    def count(width):
        return width * width + width

    if count(multiple) > parameters:
        with pytest.raises(ValueError, match="too few"):
            fit_width(make, parameters, multiple)
        return
    width = fit_width(make, parameters, multiple)
    assert width % multiple == 0 and count(width) <= parameters < count(width + multiple)


def test_categorical_encoder_is_a_linear_map_of_one_hot_codes():
    torch.manual_seed(0)
    enc = CategoricalEncoder([3, 5, 2], 4)
    x = torch.stack([torch.randint(0, n, (20,)) for n in (3, 5, 2)], dim=1)
    one_hot = torch.cat([nn.functional.one_hot(x[:, k], n).double() for k, n in enumerate((3, 5, 2))], dim=1)
    weight = torch.cat([t.weight.double() for t in enc.tables])  # (10, 4)
    assert torch.allclose(enc(x).double(), one_hot @ weight)
    single = CategoricalEncoder([7], 4)
    assert torch.equal(single(x[:, 1]), single.tables[0](x[:, 1]))  # 1-D codes are one column: an nn.Embedding
    with pytest.raises(ValueError, match=r"shape \[N, 3\]"):
        enc(x[:, :2])
    with pytest.raises(TypeError, match="integer codes"):
        enc(x.float())


def test_categorical_encoder_equals_ogb_atom_and_bond_encoders():
    ogb_mol = pytest.importorskip("ogb.graphproppred.mol_encoder")
    from ogb.utils.features import get_atom_feature_dims, get_bond_feature_dims

    for theirs, dims in ((ogb_mol.AtomEncoder(8), get_atom_feature_dims()), (ogb_mol.BondEncoder(8), get_bond_feature_dims())):
        ours = CategoricalEncoder(dims, 8)
        tables = theirs.atom_embedding_list if hasattr(theirs, "atom_embedding_list") else theirs.bond_embedding_list
        for mine, table in zip(ours.tables, tables):
            mine.weight.data.copy_(table.weight.data)
        x = torch.stack([torch.randint(0, n, (30,)) for n in dims], dim=1)
        assert torch.allclose(ours(x), theirs(x))


def test_structural_features_equal_pyg_transforms_and_pad_small_graphs():
    from torch_geometric.transforms import AddLaplacianEigenvectorPE, AddRandomWalkPE
    from torch_geometric.utils import to_undirected

    g = torch.Generator().manual_seed(1)
    graphs = [Data(edge_index=to_undirected(torch.randint(0, n, (2, 2 * n), generator=g)), num_nodes=n) for n in (3, 9, 12)]
    rw = structural_features(graphs, "random_walk", 5)
    assert torch.allclose(rw[3:12], AddRandomWalkPE(5, attr_name="pe")(graphs[1]).pe)
    lap = structural_features(graphs, "laplacian", 4)
    assert lap.shape == (24, 4) and torch.equal(lap[:3, 2:], torch.zeros(3, 2))  # 3 nodes: 2 eigenvectors, then zeros
    reference = AddLaplacianEigenvectorPE(4, attr_name="pe", is_undirected=True)(graphs[2]).pe
    assert torch.allclose(lap[12:].abs(), reference.abs(), atol=1e-5)  # eigenvectors up to their signs


def test_random_signs_flip_each_graph_s_eigenvectors_together_and_leave_the_data_alone():
    torch.manual_seed(0)
    graphs = [Data(x=torch.zeros(n, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), y=torch.zeros(1),
                   pe=torch.rand(n, 6) + 0.1) for n in (4, 7, 5)]
    collated = PyGBatch.from_data_list(graphs)
    before = collated.pe.clone()
    out = RandomSigns()(Batch(collated.x, collated, collated.y)).graph
    ratio = out.pe / before
    assert torch.equal(ratio.abs(), torch.ones_like(ratio))
    for k in range(3):
        assert bool((ratio[collated.batch == k] == ratio[collated.batch == k][:1]).all())
    assert torch.equal(collated.pe, before)


def _examples(sizes):
    return [Data(x=torch.zeros(n, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), y=torch.tensor([float(i)]))
            for i, n in enumerate(sizes)]


def test_split_batches_score_each_split_on_its_own_examples():
    parts = {"val": _examples([3] * 5), "test": _examples([2] * 3)}
    seen = {"val": [], "test": []}
    for batch in SplitExampleBatches(parts, 2):
        for split in parts:
            seen[split] += batch.y[batch.rows(split)].tolist()
    assert seen == {"val": [0.0, 1.0, 2.0, 3.0, 4.0], "test": [0.0, 1.0, 2.0]}


def test_bucketed_batches_hold_every_example_once_and_similar_sizes():
    g = torch.Generator().manual_seed(0)
    sizes = torch.randint(1, 60, (300,), generator=g).tolist()
    batches = ExampleBatches(_examples(sizes), 10, shuffle=True, seed=3, by_epoch=True, bucket=True)
    batches.set_epoch(1)
    first = [b.y.tolist() for b in batches]
    ids = sorted(int(i) for b in first for i in b)
    assert ids == list(range(300)) and len(first) == len(batches) == 30
    spread = sum(max(sizes[int(i)] for i in b) - min(sizes[int(i)] for i in b) for b in first) / 30
    assert spread < 10  # random batches of 10 from 1..59 spread ~48 on average
    batches.set_epoch(1)
    assert [b.y.tolist() for b in batches] == first  # the order comes from (seed, epoch)
    batches.set_epoch(2)
    assert [b.y.tolist() for b in batches] != first
