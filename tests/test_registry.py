"""The task registry: a new task registers only its specifics (config, data and split, model
builder, objective) and gets the command, the one training loop, seeds, rows, a summary table,
checkpoints and an exact resume from the harness.

The tasks here are what the next benchmarks need, in miniature: graph regression judged by the
mean absolute error (ZINC) and multi-label graph classification judged by average precision
(Peptides-func), on small random graphs with a seeded 60 / 20 / 20 split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from graphattn.cli import build_parser, main
from graphattn.experiments.baselines import GIN
from graphattn.experiments.harness import ExampleBatches, Optimization, SplitExampleBatches
from graphattn.experiments.metrics import (
    AveragePrecision,
    L1Loss,
    MeanAbsoluteError,
    MultiLabelBCELoss,
    Objective,
)
from graphattn.experiments.options import Options, option, piece
from graphattn.experiments.pieces import ModelConfig, ProcessConfig, RepeatConfig, RunConfig, TrainingConfig
from graphattn.experiments.registry import TASKS, SeedTask, Task, get, register
from graphattn.experiments.seeds import SeedRun
from graphattn.experiments.splits import random_split
from graphattn.experiments.tasks import TASKS as BUILTIN

pytestmark = pytest.mark.usefixtures("one_thread")

# ---------------------------------------------------------------- the new task: only its specifics


@dataclass(frozen=True)
class TinyConfig(Options):
    """Settings of the tiny task: the pieces the seed protocol reads, with small defaults."""

    models: tuple[str, ...] = option(("gin",), "models", metavar="MODEL")
    labels: int = option(1, "1: regress the mean feature; more: that many binary labels")
    model: ModelConfig = piece(ModelConfig(hidden=16, heads=1, layers=2, dropout=0.0), "model")
    training: TrainingConfig = piece(TrainingConfig(epochs=3, patience=None, lr=0.01), "training")
    repeats: RepeatConfig = piece(RepeatConfig(seeds=2), "runs")
    processes: ProcessConfig = piece(ProcessConfig(workers=1), "processes")
    run: RunConfig = piece(RunConfig(progress=False), "output")

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out or "runs/tiny")


def tiny_data(config: TinyConfig) -> dict:
    """60 small random graphs; the target is each graph's mean feature (or its signs per label)."""
    g = torch.Generator().manual_seed(0)
    graphs = []
    for _ in range(60):
        n = int(torch.randint(3, 9, (1,), generator=g))
        x = torch.randn(n, 4, generator=g)
        target = x.mean(0)
        y = target[:1] if config.labels == 1 else (target[: config.labels] > 0).float()[None]
        graphs.append(Data(x=x, edge_index=torch.randint(n, (2, 2 * n), generator=g), y=y))
    masks = random_split(len(graphs), 0)
    return {split: [d for d, keep in zip(graphs, masks[split]) if keep] for split in masks}


def tiny_identity(name: str, data, config: TinyConfig, seed: int) -> dict:
    return {"task": "tiny", "model": name, "seed": seed, "labels": config.labels, "hidden": config.model.hidden}


def tiny_build(name: str, data, config: TinyConfig, seed: int) -> SeedRun:
    torch.manual_seed(seed)
    model = GIN(4, config.model.hidden, config.labels, config.model.layers, config.model.dropout)
    return SeedRun(model, Optimization("adamw", config.training.lr, 0.0), "bonds (GIN)",
                   tiny_identity(name, data, config, seed))


def tiny_batches(config: TinyConfig, data, run: SeedRun, seed: int, splits, *, train: bool):
    if train:
        return ExampleBatches(data["train"], 8, shuffle=True, seed=seed, by_epoch=True)
    return SplitExampleBatches({split: data[split] for split in splits}, 8)  # each split scored on its own


def tiny_report(results: dict) -> str:
    return f"{len(results['runs'])} runs"


def tiny_task(name: str, objective: Objective) -> SeedTask:
    return SeedTask(name=name, help="a tiny graph task", description="A tiny graph task.", config=TinyConfig,
                    data=tiny_data, build=tiny_build, identity=tiny_identity, batches=tiny_batches,
                    objective=objective, report=tiny_report)


REGRESSION = Objective(L1Loss(), (MeanAbsoluteError(),), "mae")
MULTILABEL = Objective(MultiLabelBCELoss(), (AveragePrecision(),), "ap")


