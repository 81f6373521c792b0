"""Writing outputs never clobbers what is not a regular file, a full disk keeps the previous file,
two runs never share an output folder, and files of older layouts are named with what to do.

The paths are generated: every kind of thing a path can name (nothing, a regular file, a folder,
a FIFO, a socket, a device node, links to each) against every writer (atomic writes, checksummed
writes, pictures, checkpoints, the command line's ``--png`` and ``--out``).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphattn.cli import main
from graphattn.files import (
    FolderBusyError,
    FolderLock,
    NoSpaceError,
    OutputPathError,
    read_checked,
    write_atomic,
    write_checked,
)
from graphattn.train import CheckpointError, TrainConfig, fit, load_checkpoint

DEVICE = Path("/dev/null")


def make(kind: str, where: Path) -> Path:
    """A path in ``where`` that names a thing of ``kind``; ``link:<kind>`` is a symbolic link to one."""
    if kind.startswith("link:"):
        target = make(kind[5:], where / "targets")
        link = where / f"link-to-{kind[5:].replace(' ', '-')}"
        link.symlink_to(target)
        return link
    where.mkdir(parents=True, exist_ok=True)
    path = where / kind.replace(" ", "-")
    if kind == "regular":
        path.write_bytes(b"old")
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    elif kind == "device":
        return DEVICE
    elif kind != "missing":
        raise ValueError(kind)
    return path


#: What may be written over, and what must be refused.
WRITABLE = ["missing", "regular", "link:regular", "link:missing"]
REFUSED = ["folder", "fifo", "socket", "device", "link:folder", "link:fifo", "link:device", "link:socket"]


def snapshot(path: Path) -> tuple:
    """What a path names, to compare before and after: its kind, inode, and bytes for a regular file."""
    st_ = os.stat(path)
    contents = path.read_bytes() if stat.S_ISREG(st_.st_mode) else None
    return stat.S_IFMT(st_.st_mode), st_.st_ino, st_.st_rdev, contents


def png(path: Path) -> None:
    from graphattn.patterns import Window
    from graphattn.viz import plot_pattern

    plot_pattern(Window(1), 4, path=path)


def checkpoint(path: Path) -> None:
    model = torch.nn.Linear(2, 1)
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda: 0.0, lambda: {"val_acc": 1.0},
        TrainConfig(epochs=1, progress=False, checkpoint=path))


def cli_png(path: Path) -> None:
    if main(["patterns", "show", "Window(1)", "--n", "4", "--png", str(path)]) != 0:
        raise OutputPathError("refused")


WRITERS = {
    "write_atomic": lambda path: write_atomic(path, lambda f: f.write(b"new")),
    "write_checked": lambda path: write_checked(path, lambda f: f.write(b"new")),
    "picture": png,
    "checkpoint": checkpoint,
    "cli --png": cli_png,
}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("kind", REFUSED)
def test_a_path_that_is_not_a_regular_file_is_refused_and_left_alone(tmp_path, kind, writer, capsys):
    path = make(kind, tmp_path)
    before = snapshot(path)
    with pytest.raises(ValueError) as err:
        WRITERS[writer](path)
    after = snapshot(path)
    assert after == before
    message = str(err.value) + capsys.readouterr().err
    assert "\n" not in str(err.value)
    if writer == "cli --png":
        assert "not a regular file" in message and message.count("\n") == 1
    else:
        assert "not a regular file" in message or "is a folder" in message, message
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("kind", WRITABLE)
def test_a_regular_file_or_nothing_is_written_and_links_are_followed(tmp_path, kind, writer):
    path = make(kind, tmp_path)
    was_link = path.is_symlink()
    WRITERS[writer](path)
    assert path.is_symlink() == was_link  # a link stays a link: its target got the new file
    assert Path(os.path.realpath(path)).is_file() and os.path.getsize(path) > 0
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.parametrize("kind", ["regular", "fifo", "device", "socket", "link:fifo", "link:regular"])
@pytest.mark.parametrize("command", [["graph"], ["node"], ["text"], ["study", "listops"]])
def test_an_out_folder_that_is_not_a_folder_is_refused_in_one_line(tmp_path, kind, command, capsys):
    path = make(kind, tmp_path)
    before = snapshot(path)
    assert main([*command, "--out", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a writable folder" in err and str(path) in err, err
    assert snapshot(path) == before


# a full disk ---------------------------------------------------------------------------------

class FullDisk:
    """A stand-in for a file system with ``room`` bytes left: writing past it raises ENOSPC."""

    def __init__(self, room: int, where: str):
        self.room, self.where = room, where

    def __call__(self, f):
        data = os.urandom(256)
        for _ in range(8):
            if self.room < len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.room -= len(data)
            f.write(data)
        if self.where == "fsync":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(room=st.integers(0, 2100), where=st.sampled_from(["write", "fsync"]), checked=st.booleans())
def test_a_full_disk_says_no_space_left_naming_the_file_and_keeps_the_previous_one(tmp_path, room, where, checked):
    path = tmp_path / "results.json"
    write = write_checked if checked else write_atomic
    write(path, lambda f: f.write(b"previous"))
    before = path.read_bytes()
    fill = FullDisk(room, where)
    if room >= 2048 and where == "write":
        write(path, fill)  # it fitted
        return
    with pytest.raises(NoSpaceError) as err:
        write(path, fill)
    assert str(err.value).startswith("no space left") and str(path) in str(err.value)
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, opt, lambda: 0.0, lambda: {"val_acc": 1.0}, TrainConfig(epochs=2, progress=False, checkpoint=path))
    before = path.read_bytes()
    real_save = torch.save

    def full(obj, f, *args, **kwargs):  # torch.save wraps the file's OSError in its own RuntimeError
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed") from None

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(NoSpaceError, match=r"^no space left .*run\.pt"):
        fit(model, opt, lambda: 0.0, lambda: {"val_acc": 1.0},
            TrainConfig(epochs=4, progress=False, checkpoint=path, resume=True))
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 2


# two runs, one folder ------------------------------------------------------------------------

HOLD = """
import sys, time
from graphattn.files import FolderLock
with FolderLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def hold(folder: Path) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_folder_held_by_a_live_run_is_refused_naming_its_pid_and_taken_over_once_it_died(tmp_path):
    folder = tmp_path / "out"
    holder = hold(folder)
    try:
        with pytest.raises(FolderBusyError, match=rf"in use by another graphattn run \(pid {holder.pid}\)"):
            with FolderLock(folder):
                pass
    finally:
        holder.kill()
        holder.wait()
    stale = (folder / FolderLock.NAME).read_text().strip()
    assert stale == str(holder.pid)  # killed: its lock file stays behind, with a dead pid
    with FolderLock(folder) as lock:
        assert (folder / FolderLock.NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(FolderBusyError, match=str(os.getpid())):  # a second claim, even from this process
            FolderLock(folder).__enter__()
    assert not lock.path.exists()
    with FolderLock(folder):  # released: free again
        pass


@pytest.mark.parametrize("command", [["node", "--dataset", "Cora", "--models", "gcn", "--seeds", "1", "--epochs", "1"],
                                     ["study", "listops", "--patterns", "Full()", "--seeds", "1", "--epochs", "1"],
                                     ["graph", "--folds", "2", "--epochs", "1"]])
def test_a_second_run_on_a_held_out_folder_is_refused_and_writes_nothing(offline_data, tmp_path, command, capsys):
    folder = tmp_path / "out"
    holder = hold(folder)
    try:
        assert main([*command, "--out", str(folder), "--no-progress"]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pid {holder.pid}" in err, err
    assert sorted(p.name for p in folder.iterdir()) == [FolderLock.NAME]


def test_a_lock_is_released_when_the_run_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with FolderLock(tmp_path / "out"):
            raise RuntimeError("the run failed")
    with FolderLock(tmp_path / "out"):
        pass


# older layouts -------------------------------------------------------------------------------

def trained(path: Path) -> torch.nn.Module:
    model = torch.nn.Linear(2, 1)
    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda: 0.0, lambda: {"val_acc": 1.0},
        TrainConfig(epochs=1, progress=False, checkpoint=path))
    return model


def test_a_checkpoint_of_the_first_layout_says_what_to_do(tmp_path):
    path = tmp_path / "run.pt"
    trained(path)
    ckpt = torch.load(path, weights_only=True)
    torch.save({**ckpt, "format": 1}, path)  # format 1: a plain torch.save, no checksum trailer
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and "older graphattn" in message and "without resume" in message


@pytest.mark.parametrize("layout", [1, 3, "2"])
def test_a_checksummed_checkpoint_of_another_layout_is_refused_in_one_line(tmp_path, layout):
    path = tmp_path / "run.pt"
    trained(path)
    ckpt = load_checkpoint(path)
    write_checked(path, lambda f: torch.save({**ckpt, "format": layout}, f))
    with pytest.raises(CheckpointError, match=rf"has layout {layout!r}, this graphattn reads 2; .*without resume"):
        load_checkpoint(path)
    assert read_checked(path)  # nothing rewritten


def test_weights_of_another_model_layout_are_refused_in_one_line(tmp_path):
    path = tmp_path / "run.pt"
    trained(path)
    other = torch.nn.Sequential(torch.nn.Linear(2, 1))  # the same weights under other names
    with pytest.raises(CheckpointError) as err:
        fit(other, torch.optim.SGD(other.parameters(), lr=0.1), lambda: 0.0, lambda: {"val_acc": 1.0},
            TrainConfig(epochs=2, progress=False, checkpoint=path, resume=True))
    message = str(err.value)
    assert "\n" not in message and "another model layout" in message and "missing 0.bias" in message
    assert "unexpected bias" in message and "without resume" in message


def test_the_lock_file_never_outlives_a_finished_run(tmp_path):
    with FolderLock(tmp_path):
        time.sleep(0)
    assert list(tmp_path.iterdir()) == []


def test_a_study_run_of_an_older_layout_says_what_to_do(offline_data, tmp_path, capsys):
    argv = ["study", "listops", "--patterns", "Window(1)", "--seeds", "1", "--limit", "40", "--max-length", "24",
            "--epochs", "1", "--hidden", "8", "--heads", "2", "--layers", "1", "--no-progress", "--no-isolate",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    (run,) = tmp_path.glob("runs/*/seed0/results.json")
    older = json.loads(run.read_text())
    del older["keys_per_query"]  # what a study of an older graphattn did not record
    run.write_text(json.dumps(older))
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "older graphattn" in err and "keys_per_query" in err and "delete" in err
    assert json.loads(run.read_text()) == older  # left for the user to decide
