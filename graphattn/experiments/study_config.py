"""The settings of the pattern study (:mod:`.study`): :class:`StudyConfig`. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from ..checks import check_bool, check_int
from .attention_spec import parse_attention
from .options import document, option, piece
from .pieces import RunConfig
from .sequence_config import SEQUENCE_TASKS, SequenceConfig, SequenceTrainingConfig

__all__ = ["StudyConfig"]


@document
@dataclass(frozen=True)
class StudyConfig(SequenceConfig):
    """Patterns side by side (:mod:`graphattn.experiments.study`): one :class:`SequenceConfig`
    run per pattern and seed, everything else equal. Seeds are ``seed``, ``seed + 1``, ...;
    results go to ``out`` (unset: ``runs/study/<task>``), one folder per run, and a run whose
    ``results.json`` is there with the same settings is not run again (resume by rerunning).
    ``patterns`` unset is the task's study set (:data:`~.sequence_config.SEQUENCE_TASKS`);
    ``family`` adds the task's branches beyond fixed edges (its family set). A
    branch is a pattern text or an attention operator (:mod:`.attention_spec`: ``performer(M)``,
    ``linformer(K)``), which runs along ``Full()``; both are stored canonically.
    """

    pattern: str | None = None  # one per run, from ``patterns``
    operator: str | None = None  # one per run, from ``patterns``
    patterns: tuple[str, ...] | None = option(None, "the branches compared: patterns (Window(8), LSH(8), ...) or "
                                                    "operators along Full() (performer(M), linformer(K)); unset: "
                                                    "the task's study set", metavar="ATTENTION")
    family: bool = option(False, "add the task's branches beyond fixed edges (LSH, KMeans, TopK, performer, "
                                 "linformer, sized for the task; ListOps and pixels) to the patterns")
    ensemble: int | None = option(1, "models per run, trained from seeds seed, seed + 1, ... and classifying by "
                                     "their mean probabilities (a study compares single models)")
    training: SequenceTrainingConfig = piece(
        SequenceTrainingConfig(epochs=20, patience=5), "training",
        epochs="most epochs of every run (the same budget for every task)",
        patience="early-stopping patience: epochs without a better validation accuracy",
        lr="AdamW learning rate; unset: text 0.002, others 0.001",
        label_smoothing="share of each training target spread evenly over the classes; unset: text 0.1, others 0")
    seeds: int = option(2, "runs per pattern (seeds seed, seed + 1, ...)")
    isolate: bool = option(True, "each run in a fresh process, so the CPU peak memory is that run's own",
                           negative="run every pattern in this process (faster; the CPU peak memory then "
                                    "includes the runs before)")
    run: RunConfig = piece(RunConfig(), "output and device",
                           out="output folder, one subfolder per run; unset: runs/study/<task>")

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "pattern", None)
        object.__setattr__(self, "operator", None)
        task = SEQUENCE_TASKS[self.task]
        patterns = task.study if self.patterns is None else self.patterns
        if isinstance(patterns, str) or not patterns:
            raise ValueError(f"patterns must be a non-empty list of pattern texts, got {patterns!r}")
        check_bool(self.family, "family")
        if self.family and not task.family:
            tasks = [t.name for t in SEQUENCE_TASKS.values() if t.family]
            raise ValueError(f"family: the {self.task} task has no family set (the tasks with one: {tasks})")
        branches = [_branch(self.run_config(p, self.split.seed)) for p in patterns]
        for extra in task.family if self.family else ():  # compared canonically: each branch once
            branch = _branch(self.run_config(extra, self.split.seed))
            if branch not in branches:
                branches.append(branch)
        object.__setattr__(self, "patterns", tuple(branches))
        check_int(self.seeds, "seeds")
        check_bool(self.isolate, "isolate")

    def run_config(self, attention: str, seed: int, out: str | None = None) -> SequenceConfig:
        """The :class:`SequenceConfig` of one run of branch ``attention``, a pattern text or an
        operator (``performer(64)``, run along ``Full()``); raises ``ValueError`` for neither."""
        try:
            pattern, operator = parse_attention(attention)
        except (TypeError, ValueError) as e:
            raise ValueError(f"patterns: {e}") from None
        own = {f.name: getattr(self, f.name) for f in fields(SequenceConfig)}
        return SequenceConfig(**{**own, "pattern": pattern, "operator": None if operator is None else str(operator),
                                 "split": replace(self.split, seed=seed), "run": replace(self.run, out=out)})

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out) if self.run.out is not None else Path("runs") / "study" / self.task


def _branch(cfg: SequenceConfig) -> str:
    """A run's branch in the study: its operator, else its pattern (canonical text)."""
    if cfg.operator is not None:
        return cfg.operator
    assert cfg.pattern is not None, "a study run lays a pattern or names an operator"
    return cfg.pattern
