"""Corrupt files are caught: checkpoints and the files written through graphattn.files.

Hypothesis searches the corruptions (which byte changes, where a file is cut, what garbage
replaces it); each must be refused with a one-line ``ValueError`` that names the file and says
how to recover, and resuming must never silently start again.
"""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import bad_input_report, count_bad  # noqa: F401

from graphattn.files import TRAILER_SIZE, CorruptFileError, fsync_dir, read_checked, write_atomic, write_checked
from graphattn.train import CheckpointError, TrainConfig, fit, load_checkpoint

pytestmark = pytest.mark.usefixtures("bad_input_report")

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def tiny_run(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))

    def train_epoch() -> float:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    def evaluate() -> dict[str, float]:
        return {"val_acc": float((model(x).argmax(1) == y).float().mean())}

    return model, opt, train_epoch, evaluate


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("ckpt") / "run.pt"
    fit(*tiny_run(), TrainConfig(epochs=2, progress=False, checkpoint=path), experiment={"lr": 0.1})
    return path.read_bytes()


def assert_refused(path, err: BaseException) -> None:
    message = str(err)
    assert "\n" not in message, message
    assert str(path) in message, message
    assert "without resume" in message or "restore" in message, message


def resume(path):
    model, opt, tr, ev = tiny_run(1)
    return fit(model, opt, tr, ev, TrainConfig(epochs=4, progress=False, checkpoint=path, resume=True),
               experiment={"lr": 0.1})


def test_good_checkpoint_loads_and_resumes(tmp_path, good_checkpoint):
    path = tmp_path / "run.pt"
    path.write_bytes(good_checkpoint)
    assert load_checkpoint(path)["epoch"] == 2
    assert torch.load(path, weights_only=True)["epoch"] == 2  # the trailer does not stop plain torch.load
    assert resume(path).epochs_run == 4


@SETTINGS
@given(data=st.data())
def test_any_changed_byte_is_refused(tmp_path, good_checkpoint, data):
    position = data.draw(st.integers(0, len(good_checkpoint) - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="xor")
    count_bad("checkpoint: changed byte")
    corrupt = bytearray(good_checkpoint)
    corrupt[position] ^= flip
    path = tmp_path / "run.pt"
    path.write_bytes(bytes(corrupt))
    with pytest.raises(CheckpointError) as err:
        resume(path)
    assert_refused(path, err.value)
    assert path.read_bytes() == bytes(corrupt)  # nothing overwritten, no silent restart


@SETTINGS
@given(data=st.data())
def test_any_truncation_is_refused(tmp_path, good_checkpoint, data):
    keep = data.draw(st.integers(0, len(good_checkpoint) - 1), label="bytes kept")
    count_bad("checkpoint: truncated")
    path = tmp_path / "run.pt"
    path.write_bytes(good_checkpoint[:keep])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert_refused(path, err.value)


@SETTINGS
@given(garbage=st.binary(max_size=300))
def test_garbage_is_refused(tmp_path, garbage):
    count_bad("checkpoint: garbage")
    path = tmp_path / "run.pt"
    path.write_bytes(garbage)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert_refused(path, err.value)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=st.one_of(st.integers(), st.lists(st.integers(), max_size=3),
                     st.dictionaries(st.sampled_from(["format", "epoch", "model"]), st.integers(), max_size=3)))
def test_a_checksummed_file_that_is_not_a_checkpoint_is_refused(tmp_path, obj):
    count_bad("checkpoint: intact file, wrong contents")
    path = tmp_path / "run.pt"
    write_checked(path, lambda f: torch.save(obj, f))
    with pytest.raises(CheckpointError, match="not a graphattn training checkpoint") as err:
        load_checkpoint(path)
    assert_refused(path, err.value)


def test_checkpoint_without_trailer_is_refused(tmp_path, good_checkpoint):
    path = tmp_path / "run.pt"
    path.write_bytes(good_checkpoint[:-TRAILER_SIZE])  # a valid torch file, but no checksum
    assert torch.load(path, weights_only=True)["epoch"] == 2
    with pytest.raises(CheckpointError, match="no checksum trailer") as err:
        resume(path)
    assert_refused(path, err.value)


def test_checkpoint_that_is_a_folder_or_unreadable(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(TypeError, match="checkpoint"):
        load_checkpoint(3)


def test_node_experiment_preflight_refuses_a_corrupt_checkpoint(tmp_path):
    from graphattn.experiments import seeds

    path = tmp_path / "bad.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="bad.pt"):
        seeds.load_checkpoint(path)


# files.py ----------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=200), data=st.data())
def test_write_checked_round_trip_and_every_corruption(tmp_path, payload, data):
    path = tmp_path / "f.bin"
    write_checked(path, lambda f: f.write(payload))
    assert read_checked(path) == payload
    raw = path.read_bytes()
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    count_bad("checked file: changed byte")
    corrupt = bytearray(raw)
    corrupt[position] ^= data.draw(st.integers(1, 255), label="xor")
    path.write_bytes(bytes(corrupt))
    with pytest.raises(CorruptFileError, match="f.bin"):
        read_checked(path)


def test_write_atomic_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b))[1])
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}")
                                                              else "file"), real_fsync(fd))[1])
    write_atomic(tmp_path / "x", lambda f: f.write(b"1"))
    assert calls == ["file", "replace", "dir"]
    fsync_dir(tmp_path / "missing" / "x")  # a folder that cannot be opened is not an error


@pytest.mark.parametrize("name", ["root", "mirror"])
def test_a_data_root_or_mirror_that_is_a_file(tmp_path, name):
    from graphattn.datasets import fetch

    file = tmp_path / "file"
    file.write_text("x")
    count_bad("dataset: root is a file")
    with pytest.raises(ValueError, match=f"{name}=.*is a file, not a folder"):
        fetch("trec", **{name: file}, progress=False)
    with pytest.raises(TypeError, match=name):
        fetch("trec", **{name: 3}, progress=False)
