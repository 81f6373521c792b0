"""Data-parallel node classification under torchrun (gloo, CPU): 2 processes follow the trajectory of
1, only rank 0 writes, --resume continues under torchrun, and a failing rank stops the job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphattn.cli import main
from graphattn.train import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
# dropout 0: each process draws its own dropout masks, so only a deterministic model can match bit for bit
ARGS = ["--dataset", "Cora", "--loader", "random", "--batch-size", "1024", "--seeds", "1", "--hidden", "8",
        "--heads", "2", "--dropout", "0", "--no-progress", "--models", "graph", "graph+virtual"]


def torchrun(log: Path, *args: str, fail_rank: int | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    log.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PROBE_LOG": str(log), "OMP_NUM_THREADS": "1"}
    env.pop("PROBE_FAIL_RANK", None)
    if fail_rank is not None:
        env["PROBE_FAIL_RANK"] = str(fail_rank)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(REPO / "tests" / "ddp_probe.py"), *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def written(log: Path, rank: int) -> list[str]:
    return (log / f"rank{rank}.log").read_text().split()


def test_two_processes_follow_one_and_resume_under_torchrun_and_only_rank_0_writes(offline_data, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["node", *ARGS, "--epochs", "2", "--save", "--out", str(one), "--workers", "1", "--threads", "1"]) == 0
    first = torchrun(tmp_path / "log1", *ARGS, "--epochs", "1", "--save", "--out", str(two))
    assert first.returncode == 0, first.stderr[-3000:]
    assert load_checkpoint(two / "checkpoints" / "graph-seed0.pt")["epoch"] == 1
    resumed = torchrun(tmp_path / "log2", *ARGS, "--epochs", "2", "--resume", "--out", str(two))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("| graph |") == 1  # one table: rank 0's

    a, b = (json.loads((d / "results.json").read_text()) for d in (one, two))
    for ra, rb in zip(a, b, strict=True):
        assert (ra["model"], ra["epochs"], ra["val_acc"], ra["test_acc"]) == (rb["model"], rb["epochs"],
                                                                              rb["val_acc"], rb["test_acc"])
        assert (ra["processes"], rb["processes"]) == (1, 2)
    for name in ("graph", "graph_virtual"):
        ca, cb = (load_checkpoint(d / "checkpoints" / f"{name}-seed0.pt") for d in (one, two))
        assert ca["model"].keys() == cb["model"].keys()
        for key in ca["model"]:
            torch.testing.assert_close(ca["model"][key], cb["model"][key], atol=1e-5, rtol=1e-4)
        losses = [[r["loss"] for r in c["history"]["rows"]] for c in (ca, cb)]
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
        assert len(cb["rng_ranks"]) == 2

    for log in ("log1", "log2"):
        assert written(tmp_path / log, 1) == []  # rank 1 moved no file into place
        rank0 = written(tmp_path / log, 0)
        assert str(two / "results.json") in rank0 and str(two / "checkpoints" / "graph-seed0.pt") in rank0


def test_a_failing_rank_stops_the_job_with_its_message(offline_data, tmp_path):
    failed = torchrun(tmp_path / "log", *ARGS, "--epochs", "2", "--out", str(tmp_path / "out"), fail_rank=1,
                      timeout=180)
    assert failed.returncode != 0
    assert "rank 1 fails on purpose" in failed.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_refusal_on_rank_0_reaches_every_rank(offline_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    refused = torchrun(tmp_path / "log", *ARGS, "--out", str(blocker), timeout=180)
    assert refused.returncode != 0
    assert refused.stderr.count("is not a writable folder") >= 2  # rank 0's own, and rank 1's copy of it
    assert "rank 0: out=" in refused.stderr and blocker.read_text() == "not a folder"