@pytest.fixture
def registered():
    """Register the tiny tasks for one test and take them out again."""
    added = [register(tiny_task("tinyreg", REGRESSION)), register(tiny_task("tinylabels", MULTILABEL))]
    yield added
    for task in added:
        del TASKS[task.name]


# ---------------------------------------------------------------- what the harness gives it

def test_a_registered_task_is_a_command_with_its_options(registered, capsys):
    assert main(["tinyreg", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--labels", "--seeds", "--epochs", "--save", "--resume", "--out", "--hidden"):
        assert flag in text
    args = build_parser().parse_args(["tinyreg", "--seeds", "3", "--labels", "2"])
    assert (args.seeds, args.labels) == (3, 2)


@pytest.mark.parametrize("command, metric, labels", [("tinyreg", "mae", "1"), ("tinylabels", "ap", "3")])
def test_a_registered_task_trains_every_seed_and_writes_rows_and_a_summary(registered, tmp_path, capsys, command,
                                                                           metric, labels):
    out = tmp_path / command
    assert main([command, "--labels", labels, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == "2 runs"
    rows = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["seed"]) for r in rows] == [("gin", 0), ("gin", 1)]
    for r in rows:
        assert r["epochs"] == 3 and r["parameters"] > 0 and r["epoch_time_s"] > 0 and r["peak_mem_mb"] > 0
        assert r[f"val_{metric}"] >= 0 and r[f"test_{metric}"] >= 0 and r["pattern"] == "bonds (GIN)"
    assert rows[0][f"test_{metric}"] != rows[1][f"test_{metric}"]  # two seeds, two models
    table = (out / "results.md").read_text()
    name = {"mae": "MAE", "ap": "AP (%)"}[metric]
    assert f"| model | test {name} |" in table and "| gin | " in table and " ± " in table
    assert not (out / ".graphattn.lock").exists()


def test_early_stopping_minimises_an_error_and_resume_is_bit_identical(registered, tmp_path):
    split, straight = tmp_path / "split", tmp_path / "straight"
    assert main(["tinyreg", "--seeds", "1", "--epochs", "2", "--save", "--out", str(split)]) == 0
    assert main(["tinyreg", "--seeds", "1", "--epochs", "4", "--resume", "--out", str(split)]) == 0
    assert main(["tinyreg", "--seeds", "1", "--epochs", "4", "--save", "--out", str(straight)]) == 0

    def untimed(folder):
        return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "peak_mem_mb")}
                for r in json.loads((folder / "results.json").read_text())]

    assert untimed(split) == untimed(straight)
    ckpt = torch.load(split / "checkpoints" / "gin-seed0.pt", weights_only=True)
    maes = [r["metrics"]["val_mae"] for r in ckpt["history"]["rows"]]
    assert ckpt["best_value"] == min(maes)  # the MAE is minimised, not maximised
    assert main(["tinyreg", "--seeds", "1", "--epochs", "4", "--resume", "--hidden", "8", "--out", str(split)]) == 2


def test_registering_checks_the_record():
    with pytest.raises(ValueError, match="registered already"):
        register(get("node"))
    with pytest.raises(TypeError, match="must be a Task"):
        register("node")
    with pytest.raises(TypeError, match="config must be a dataclass deriving from Options"):
        Task(name="bad", help="", description="", config=dict, report=tiny_report)
    with pytest.raises(ValueError, match="name must be a command name"):
        Task(name="two words", help="", description="", config=TinyConfig, report=tiny_report)
    with pytest.raises(ValueError, match="no task 'nope'"):
        get("nope")


def test_the_built_in_tasks_are_registered_once_each_as_commands():
    assert list(BUILTIN) == ["text", "speech", "image", "listops", "pixels", "graph", "node", "zinc", "peptides", "study"]
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(BUILTIN) < set(commands) and "patterns" in commands
    node = get("node")
    assert isinstance(node, SeedTask) and node.objective.tie_break == "loss"
    assert (get("zinc").objective.monitor, get("peptides").objective.monitor) == ("mae", "ap")
    assert get("zinc").fixed == {"dataset": "ZINC"} and get("peptides").fixed == {"dataset": "Peptides-func"}
    assert get("text").fixed == {"task": "text"} and get("study").positional[0] == "task"
