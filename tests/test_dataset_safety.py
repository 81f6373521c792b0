"""What is written into a data root cannot make a load run code; caches say what they were made
from; copies are bounded by the expected size; the dataset modules import each other without a circle."""
from __future__ import annotations

import ast
import hashlib
import io
import itertools
import json
import pickle
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

import graphattn
from graphattn import datasets as D
from graphattn.datasets import cache as C
from graphattn.datasets import sources
from graphattn.datasets.fetch import read_verified
from graphattn.datasets.listops import load_listops
from graphattn.datasets.unpickle import load_npz_objects, load_numpy_pickle


class _Marker:
    """Unpickling this creates the file ``path`` (``open(path, "w")``): proof that code ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _forgery(kind: str, marker: Path) -> bytes:
    if kind == "pickle":
        return pickle.dumps({"x": np.arange(3), "y": _Marker(marker)})
    buffer = io.BytesIO()
    torch.save(({"x": torch.zeros(2)}, {"x": _Marker(marker)}, None), buffer)  # PyG's processed layout, poisoned
    return buffer.getvalue()


# ----------------------------------------------------------------------------- class 4: no code from the data root

_PYG_CASES = {  # dataset -> (loader, processed folder, one raw pickle or text file under the root)
    "Cora": (lambda **kw: D.load_planetoid("Cora", **kw), "planetoid/Cora/processed", "planetoid/Cora/raw/ind.cora.graph"),
    "MUTAG": (lambda **kw: D.load_tudataset("MUTAG", **kw), "TUDataset/MUTAG/processed",
              "TUDataset/MUTAG/raw/MUTAG_A.txt"),
}


@pytest.mark.parametrize("dataset, target, kind", list(itertools.product(
    _PYG_CASES, ["pre_transform.pt", "pre_filter.pt", "data.pt", "raw", "record"], ["pickle", "torch"])))
def test_forged_pyg_files_in_the_data_root_run_no_code(mirror, tmp_path, dataset, target, kind):
    load, processed, raw = _PYG_CASES[dataset]
    root, marker = tmp_path / "root", tmp_path / "code-ran"
    good = load(root=root, mirror=mirror, progress=False)[0]
    path = root / (raw if target == "raw" else f"{processed}/{target}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if target == "record":  # the attack that ran code before: a forged file, and the checksum list rewritten to match
        forged = root / processed / "pre_transform.pt"
        forged.write_bytes(_forgery(kind, marker))
        record = {"raw": {spec.path: spec.sha256 for spec in sources.files(dataset)},
                  "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(forged.parent.iterdir())}}
        (root / processed / "graphattn-processed.json").write_text(json.dumps(record))
    else:
        path.write_bytes(_forgery(kind, marker))
    again = load(root=root, mirror=mirror, progress=False)[0]
    assert not marker.exists()
    assert torch.equal(again.x, good.x) and torch.equal(again.edge_index, good.edge_index)


def test_a_forged_raw_pickle_without_a_mirror_is_refused_by_name(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    root, marker = tmp_path / "root", tmp_path / "code-ran"
    D.load_planetoid("Cora", root=root, mirror=mirror, progress=False)
    forged = root / "planetoid/Cora/raw/ind.cora.x"
    forged.write_bytes(_forgery("pickle", marker))
    with pytest.raises(D.DatasetUnavailableError, match="ind.cora.x"):
        D.load_planetoid("Cora", root=root, mirror=tmp_path / "empty", progress=False)
    assert not marker.exists()


@pytest.mark.parametrize("name, member", [("amazon-photo", "npz"), ("peptides-func", "pickle")])
def test_a_forged_pickle_source_is_never_unpickled(mirror, tmp_path, monkeypatch, name, member):
    """The npz with object arrays and the split pickle: a forged copy in the root fails the
    shipped sha256 and is replaced from the mirror, unread; without a mirror it is refused."""
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    root, marker = tmp_path / "root", tmp_path / "code-ran"
    spec = sources.files(name)[-1]
    target = root / spec.path
    target.parent.mkdir(parents=True)
    if member == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, adj_matrix=np.array(_Marker(marker), dtype=object))
        target.write_bytes(buffer.getvalue())
    else:
        target.write_bytes(_forgery("pickle", marker))
    D.fetch(name, root=root, mirror=mirror, progress=False)
    assert read_verified(target, spec) == (mirror / spec.path).read_bytes() and not marker.exists()
    target.write_bytes(_forgery("pickle", marker))
    with pytest.raises(ValueError, match=target.name):
        read_verified(target, spec)
    assert not marker.exists()


@settings(max_examples=50, deadline=None)
@given(module=st.sampled_from(["builtins", "os", "subprocess", "torch", "numpy", "scipy.sparse", "pickle", "io"]),
       name=st.sampled_from(["open", "system", "eval", "exec", "load", "getattr", "csr_matrix", "ndarray", "Popen", "loads"]))
def test_the_restricted_unpicklers_refuse_every_other_global(module, name):
    assume((module, name) != ("numpy", "ndarray"))
    forged = b"\x80\x04\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93)R."
    with pytest.raises(pickle.UnpicklingError, match=f"split.pickle: refuses to load {module}.{name}"):
        load_numpy_pickle(forged, "split.pickle")
    member = io.BytesIO()  # an npz member: a .npy header for a 0-d object array, then the pickle
    npy_format.write_array_header_1_0(member, npy_format.header_data_from_array_1_0(np.array(None, dtype=object)))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("adj_matrix.npy", member.getvalue() + forged)
    with pytest.raises(pickle.UnpicklingError, match=f"x.npz:adj_matrix.npy: refuses to load {module}.{name}"):
        load_npz_objects(archive.getvalue(), "x.npz")


def test_the_restricted_unpicklers_read_the_real_files(mirror):
    split = load_numpy_pickle((mirror / "peptides-func/splits_random_stratified_peptide.pickle").read_bytes(), "split")
    assert {k: len(v) for k, v in split.items()} == {"train": 10873, "val": 2331, "test": 2331}
    arrays = load_npz_objects((mirror / "npz-graphdata/amazon_photo.npz").read_bytes(), "photo")
    assert arrays["adj_matrix"].shape == (7650, 7650) and arrays["node_attr"].shape == (7650, 745)
    with pytest.raises(pickle.UnpicklingError, match="split: refuses to load io.open"):
        load_numpy_pickle(_forgery("pickle", Path("/nonexistent/never")), "split")


# ----------------------------------------------------------------------------- class 6: caches keyed by content


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_or_foreign_cache_is_named_and_rebuilt(tmp_path_factory, caplog, data):
    path = tmp_path_factory.mktemp("cache") / "made.pt"
    key = {"generator": 1, "sizes": [3, 2], "seed": 0}
    made = {"a": torch.arange(6), "b": [torch.ones(2)]}
    builds = []
    build = lambda: builds.append(1) or made  # noqa: E731
    C.cached(path, key, build)
    assert len(builds) == 1 and C.cached(path, key, build)["a"].equal(made["a"]) and len(builds) == 1
    damage = data.draw(st.sampled_from(["byte", "truncate", "foreign", "settings", "code"]))
    raw = path.read_bytes()
    if damage == "byte":
        at = data.draw(st.integers(0, len(raw) - 1))
        path.write_bytes(raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1:])
    elif damage == "truncate":
        path.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
    elif damage == "foreign":
        path.write_bytes(data.draw(st.binary(max_size=200)))
    elif damage == "code":  # a well-formed, checksummed cache whose pickle would run code
        marker = path.parent / "code-ran"
        from graphattn.files import write_checked

        write_checked(path, lambda f: f.write(_forgery("torch", marker)))
    else:
        C.save_cache(path, {**key, "seed": data.draw(st.integers(1, 9))}, made)
    caplog.clear()
    with caplog.at_level("WARNING"):
        again = C.cached(path, key, build)
    assert len(builds) == 2 and again["a"].equal(made["a"])
    assert "made.pt" in caplog.text and "rebuilding" in caplog.text
    if damage == "settings":
        assert "seed" in caplog.text and "other settings" in caplog.text
    assert not (path.parent / "code-ran").exists()
    assert C.load_cache(path, key) is not None  # the rebuilt cache is good


def test_a_cache_path_that_is_not_a_file_is_refused(tmp_path):
    (tmp_path / "made.pt").mkdir()
    with pytest.raises(ValueError, match="made.pt.*not a regular file"):
        C.cached(tmp_path / "made.pt", {}, dict)


def test_listops_cache_for_other_settings_or_truncated_is_regenerated(tmp_path, caplog):
    first = load_listops(48, (6, 3, 3), root=tmp_path)
    (path,) = (tmp_path / "listops").glob("*.pt")
    path.write_bytes(path.read_bytes()[:-100])
    with caplog.at_level("WARNING"):
        again = load_listops(48, (6, 3, 3), root=tmp_path)
    assert path.name in caplog.text and "rebuilding" in caplog.text
    assert [(ids.tolist(), y) for ids, y in again[0]] == [(ids.tolist(), y) for ids, y in first[0]]
    # a cache of another seed copied under this name is seen by its key, not its name
    other = load_listops(48, (6, 3, 3), seed=1, root=tmp_path)
    (other_path,) = [p for p in (tmp_path / "listops").glob("*.pt") if p != path]
    path.write_bytes(other_path.read_bytes())
    caplog.clear()
    with caplog.at_level("WARNING"):
        fixed = load_listops(48, (6, 3, 3), root=tmp_path)
    assert "seed: 1 there, 0 asked" in caplog.text
    assert [ids.tolist() for ids, _ in fixed[2]] == [ids.tolist() for ids, _ in first[2]]
    assert [ids.tolist() for ids, _ in other[2]] != [ids.tolist() for ids, _ in first[2]]


# ----------------------------------------------------------------------------- class 7: bounded copies


def test_a_mirror_file_larger_than_expected_is_refused_unread(tmp_path):
    spec = sources.files("trec")[1]
    huge = tmp_path / "mirror" / spec.path
    huge.parent.mkdir(parents=True)
    with open(huge, "wb") as f:  # 64 GiB, sparse: reading it in full would take minutes
        f.truncate(64 << 30)
    with pytest.raises(D.DatasetUnavailableError, match=f"{64 << 30} bytes, expected {spec.size}; not read"):
        D.fetch("trec", root=tmp_path / "root", mirror=tmp_path / "mirror", progress=False)


def test_a_download_is_cut_off_past_the_expected_size(tmp_path, monkeypatch):
    served = []

    class Endless(io.RawIOBase):
        headers: dict = {}

        def read(self, n=-1):
            served.append(n)
            return b"x" * (1 << 20)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Endless())
    monkeypatch.delenv("GRAPHATTN_MIRROR", raising=False)
    spec = sources.files("trec")[0]
    with pytest.raises(D.DatasetUnavailableError, match=f"larger than the expected {spec.size} bytes"):
        D.fetch("trec", root=tmp_path, progress=False)
    # each URL of both files is read for one 1 MiB chunk (already past both sizes), then cut off
    assert len(served) == sum(len(s.urls) for s in sources.files("trec"))


# ----------------------------------------------------------------------------- issue 21: no import circle


def _imports(path: Path, module: str) -> set[str]:
    """Every graphattn module ``module`` imports, wherever the statement is (function-level,
    ``TYPE_CHECKING`` blocks included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("graphattn")}


def test_the_dataset_modules_import_each_other_without_a_circle():
    top = Path(graphattn.__file__).parent
    modules = {}
    for path in (top / "datasets").glob("*.py"):
        name = "graphattn.datasets" + ("" if path.stem == "__init__" else f".{path.stem}")
        modules[name] = path
    edges = {name: {m for m in _imports(path, name) if m in modules and m != name} for name, path in modules.items()}
    assert edges["graphattn.datasets.catalogue"] >= {"graphattn.datasets.loaders", "graphattn.datasets.sources"}
    assert edges["graphattn.datasets.fetch"] >= {"graphattn.datasets.sources", "graphattn.datasets.roots"}
    for start in modules:
        seen, stack = set(), [(start, (start,))]
        while stack:
            node, trail = stack.pop()
            for nxt in edges[node]:
                assert nxt != start, f"import circle: {' -> '.join((*trail, nxt))}"
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, (*trail, nxt)))
