"""The settings of sequence classification (:mod:`.sequence_classification`): one
:class:`SequenceTask` recipe per task, everything that task sets in one place, and
:class:`SequenceConfig`. Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..checks import MAX_SEED, check_choice, check_int, check_probability
from .attention_spec import parse_operator
from .options import Options, document, option, piece, refuse_unused
from .pieces import BatchTrainingConfig, ModelConfig, RunConfig, SplitConfig

__all__ = ["SequenceTask", "SEQUENCE_TASKS", "TASKS", "SequenceConfig", "SequenceModelConfig",
           "SequenceTrainingConfig", "POOLINGS", "POSITIONS", "LISTOPS_TRAIN", "LISTOPS_MAX_LENGTH"]

POOLINGS = ("cls", "mean", "max")
POSITIONS = ("sinusoidal", "rope", "none")
#: ListOps training examples drawn when ``limit`` is unset (LRA draws 96,000; see ``max_length``).
LISTOPS_TRAIN = 8000
#: The offline default: expressions of 33..127 tokens train in minutes on a 2-core CPU;
#: ``max_length=2000`` is LRA's setting (500..1999 tokens), for a GPU.
LISTOPS_MAX_LENGTH = 128


@dataclass(frozen=True)
class SequenceTask:
    """One sequence task's recipe: what it classifies, its defaults when unset, its budget (the
    cosine schedule decays the learning rate to 0 at its end), its own options, its study set.

    Args:
        name: the command (``graphattn text``).
        dataset: the dataset's name in results.
        what: what is classified, for ``--help``.
        pattern: the default attention pattern.
        pooling: the default pooling.
        epochs: the default budget.
        lr, label_smoothing, dropout, ensemble: defaults when unset (chosen on validation accuracy).
        options: the options that apply to this task only, with their defaults here (0: off;
            every other task has them at 0).
        nodes: nodes per example where every example has the same length (a ``Grid2D`` must fit it).
        study: the patterns ``graphattn study <task>`` compares by default.
        family: the branches beyond fixed edges that ``graphattn study <task> --family`` adds,
            sized for the task: data-dependent patterns (LSH, k-means, top-k) and operators
            (Performer, Linformer).
    """

    name: str
    dataset: str
    what: str
    pattern: str
    pooling: str
    epochs: int
    lr: float = 1e-3
    label_smoothing: float = 0.0
    dropout: float = 0.1
    ensemble: int = 1
    options: dict[str, int | float] = field(default_factory=dict)
    nodes: int | None = None
    study: tuple[str, ...] = ()
    family: tuple[str, ...] = ()


#: The sequence tasks. TREC's 4,907 training questions need the stronger regularisation, and its
#: single models disagree enough that the mean of five (a conventional size) classifies better
#: than any one of them. The study sets compare full attention, a local window, the Sparse
#: Transformer's strided pattern (window + stride), Longformer, BigBird; on pixels also Grid2D
#: (the 2-D neighbourhood); on speech truncated (causal-local) windows. The family sets (ListOps and
#: pixels, LRA's tasks) hold the rest of the xx-formers at about the keys per query of the windows:
#: buckets and clusters of a window's size, as many top keys, Performer's features, Linformer's rank.
SEQUENCE_TASKS: dict[str, SequenceTask] = {t.name: t for t in (
    SequenceTask("text", "TREC", "TREC question type (6 classes)", "Window(2) | Global([0])", "cls", 30,
                 lr=2e-3, label_smoothing=0.1, dropout=0.3, ensemble=5,
                 options={"subwords": 4096, "word_dropout": 0.1},
                 study=("Full()", "Window(2) | Global([0])", "Window(2)")),
    SequenceTask("speech", "FSDD", "FSDD spoken digit (10 classes) over log-mel frames", "Window(8)", "mean", 40,
                 options={"freq_mask": 8, "time_mask": 10},
                 study=("Full()", "Window(left=16, right=0)", "Window(left=64, right=0)", "longformer(16, [0])")),
    SequenceTask("image", "MNIST", "MNIST digit (10 classes) over 4x4 patches (7x7 grid; try Grid2D(2, 7))",
                 "Full()", "mean", 60, options={"shift": 2}, nodes=49,
                 study=("Full()", "Grid2D(1, 7)", "Grid2D(2, 7)", "longformer(7, [0])")),
    SequenceTask("listops", "ListOps", "ListOps value (10 classes), LRA's generator, --max-length tokens (LRA: 2000)",
                 "Full()", "mean", 20,
                 study=("Full()", "Window(8)", "Window(8) | Stride(8)", "longformer(8, [0])", "bigbird(8, [0], 3)"),
                 family=("LSH(8)", "KMeans(4)", "TopK(8)", "performer(64)", "linformer(32)")),
    SequenceTask("pixels", "MNIST", "MNIST digit (10 classes) over its 784 pixels in raster order (try Grid2D(2, 28))",
                 "Full()", "mean", 20, nodes=784,
                 study=("Full()", "Window(14)", "Window(14) | Stride(28)", "longformer(14, [0])",
                        "bigbird(14, [0], 4)", "Grid2D(2, 28)"),
                 family=("LSH(28)", "KMeans(28)", "TopK(32)", "performer(64)", "linformer(64)")),
)}
TASKS = tuple(SEQUENCE_TASKS)
#: The options with a default on every task that only some tasks read (set on another: refused).
READ_BY = {"hop": ("speech",), "max_length": ("listops",)}
#: Each task-only option, with the task it belongs to and its default there.
_OWN = {name: (t.name, default) for t in SEQUENCE_TASKS.values() for name, default in t.options.items()}


def _each(key: str) -> str:
    return ", ".join(f"{t.name} {getattr(t, key)}" for t in SEQUENCE_TASKS.values())


@dataclass(frozen=True)
class SequenceTrainingConfig(BatchTrainingConfig):
    """Mini-batch training whose ``epochs``, ``lr`` and ``label_smoothing`` may be left unset, for
    the experiment to fill in its task's recipe (:data:`SEQUENCE_TASKS`); the fields are checked
    once all three are set.

    Widening the base's fields to ``None`` breaks substitutability until :class:`SequenceConfig`
    resolves them (the base's checks run only then): hence the ``assignment`` ignores."""

    epochs: int | None = option(None, "most epochs; unset: the task's budget")  # type: ignore[assignment]
    lr: float | None = option(None, "AdamW learning rate; unset: the task's")  # type: ignore[assignment]
    label_smoothing: float | None = option(  # type: ignore[assignment]
        None, "share of each training target spread evenly over the classes; unset: the task's")

    def __post_init__(self) -> None:
        if None not in (self.epochs, self.lr, self.label_smoothing):
            super().__post_init__()


@dataclass(frozen=True)
class SequenceModelConfig(ModelConfig):
    """The sequence model, whose ``dropout`` may be left unset for the task's recipe (resolved by
    :class:`SequenceConfig`; see :class:`SequenceTrainingConfig` on the ignore)."""

    dropout: float | None = option(None, "dropout on the residual branches; unset: the task's")  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.dropout is not None:
            super().__post_init__()


def _own(name: str, text: str) -> str:
    task, default = _OWN[name]
    return f"{task}: {text}; unset: {default}"


@document
@dataclass(frozen=True)
class SequenceConfig(Options):
    """One sequence-classification run (:mod:`graphattn.experiments.sequence_classification`).

    ``task`` is ``"text"`` (TREC), ``"speech"`` (FSDD), ``"image"`` (MNIST patches),
    ``"listops"`` (generated ListOps, :mod:`graphattn.datasets.listops`) or ``"pixels"`` (MNIST
    as 784-pixel sequences); the command line takes it from the command. ``pattern`` is stored
    canonically (its ``repr``) after validation; ``pooling`` unset is ``"cls"`` for text (the
    ``<cls>`` token), ``"mean"`` otherwise. The test split is always scored in full.
    ``ensemble = K`` trains ``K`` models from the seeds ``seed .. seed + K - 1`` (weights, batch
    order and augmentation; the validation split stays ``seed``'s) and classifies by the mean
    of their probabilities. What is unset comes from the task's :class:`SequenceTask`.
    """

    task: str = "text"
    pattern: str | None = option(None, 'attention pattern, e.g. "Window(4)"; unset: the task\'s default')
    operator: str | None = option(None, "attention operator computing Full() in place of the pattern's kernels: "
                                        "performer(M) (FAVOR+, M random features) or linformer(K) (rank K); "
                                        "unset: none")
    pooling: str | None = option(None, "cls (text only), mean or max (feature-wise over the nodes); unset: "
                                       "the task's default", choices=POOLINGS)
    position: str = option("sinusoidal", "positional encoding (2-D for images)", choices=POSITIONS)
    limit: int | None = option(None, f"use at most N training examples (validation is carved from them); "
                                     f"unset: all, ListOps {LISTOPS_TRAIN}")
    max_length: int = option(LISTOPS_MAX_LENGTH, "listops: expressions shorter than this many tokens and longer "
                                                 "than a quarter of it (LRA: 2000)")
    ensemble: int | None = option(None, "models trained from seeds seed, seed + 1, ... that classify by their mean "
                                        "probabilities; unset: text 5, others 1")
    hop: int = option(80, "speech: frame hop in samples at 8 kHz (80: 10 ms; 20: 2.5 ms, hundreds of frames)")
    subwords: int | None = option(None, _own("subwords", "hash buckets of the words' character trigrams "
                                                         "(0: words only)"))
    word_dropout: float | None = option(None, _own("word_dropout", "share of training words read as <unk> "
                                                                   "(their trigrams kept)"))
    shift: int | None = option(None, _own("shift", "shift each training image by up to N pixels each way "
                                                   "(random translation)"))
    freq_mask: int | None = option(None, _own("freq_mask", "SpecAugment, zero up to N adjacent mel channels of "
                                                           "each training clip"))
    time_mask: int | None = option(None, _own("time_mask", "SpecAugment, zero up to N adjacent frames of each "
                                                           "training clip"))
    model: SequenceModelConfig = piece(SequenceModelConfig(), "model",
                                       dropout="dropout on the residual branches; unset: text 0.3, others 0.1")
    training: SequenceTrainingConfig = piece(
        SequenceTrainingConfig(patience=None, warmup=2, schedule="cosine"), "training",
        epochs=f"most epochs; unset: {_each('epochs')}",
        lr="AdamW learning rate; unset: text 0.002, others 0.001",
        label_smoothing="share of each training target spread evenly over the classes; unset: text 0.1, others 0")
    split: SplitConfig = piece(SplitConfig(), "seed and validation split")
    run: RunConfig = piece(RunConfig(), "output and device")

    def __post_init__(self) -> None:
        check_choice(self.task, "task", TASKS)
        recipe = SEQUENCE_TASKS[self.task]
        t, m = self.training, self.model
        object.__setattr__(self, "training", replace(  # replace checks the result
            t, epochs=recipe.epochs if t.epochs is None else t.epochs, lr=recipe.lr if t.lr is None else t.lr,
            label_smoothing=recipe.label_smoothing if t.label_smoothing is None else t.label_smoothing))
        object.__setattr__(self, "model", replace(m, dropout=recipe.dropout if m.dropout is None else m.dropout))
        if self.ensemble is None:
            object.__setattr__(self, "ensemble", recipe.ensemble)
        check_int(self.ensemble, "ensemble", 1, MAX_SEED - self.split.seed + 1)  # every member's seed is valid
        self._operator()
        object.__setattr__(self, "pattern", repr(self.parsed_pattern()))
        if self.pooling is None:
            object.__setattr__(self, "pooling", recipe.pooling)
        check_choice(self.pooling, "pooling", POOLINGS)
        if self.pooling == "cls" and self.task != "text":
            raise ValueError(f"pooling='cls' needs a <cls> token, which only the text task has; "
                             f"use pooling='mean' for task={self.task!r}")
        check_choice(self.position, "position", POSITIONS)
        if self.limit is not None:
            check_int(self.limit, "limit")
        check_int(self.max_length, "max_length", 8)
        check_int(self.hop, "hop")
        for name, tasks in READ_BY.items():
            refuse_unused(self, (name,), self.task in tasks, f"{name} applies to task {' / '.join(map(repr, tasks))} "
                                                              f"only, got task={self.task!r}")
        for name in _OWN:
            self._task_option(name)
        hidden, heads = self.model.hidden, self.model.heads
        if self.position == "rope" and (hidden // heads) % (4 if self.task == "image" else 2):
            raise ValueError(f"position='rope' needs hidden / heads divisible by {4 if self.task == 'image' else 2}")
        if self.position == "sinusoidal" and self.task == "image" and hidden % 2:
            raise ValueError("2-D sinusoidal positions need an even hidden")

    def _operator(self) -> None:
        """Check ``operator`` and store it canonically; an operator attends along ``Full()``, so
        the pattern must be ``Full()`` (unset: set to it)."""
        if self.operator is None:
            return
        try:
            object.__setattr__(self, "operator", str(parse_operator(self.operator)))
        except (TypeError, ValueError) as e:
            raise ValueError(f"operator: {e}") from None
        if self.pattern is None:
            object.__setattr__(self, "pattern", "Full()")
        elif repr(self.parsed_pattern()) != "Full()":
            raise ValueError(f"operator={self.operator!r} attends along Full(); pattern must be Full() or unset, "
                             f"got {self.pattern!r}")

    @property
    def recipe(self) -> SequenceTask:
        return SEQUENCE_TASKS[self.task]

    def _task_option(self, name: str) -> None:
        """Resolve task-only option ``name`` (unset: its task's default, 0 on other tasks) and
        check it: a rate in [0, 1) or an int >= 0, nonzero only on its own task."""
        task, default = _OWN[name]
        value = getattr(self, name)
        if value is None:
            value = default if self.task == task else 0
        if isinstance(default, float):
            value = check_probability(value, name)
        else:
            check_int(value, name, 0)
        if value and self.task != task:
            raise ValueError(f"{name}={value} applies to task={task!r} only, got task={self.task!r}")
        object.__setattr__(self, name, value)

    @property
    def train_limit(self) -> int | None:
        """The training examples asked for: ``limit``, else the task's default (``None``: all)."""
        return LISTOPS_TRAIN if self.limit is None and self.task == "listops" else self.limit

    def parsed_pattern(self):
        """The pattern object (raises ``ValueError`` naming the problem)."""
        from ..patterns import parse_pattern

        text = self.recipe.pattern if self.pattern is None else self.pattern
        try:
            pattern = parse_pattern(text)
            if self.recipe.nodes is not None:
                pattern.validate(self.recipe.nodes)  # a Grid2D must have the grid's width (7 or 28)
        except (TypeError, ValueError) as e:
            raise ValueError(f"pattern: {e}") from None
        return pattern
