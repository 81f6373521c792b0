"""The dataset catalogue: loaders give the published numbers, and nothing unverified is ever used."""
from __future__ import annotations

import io
import logging
import stat
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import torch

from graphattn import datasets as D
from graphattn.datasets import loaders


class _Response(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def _serve(monkeypatch, files: dict[str, bytes]) -> list[str]:
    """Replace urlopen by a server of ``files`` (keyed by the URL's last part); returns the URLs asked."""
    asked = []

    def urlopen(request, timeout=None):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        asked.append(url)
        name = url.rsplit("/", 1)[-1]
        if name not in files:
            raise urllib.error.URLError(f"404 {url}")
        return _Response(files[name])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def _offline(monkeypatch) -> None:
    def urlopen(request, timeout=None):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("GRAPHATTN_MIRROR", raising=False)
    monkeypatch.delenv("GRAPHATTN_DATA", raising=False)


# ----------------------------------------------------------------------------- catalogue


def test_catalogue_digests_equal_the_mirror_manifest(mirror):
    sums = dict(line.split()[::-1] for line in (mirror / "SHA256SUMS").read_text().splitlines())
    checked = 0
    for info in D.CATALOGUE.values():
        assert info.licence and info.source
        # downloads list their files; generated graphs and optional-package datasets have none of ours
        assert info.files or "generated on first use" in info.source or "pip install" in info.source, info.name
        for spec in info.files:
            assert len(spec.sha256) == 64 and (spec.urls or spec.archive)
            if spec.path in sums:
                assert sums[spec.path] == spec.sha256, spec.path
                assert spec.size == (mirror / spec.path).stat().st_size, spec.path
                checked += 1
    assert len(D.get("fsdd").files) == 3000
    # every mirrored data file is catalogued: Planetoid, MUTAG, TREC, FSDD, MNIST, ZINC, Peptides, Shchur
    assert checked == 8 + 8 + 6 + 2 + 3000 + 2 + 6 + 2 + 4


def test_unknown_names_raise_value_error_listing_known_names():
    with pytest.raises(ValueError, match="amazon-computers.*cora.*mnist.*zinc"):
        D.get("imagenet")
    with pytest.raises(ValueError, match="imagenet"):
        D.fetch("imagenet")
    with pytest.raises(ValueError, match="CiteSeer"):
        D.load_planetoid("Reddit")
    with pytest.raises(ValueError, match="MUTAG"):
        D.load_tudataset("ENZYMES")
    with pytest.raises(ValueError, match="split"):
        D.load_trec("val")


# ----------------------------------------------------------------------------- loaders


def test_planetoid_cora_and_citeseer(offline_data):
    cora = D.load_planetoid("cora")  # case-insensitive
    data = cora[0]
    assert (data.num_nodes, data.num_edges, cora.num_classes, cora.num_features) == (2708, 10556, 7, 1433)
    assert [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)] == [140, 500, 1000]
    assert torch.bincount(data.y).tolist() == [351, 217, 418, 818, 426, 298, 180]

    citeseer = D.load_planetoid("CITESEER")
    data = citeseer[0]
    assert (data.num_nodes, data.num_edges, citeseer.num_classes) == (3327, 9104, 6)
    assert [int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)] == [120, 500, 1000]
    assert not (offline_data / "planetoid" / "CiteSeer" / "processed").exists()  # PyG ran in a private folder


def test_mutag(offline_data):
    mutag = D.load_tudataset("mutag")
    assert len(mutag) == 188 and mutag.num_classes == 2
    assert torch.cat([g.y for g in mutag]).bincount().tolist() == [63, 125]
    assert sum(g.num_nodes for g in mutag) == 3371


def test_trec(offline_data):
    train, test = D.load_trec("train"), D.load_trec("test")
    assert (len(train.examples), len(test.examples)) == (5452, 500)
    assert train.classes == ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
    count = Counter(label for _, label in train.examples)
    assert [count[i] for i in range(6)] == [86, 1162, 1250, 1223, 835, 896]
    count = Counter(label for _, label in test.examples)
    assert [count[i] for i in range(6)] == [9, 138, 94, 65, 81, 113]
    assert "sister\xf0city" in train.examples[65][0]  # the one stray byte survives as latin-1


def test_fsdd_official_split(offline_data):
    train, test = D.load_fsdd("train"), D.load_fsdd("test")
    assert (len(train.waveforms), len(test.waveforms)) == (2700, 300)
    assert train.sample_rate == test.sample_rate == 8000
    assert train.labels.bincount().tolist() == [270] * 10 and test.labels.bincount().tolist() == [30] * 10
    lengths = [w.numel() for w in train.waveforms + test.waveforms]
    assert (min(lengths), max(lengths)) == (1148, 18262)
    w = test.waveforms[0]
    assert w.dtype == torch.float32 and w.dim() == 1 and -1 <= float(w.min()) and float(w.max()) < 1


