"""The benchmark loaders (ZINC, Peptides-func, Amazon / Coauthor) give the published tensors, and the
seeded node splits are what they say."""
from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from peptides_support import peptides_mirror

from graphattn import datasets as D
from graphattn.datasets import peptides, shchur, sources
from graphattn.datasets.fetch import read_verified

# ----------------------------------------------------------------------------- ZINC


@pytest.fixture(scope="module")
def zinc(mirror, tmp_path_factory):
    return D.load_zinc(root=tmp_path_factory.mktemp("zinc"), mirror=mirror, progress=False)


def test_zinc_has_the_published_split_and_totals(zinc):
    totals = {name: (len(s), s._data.x.size(0), s._data.edge_index.size(1)) for name, s in zinc.items()}
    assert totals == {"train": (10000, 231664, 498558), "val": (1000, 23083, 49692), "test": (1000, 23117, 49720)}
    g = zinc["train"][0]
    assert (g.num_nodes, g.num_edges) == (29, 64) and g.y.tolist() == [pytest.approx(0.8350355, abs=1e-7)]
    assert g.y.dtype == torch.float32 and g.y.shape == (1,)
    assert g.x.dtype == torch.long and g.x.shape == (29, 1) and g.edge_attr.dtype == torch.long and g.edge_attr.shape == (64,)
    assert zinc["val"][0].y.item() == pytest.approx(0.6299158, abs=1e-7) and zinc["test"][0].num_nodes == 16
    every = torch.cat([s._data.x.view(-1) for s in zinc.values()])
    assert int(every.min()) == 0 and int(every.max()) == 20  # 28 atom types, 0..20 occur
    bonds = torch.cat([s._data.edge_attr for s in zinc.values()])
    assert torch.bincount(bonds).tolist()[1:] == [sum(torch.bincount(s._data.edge_attr, minlength=4)[k].item()
                                                      for s in zinc.values()) for k in (1, 2, 3)]
    assert set(bonds.unique().tolist()) == {1, 2, 3}


def _zinc_graph_by_hand(mirror, graph: int):
    """The slow twin: one graph read line by line from the text files."""
    folder = mirror / "ZINC" / "subset-text"
    nodes = sorted((int(n), int(label)) for g, n, label in (line.split() for line in (folder / "ZINC_Nodes.txt").open())
                   if int(g) == graph)
    bonds = {}
    for g, u, v, t in (line.split() for line in (folder / "ZINC_Edges.txt").open()):
        if int(g) == graph:
            bonds[(int(u), int(v))] = bonds[(int(v), int(u))] = int(t)
    y = next(float(v) for g, v in (line.split() for line in (folder / "ZINC_Labels.txt").open()) if int(g) == graph)
    pairs = sorted(bonds)
    return ([label for _, label in nodes], [list(p) for p in zip(*pairs)], [bonds[p] for p in pairs], np.float32(y))


@pytest.mark.parametrize("split, index", [("train", 0), ("train", 4321), ("val", 999), ("test", 500)])
def test_zinc_graphs_equal_a_line_by_line_reading(zinc, mirror, split, index):
    offset = {"train": 0, "val": 10000, "test": 11000}[split]
    x, edge_index, edge_attr, y = _zinc_graph_by_hand(mirror, offset + index)
    g = zinc[split][index]
    assert g.x.view(-1).tolist() == x and g.edge_index.tolist() == edge_index and g.edge_attr.tolist() == edge_attr
    assert g.y.item() == y
    assert g.is_undirected() and not g.has_self_loops()


# ----------------------------------------------------------------------------- Amazon / Coauthor


def test_amazon_photo_through_pyg_has_the_documented_counts(mirror, tmp_path):
    dataset = D.load_shchur("Amazon-Photo", root=tmp_path, mirror=mirror, progress=False)
    data = dataset[0]
    assert type(dataset).__name__ == "Amazon"  # PyG's own class built it
    assert (data.num_nodes, data.num_edges, dataset.num_features, dataset.num_classes) == shchur.SHCHUR_COUNTS["amazon-photo"]
    assert data.x.dtype == torch.float32 and set(data.x.unique().tolist()) == {0.0, 1.0}
    assert data.is_undirected() and not data.has_self_loops()
    assert torch.bincount(data.y).tolist() == [369, 1686, 703, 915, 882, 823, 1941, 331]
    assert not any((tmp_path / name).exists() for name in ("Photo", "Amazon"))  # PyG ran elsewhere
    assert D.get("amazon-photo").loader(root=tmp_path, mirror=mirror, progress=False)[0].num_nodes == 7650


