"""The registry of tasks: one record per ``graphattn`` experiment command, holding what differs
between tasks and nothing else. The command line is generated from it (:mod:`graphattn.cli`),
and the built-in tasks are registered by :mod:`.tasks`.

A :class:`Task` is a command: its config dataclass (the options come from its fields), how it
runs and what it prints. A :class:`SeedTask` is a task that runs the seed protocol
(:mod:`.seeds`: every model with every seed, one loop, checkpoints, resume, workers,
``torchrun``, rows and a summary over seeds); it only says what is its own:

* ``data(config)``: the data and its split, loaded once per process;
* ``build(name, data, config, seed) -> SeedRun``: the model a name stands for (called as
  ``model(x, graph)``), its optimiser, its training-batch augmentation, its checkpoint identity
  (``identity`` gives the identity alone, to check checkpoints before anything runs);
* ``batches(config, data, run, seed, splits, train=...)``: where its batches come from;
* ``objective``: loss, metrics, the metric that picks the epoch;
* ``row(config, name)``: the keys its rows add to :func:`~.results.run_row`'s;
* ``write(config, runs, summary, wall_time_s)``: its output files (default: ``results.json``,
  ``results.md`` with the summary table).

A graph-regression task (ZINC, MAE), a multi-label one (Peptides-func, average precision) or
node classification on another graph with a seeded 60 / 20 / 20 split (:mod:`.splits`) is one
more :class:`SeedTask` with its config, data, models and objective (:mod:`.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, is_dataclass
from typing import Any

from .metrics import Objective
from .options import Options

__all__ = ["Task", "SeedTask", "TASKS", "register", "get", "write_seed_results", "no_extras", "no_check"]


@dataclass(frozen=True, kw_only=True)
class Task:
    """One experiment command.

    Args:
        name: the command (``graphattn <name>``).
        help: one line for ``graphattn --help``.
        description: the command's ``--help`` text.
        config: its config dataclass (an :class:`~.options.Options`): one option per field.
        runner: ``runner(config) -> results`` (not needed by a :class:`SeedTask`).
        report: ``report(results) -> text`` printed after a run.
        fixed: options the command sets itself (the sequence task of ``graphattn text``).
        positional: ``(option, choices, help)`` of an option given as the command's argument
            (``graphattn study listops``).
    """

    name: str
    help: str
    description: str
    config: type[Options]
    report: Callable[[dict], str]
    runner: Callable[[Any], dict] | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    positional: tuple[str, tuple[str, ...], str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"name must be a command name (letters, digits, _), got {self.name!r}")
        if not (isinstance(self.config, type) and is_dataclass(self.config) and issubclass(self.config, Options)):
            raise TypeError(f"config must be a dataclass deriving from Options, got {self.config!r}")

    def make_config(self, **options: Any):
        """The task's config from flat option names, with what the command fixes."""
        return self.config.from_options(**self.fixed, **options)

    def run(self, config) -> dict:
        if not isinstance(config, self.config):
            raise TypeError(f"config must be a {self.config.__name__}, got {type(config).__name__}")
        if self.runner is None:
            raise TypeError(f"task {self.name!r} has no runner")
        return self.runner(config)


def no_extras(config, name: str) -> dict[str, Any]:
    """Rows with nothing of the task's own."""
    return {}


def no_check(config) -> None:
    """Nothing to refuse beyond the config's own checks."""


def write_seed_results(config, runs: list[dict], summary: list[dict], wall_time_s: float, *,
                       title: str = "", objective: Objective | None = None) -> None:
    """The seed protocol's outputs in ``config.out_dir``: ``results.json`` (one row per run) and
    ``results.md`` (the summary table of the monitored metric)."""
    from .results import markdown_table, write_json, write_text

    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", runs, allow_nan=True)
    if objective is not None:
        table = markdown_table(summary, objective.main)
        write_text(out / "results.md", f"# {title or 'Results'}\n\n{table}\n\nTotal wall time {wall_time_s:.0f} s.\n")


@dataclass(frozen=True, kw_only=True)
class SeedTask(Task):
    """A task that runs the seed protocol (:mod:`.seeds`); see the module docstring."""

    data: Callable[[Any], Any]
    build: Callable[..., Any]
    identity: Callable[..., dict]
    batches: Callable[..., Any]
    objective: Objective
    row: Callable[[Any, str], dict] = no_extras
    write: Callable[..., None] | None = None
    check: Callable[[Any], None] = no_check

    def run(self, config) -> dict:
        if not isinstance(config, self.config):
            raise TypeError(f"config must be a {self.config.__name__}, got {type(config).__name__}")
        from .seeds import run_seeds

        return run_seeds(self, config)

    def write_outputs(self, config, runs: list[dict], summary: list[dict], wall_time_s: float) -> None:
        if self.write is not None:
            self.write(config, runs, summary, wall_time_s)
        else:
            write_seed_results(config, runs, summary, wall_time_s, title=self.help, objective=self.objective)


#: name -> task, in the order the commands are listed.
TASKS: dict[str, Task] = {}


def register(task: Task, *, replace: bool = False) -> Task:
    """Add ``task`` to :data:`TASKS` (its name must be new unless ``replace``); returns it."""
    if not isinstance(task, Task):
        raise TypeError(f"task must be a Task, got {type(task).__name__}")
    if task.name in TASKS and not replace:
        raise ValueError(f"a task named {task.name!r} is registered already; pass replace=True to replace it")
    TASKS[task.name] = task
    return task


def get(name: str) -> Task:
    """The registered task ``name``."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"no task {name!r}; registered: {', '.join(TASKS) or 'none'}") from None