def test_mnist_offline_uses_fixed_split_of_t10k(offline_data, monkeypatch, caplog):
    _offline(monkeypatch)
    monkeypatch.setattr(loaders, "_NO_FULL_MNIST", set())
    with caplog.at_level(logging.WARNING, logger="graphattn.datasets"):
        train, test = D.load_mnist("train"), D.load_mnist("test")
    assert train.source == test.source == "t10k" and "8000/2000" in caplog.text
    assert train.images.shape == (8000, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (2000, 28, 28) and test.labels.shape == (2000,)
    assert D.load_mnist("test").images.equal(test.images)  # deterministic
    # together they are exactly t10k, about 1000 of each digit
    assert (train.labels.bincount() + test.labels.bincount()).tolist() == \
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ----------------------------------------------------------------------------- verification


def test_copies_from_read_only_mirror_are_writable(mirror, tmp_path, no_env):
    root = D.fetch("trec", root=tmp_path, mirror=mirror, progress=False)
    copy = root / "text" / "trec" / "TREC_10.label"
    assert copy.stat().st_mode & stat.S_IWUSR
    assert copy.read_bytes() == (mirror / "text" / "trec" / "TREC_10.label").read_bytes()


def test_corrupt_file_in_root_is_replaced_from_mirror(mirror, tmp_path, no_env, caplog):
    target = tmp_path / "text" / "trec" / "train_5500.label"
    target.parent.mkdir(parents=True)
    good = (mirror / "text" / "trec" / "train_5500.label").read_bytes()
    target.write_bytes(good[:-1] + b"X")  # same size, one byte off
    with caplog.at_level(logging.WARNING, logger="graphattn.datasets"):
        split = D.load_trec("train", root=tmp_path, mirror=mirror, progress=False)
    assert "wrong sha256" in caplog.text and target.read_bytes() == good
    assert len(split.examples) == 5452


def test_partial_temp_file_is_never_used(mirror, tmp_path, no_env, monkeypatch):
    folder = tmp_path / "text" / "trec"
    folder.mkdir(parents=True)
    good = (mirror / "text" / "trec" / "TREC_10.label").read_bytes()
    (folder / ".TREC_10.label.abc123.part").write_bytes(good[:1000])  # left by a killed run
    # a download that dies half-way leaves neither the file nor its temp behind
    class Dying(_Response):
        def read(self, n=-1):
            if chunk := super().read(n):
                return chunk
            raise TimeoutError("read timed out")

    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout=None: Dying(good[:4000]))
    with pytest.raises(D.DatasetUnavailableError, match="timed out"):
        D.fetch("trec", root=tmp_path, progress=False)
    assert not (folder / "TREC_10.label").exists()
    assert [p.name for p in folder.iterdir()] == [".TREC_10.label.abc123.part"]
    # the stale temp is ignored: the real file comes from the mirror, verified
    D.fetch("trec", root=tmp_path, mirror=mirror, progress=False)
    assert (folder / "TREC_10.label").read_bytes() == good


def test_no_mirror_no_network_names_the_paths(tmp_path, no_env, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(D.DatasetUnavailableError) as err:
        D.load_trec("test", root=tmp_path, progress=False)
    message = str(err.value)
    assert isinstance(err.value, RuntimeError)
    assert str(tmp_path / "text" / "trec" / "TREC_10.label") in message
    assert str(tmp_path / "text" / "trec" / "train_5500.label") in message
    assert "GRAPHATTN_MIRROR" in message and "no network in tests" in message


def test_env_vars_choose_root_and_mirror(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHATTN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("GRAPHATTN_MIRROR", str(mirror))
    assert D.fetch("trec", progress=False) == tmp_path / "data"
    assert (tmp_path / "data" / "text" / "trec" / "TREC_10.label").is_file()


def test_default_root_is_repo_datasets_or_user_cache(no_env):
    root = D.data_root()
    repo_datasets = Path(D.__file__).resolve().parents[2] / "datasets"  # graphattn/datasets/__init__.py
    assert root in (repo_datasets, Path.home() / ".cache" / "graphattn")


# ----------------------------------------------------------------------------- downloads


def test_download_is_verified_and_corruption_rejected(mirror, tmp_path, no_env, monkeypatch):
    trec = {p.name: p.read_bytes() for p in (mirror / "text" / "trec").iterdir()}
    asked = _serve(monkeypatch, trec)
    root = D.fetch("trec", root=tmp_path, progress=False)
    assert {u.rsplit("/", 1)[-1] for u in asked} == set(trec)
    assert (root / "text" / "trec" / "train_5500.label").read_bytes() == trec["train_5500.label"]

    bad = dict(trec, **{"TREC_10.label": b"?" + trec["TREC_10.label"][1:]})
    _serve(monkeypatch, bad)
    with pytest.raises(D.DatasetUnavailableError, match="sha256 mismatch") as err:
        D.fetch("trec", root=tmp_path / "other", progress=False)
    assert "TREC_10.label" in str(err.value) and "train_5500" not in str(err.value)
    assert not (tmp_path / "other" / "text" / "trec" / "TREC_10.label").exists()
    assert not list((tmp_path / "other" / "text" / "trec").glob(".*.part"))


def test_download_from_zip_archive(mirror, tmp_path, no_env, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in (mirror / "TUDataset" / "MUTAG" / "raw").iterdir():
            archive.writestr(f"MUTAG/{path.name}", path.read_bytes())
    asked = _serve(monkeypatch, {"MUTAG.zip": buffer.getvalue()})
    assert len(D.load_tudataset(root=tmp_path, progress=False)) == 188
    assert asked == ["https://www.chrsmrrs.com/graphkerneldatasets/MUTAG.zip"]  # fetched once


def test_unreachable_host_is_tried_once_per_fetch(tmp_path, no_env, monkeypatch):
    calls = []

    def urlopen(request, timeout=None):
        calls.append(request.full_url)
        raise urllib.error.URLError("connection timed out")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(D.DatasetUnavailableError, match="and 2990 more") as err:
        D.fetch("fsdd", root=tmp_path, progress=False)
    assert len(calls) == 1 and "fsdd/recordings/" in str(err.value)