@pytest.mark.parametrize("name", sorted(sources.SHCHUR_NAMES))
def test_each_shchur_conversion_gives_the_documented_counts(mirror, name):
    """Fast: counts from the converted npz PyG reads (nodes, undirected edges without self-loops,
    features, classes), without building the dense features."""
    import scipy.sparse as sp

    (spec,) = sources.files(name)
    with np.load(io.BytesIO(shchur._pyg_layout(read_verified(mirror / spec.path, spec), spec.path))) as f:
        assert all(f[k].dtype != object for k in f.files) and f["labels"].dtype == np.int64
        adj = sp.csr_matrix((f["adj_data"], f["adj_indices"], f["adj_indptr"]), f["adj_shape"])
        nodes, features = f["attr_shape"]
        classes = len(np.unique(f["labels"]))
    adj = adj + adj.T
    adj.setdiag(0)
    adj.eliminate_zeros()
    assert (nodes, adj.nnz, features, classes) == shchur.SHCHUR_COUNTS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["Amazon-Computers", "Coauthor-CS", "Coauthor-Physics"])
def test_the_larger_shchur_graphs_through_pyg(mirror, tmp_path, name):
    dataset = D.load_shchur(name, root=tmp_path, mirror=mirror, progress=False)
    data = dataset[0]
    assert (data.num_nodes, data.num_edges, dataset.num_features, dataset.num_classes) == shchur.SHCHUR_COUNTS[name.lower()]


def test_unknown_shchur_name_lists_the_four():
    with pytest.raises(ValueError, match="Amazon-Computers.*Coauthor-Physics"):
        D.load_shchur("Amazon-Books")


# ----------------------------------------------------------------------------- splits


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3000), train=st.floats(0.01, 0.8), val=st.floats(0.01, 0.19), seed=st.integers(0, 2**31))
def test_random_split_masks_partition_the_nodes_in_the_stated_sizes(n, train, val, seed):
    masks = D.random_split_masks(n, train, val, seed=seed)
    stacked = torch.stack(masks)
    assert stacked.dtype == torch.bool and stacked.shape == (3, n)
    assert bool((stacked.sum(0) == 1).all())  # disjoint, covering every node
    assert stacked.sum(1).tolist() == [int(train * n), int(val * n), n - int(train * n) - int(val * n)]
    again = D.random_split_masks(n, train, val, seed=seed)
    assert all(torch.equal(a, b) for a, b in zip(masks, again))


def test_random_split_masks_default_is_60_20_20_and_depends_on_the_seed():
    a, b = D.random_split_masks(13752, seed=0), D.random_split_masks(13752, seed=1)
    assert [int(m.sum()) for m in a] == [8251, 2750, 2751]
    assert not torch.equal(a.train, b.train)
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(D.random_split_masks(13752, seed=0).test, a.test)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(5, 60), min_size=2, max_size=8), per=st.integers(1, 3), seed=st.integers(0, 1000))
def test_per_class_split_masks_take_the_same_number_of_each_class(counts, per, seed):
    y = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]
    train_per, val_per = per, min(counts) - per - 1
    masks = D.per_class_split_masks(y, train_per, val_per, seed=seed)
    assert bool((torch.stack(masks).sum(0) == 1).all())
    assert torch.bincount(y[masks.train], minlength=len(counts)).tolist() == [train_per] * len(counts)
    assert torch.bincount(y[masks.val], minlength=len(counts)).tolist() == [val_per] * len(counts)
    assert torch.equal(D.per_class_split_masks(y, train_per, val_per, seed=seed).val, masks.val)


def test_split_arguments_are_checked():
    with pytest.raises(ValueError, match="train \\+ val"):
        D.random_split_masks(10, 0.7, 0.3)
    with pytest.raises(ValueError, match="train must be a fraction"):
        D.random_split_masks(10, 1.5)
    with pytest.raises(ValueError, match="val must be a fraction"):
        D.random_split_masks(10, 0.5, True)
    with pytest.raises(ValueError, match=r"class\(es\) \[\(1, 30\)\]"):
        D.per_class_split_masks(torch.tensor([0] * 60 + [1] * 30), 20, 30)
    with pytest.raises(TypeError, match="integer tensor"):
        D.per_class_split_masks(torch.zeros(100), 20, 30)


# ----------------------------------------------------------------------------- Peptides-func


def test_peptides_without_rdkit_names_the_extra(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def no_rdkit(name, *args, **kwargs):
        if name == "rdkit" or name.startswith("rdkit."):
            raise ModuleNotFoundError("No module named 'rdkit'", name="rdkit")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rdkit)
    with pytest.raises(D.DatasetUnavailableError, match=r"rdkit is missing.*pip install 'graphattn\[chem\]'"):
        D.load_peptides_func(root=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())  # refused before anything was copied


@pytest.fixture
def small_peptides(mirror, tmp_path, monkeypatch):
    """A mirror holding the first 12 peptides of the real files (and a split of them), whose
    digests are shipped in place of the real ones: the loader's own code path, on 12 molecules."""
    pytest.importorskip("rdkit")
    pytest.importorskip("ogb")
    return peptides_mirror(mirror, tmp_path / "mirror", monkeypatch, (8, 2, 2))


def test_peptides_featurized_as_ogb_does_and_cached(small_peptides, tmp_path, monkeypatch):
    from ogb.utils import smiles2graph
    from rdkit import Chem

    root = tmp_path / "root"
    splits = D.load_peptides_func(root=root, mirror=small_peptides, progress=False)
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "val": 2, "test": 2}
    rows = gzip.decompress((small_peptides / "peptides-func" / "peptide_multi_class_dataset.csv.gz").read_bytes())
    first = rows.decode().splitlines()[1]
    smiles = first.split(",")[1]
    g = splits["train"][0]
    reference = smiles2graph(smiles)
    assert g.num_nodes == Chem.MolFromSmiles(smiles).GetNumAtoms() == reference["num_nodes"]
    assert g.x.dtype == torch.long and g.x.shape == (g.num_nodes, 9)
    assert torch.equal(g.x, torch.from_numpy(reference["node_feat"]))
    assert torch.equal(g.edge_index, torch.from_numpy(reference["edge_index"]))
    assert g.edge_attr.shape == (g.num_edges, 3) and torch.equal(g.edge_attr, torch.from_numpy(reference["edge_feat"]))
    assert g.y.shape == (1, 10) and g.y.dtype == torch.float32
    assert g.y.view(-1).tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]  # row 0's labels
    assert splits["test"][1].y.shape == (1, 10)

    cache = root / "peptides-func" / "graphattn-features.pt"
    assert cache.is_file()
    monkeypatch.setattr(peptides, "featurize_smiles", lambda *a, **k: pytest.fail("featurized again"))
    again = D.load_peptides_func(root=root, mirror=small_peptides, progress=False)
    assert torch.equal(again["val"][1].x, splits["val"][1].x)


def test_peptides_cache_for_another_rdkit_is_rebuilt(small_peptides, tmp_path, monkeypatch, caplog):
    root = tmp_path / "root"
    first = D.load_peptides_func(root=root, mirror=small_peptides, progress=False)
    import rdkit

    monkeypatch.setattr(rdkit, "__version__", "1999.01.1")
    with caplog.at_level("WARNING"):
        again = D.load_peptides_func(root=root, mirror=small_peptides, progress=False)
    assert "graphattn-features.pt" in caplog.text and "rdkit" in caplog.text and "other settings" in caplog.text
    assert torch.equal(again["train"][3].x, first["train"][3].x)


@pytest.mark.slow
def test_peptides_func_totals_equal_lrgb(mirror, tmp_path):
    pytest.importorskip("rdkit")
    splits = D.load_peptides_func(root=tmp_path, mirror=mirror, progress=False)
    assert {k: len(v) for k, v in splits.items()} == {"train": 10873, "val": 2331, "test": 2331}
    full = splits["train"]._data
    assert (full.x.size(0), full.edge_index.size(1)) == (2344859, 4773974)
    assert full.y.sum(0).long().tolist() == [1378, 545, 995, 969, 9745, 3077, 1662, 2866, 299, 4044]
