"""The settings of the molecule benchmarks (:mod:`.molecules`): ZINC-12k (graph regression, MAE)
and Peptides-func (multi-label graph classification, average precision). Imports no torch.

Two budgets per dataset fill every setting left unset (:data:`BUDGETS`):

* ``published``: the protocol of GraphGPS's configs (``configs/GPS/zinc-GPS+RWSE.yaml`` and
  ``peptides-func-GPS.yaml`` in rampasek/GraphGPS): AdamW, linear warmup then cosine decay,
  gradients clipped to norm 1, the epochs, batch size, learning rate, weight decay and depth
  there, and ~500k parameters (the ZINC and LRGB budgets); for a GPU (``--device cuda``).
* ``cpu``: the same recipe cut to finish in about 30 minutes per model and seed on 2 CPU cores:
  fewer epochs and layers, a shorter warmup, ~100k parameters, no dropout on the attention
  weights (a short run needs little regularisation, and without it the fused attention kernel
  runs) and training batches of molecules of similar size (:class:`~.harness.ExampleBatches`
  ``bucket``: full attention pads each molecule to the largest of its batch); see
  :data:`BUDGETS` for how it was calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict

from ..checks import check_choice, check_float, check_int, check_probability
from .options import Options, document, option, piece
from .pieces import DataConfig, ProcessConfig, RepeatConfig, RunConfig

__all__ = ["MoleculeConfig", "MOLECULE_DATASETS", "MOLECULE_MODELS", "GPS_MODELS", "TUNED_MOLECULE_MODELS",
           "BUDGETS", "BUDGET_NAMES", "DATASET_DEFAULTS", "MOLECULE_ENCODINGS"]

MOLECULE_DATASETS = ("ZINC", "Peptides-func")
#: GraphGPS with global attention along ``attention`` (default ``Full()``), along Exphormer's
#: ``VirtualNodes(1) | Expander(d)``, or along ``bigbird(1, [0], 3)`` laid on each molecule.
GPS_MODELS = ("gps", "exphormer", "bigbird")
#: The tuned message passing of Luo et al. (2025), "GNN+": the same GPS blocks without attention.
TUNED_MOLECULE_MODELS = ("gine+", "gatedgcn+", "gcn+")
MOLECULE_MODELS = (*GPS_MODELS, *TUNED_MOLECULE_MODELS)
BUDGET_NAMES = ("cpu", "published")
MOLECULE_ENCODINGS = ("random_walk", "laplacian", "none")

class Budget(TypedDict):
    """What an unset setting becomes under one (dataset, budget)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup: int
    layers: int
    parameters: int
    attn_dropout: float
    bucket: bool


class DatasetDefaults(TypedDict):
    """A dataset's settings that do not depend on the budget."""

    local: str
    pooling: str
    encoding: str
    encoding_dim: int
    models: tuple[str, ...]


#: (dataset, budget) -> what an unset setting becomes. ``cpu`` was calibrated by timing the
#: first epochs of each model at the budget's width on a shared 2-core machine (see the
#: molecules page of the results): the epochs are what the slowest default model (``gps``,
#: full attention) fits into about 30 minutes there, the warmup a twentieth of them.
BUDGETS: dict[tuple[str, str], Budget] = {
    ("ZINC", "published"): {"epochs": 2000, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-5, "warmup": 50,
                            "layers": 10, "parameters": 500_000, "attn_dropout": 0.5, "bucket": False},
    ("ZINC", "cpu"): {"epochs": 60, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-5, "warmup": 3,
                      "layers": 4, "parameters": 100_000, "attn_dropout": 0.0, "bucket": True},
    ("Peptides-func", "published"): {"epochs": 200, "batch_size": 128, "lr": 3e-4, "weight_decay": 0.0, "warmup": 10,
                                     "layers": 4, "parameters": 500_000, "attn_dropout": 0.5, "bucket": False},
    ("Peptides-func", "cpu"): {"epochs": 10, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.0, "warmup": 1,
                               "layers": 3, "parameters": 100_000, "attn_dropout": 0.0, "bucket": True},
}
#: dataset -> what does not depend on the budget: GraphGPS's local layer, pooling and
#: encoding (RWSE for ZINC as GraphGPS; for Peptides-func RWSE too, where GraphGPS used LapPE:
#: PyG's eigensolver takes ~65 ms a peptide, 17 minutes for the set), the models run by default.
DATASET_DEFAULTS: dict[str, DatasetDefaults] = {
    "ZINC": {"local": "gine", "pooling": "add", "encoding": "random_walk", "encoding_dim": 20,
             "models": ("gps", "exphormer", "bigbird", "gine+", "gatedgcn+")},
    "Peptides-func": {"local": "gatedgcn", "pooling": "mean", "encoding": "random_walk", "encoding_dim": 16,
                      "models": ("gps", "exphormer", "bigbird", "gine+", "gatedgcn+")},
}


@dataclass(frozen=True)
class MoleculeModelConfig:
    """The models: a width fitted to a parameter budget, depth, heads, dropout."""

    parameters: int | None = option(None, "each model's width is the largest multiple of heads whose parameters "
                                          "stay within this budget; unset: the budget's (500k published)")
    hidden: int | None = option(None, "model width for every model (overrides parameters)")
    layers: int | None = option(None, "GPS / GNN+ blocks; unset: the budget's")
    heads: int = option(4, "attention heads (the fitted width is a multiple of them)")
    dropout: float = option(0.0, "dropout in every block (GraphGPS: 0)")
    attn_dropout: float | None = option(None, "dropout on the attention weights; unset: the budget's (published: "
                                              "GraphGPS's 0.5; cpu: 0)")
    local: str | None = option(None, "GPS models: local layer, gine or gatedgcn; unset: GraphGPS's (ZINC gine, "
                                     "Peptides-func gatedgcn)", choices=("gine", "gatedgcn"))

    def __post_init__(self) -> None:
        for name in ("parameters", "hidden", "layers"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name)
        check_int(self.heads, "heads")
        check_probability(self.dropout, "dropout")
        if self.attn_dropout is not None:
            check_probability(self.attn_dropout, "attn_dropout")
        if self.local is not None:
            check_choice(self.local, "local", ("gine", "gatedgcn"))
        if self.hidden is not None and self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")


@dataclass(frozen=True)
class MoleculeTrainingConfig:
    """Optimisation (AdamW, warmup then cosine, gradients clipped to norm 1); unset: the budget's."""

    epochs: int | None = option(None, "epochs; unset: the budget's")
    batch_size: int | None = option(None, "molecules per batch; unset: the budget's")
    lr: float | None = option(None, "peak AdamW learning rate; unset: the budget's")
    weight_decay: float | None = option(None, "AdamW weight decay; unset: the budget's")
    warmup: int | None = option(None, "epochs of linear warmup; unset: the budget's")
    patience: int | None = option(None, "early stopping after this many epochs without a better validation "
                                        "metric; unset: none (the best validation epoch is kept)")

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name)
        if self.warmup is not None:
            check_int(self.warmup, "warmup", 0)
        if self.lr is not None:
            check_float(self.lr, "lr", above=0)
        if self.weight_decay is not None:
            check_float(self.weight_decay, "weight_decay", minimum=0)


@document
@dataclass(frozen=True)
class MoleculeConfig(Options):
    """A molecule benchmark run (:mod:`graphattn.experiments.molecules`): every model of
    ``models`` with every seed on the published split; settings left unset come from the
    ``budget`` (:data:`BUDGETS`) and the dataset (:data:`DATASET_DEFAULTS`), resolved here.
    """

    dataset: str = "ZINC"  # set by the command (graphattn zinc | peptides)
    models: tuple[str, ...] | None = option(None, f"models, space- or comma-separated, from "
                                                  f"{', '.join(MOLECULE_MODELS)}; unset: all but gcn+",
                                            metavar="MODEL")
    budget: str = option("cpu", "cpu: about 30 minutes per model and seed on 2 cores; published: GraphGPS's "
                                "protocol (for a GPU, --device cuda)", choices=BUDGET_NAMES)
    attention: str = option("Full()", "gps: the pattern of the global attention, laid on each molecule")
    expander_degree: int = option(4, "exphormer: in-degree of the expander (even; drawn with the run's seed)")
    encoding: str | None = option(None, "structural features: random_walk (RWSE), laplacian (LapPE) or none; "
                                        "unset: random_walk", choices=MOLECULE_ENCODINGS)
    encoding_dim: int | None = option(None, "random-walk steps or Laplacian eigenvectors; unset: ZINC 20, "
                                            "Peptides-func 16")
    limit: int | None = option(None, "use only the first N molecules of each split (smoke runs)")
    model: MoleculeModelConfig = piece(MoleculeModelConfig(), "models")
    training: MoleculeTrainingConfig = piece(MoleculeTrainingConfig(), "training")
    repeats: RepeatConfig = piece(RepeatConfig(seeds=3), "runs and checkpoints")
    processes: ProcessConfig = piece(ProcessConfig(), "processes and threads")
    data: DataConfig = piece(DataConfig(), "data")
    run: RunConfig = piece(RunConfig(), "output and device", out="output folder; unset: runs/<dataset>/<budget>")

    def __post_init__(self) -> None:
        check_choice(self.dataset, "dataset", MOLECULE_DATASETS)
        check_choice(self.budget, "budget", BUDGET_NAMES)
        defaults, budget = DATASET_DEFAULTS[self.dataset], BUDGETS[(self.dataset, self.budget)]
        models = defaults["models"] if self.models is None else \
            (self.models,) if isinstance(self.models, str) else tuple(self.models)
        unknown = [m for m in models if m not in MOLECULE_MODELS]
        if not models or unknown or len(set(models)) != len(models):
            raise ValueError(f"models must be distinct names from {MOLECULE_MODELS}, got {self.models!r}"
                             + (f" (unknown: {unknown})" if unknown else ""))
        object.__setattr__(self, "models", models)
        check_int(self.expander_degree, "expander_degree", 2)
        if self.expander_degree % 2:
            raise ValueError(f"expander_degree must be even, got {self.expander_degree}")
        object.__setattr__(self, "attention", repr(_parse(self.attention)))
        object.__setattr__(self, "encoding", self.encoding or defaults["encoding"])
        check_choice(self.encoding, "encoding", MOLECULE_ENCODINGS)
        object.__setattr__(self, "encoding_dim", self.encoding_dim or defaults["encoding_dim"])
        check_int(self.encoding_dim, "encoding_dim")
        if self.limit is not None:
            check_int(self.limit, "limit")
        m, t = self.model, self.training
        attn_dropout = budget["attn_dropout"] if m.attn_dropout is None else m.attn_dropout
        object.__setattr__(self, "model", replace(m, parameters=m.parameters or budget["parameters"],
                                                  layers=m.layers or budget["layers"], local=m.local or defaults["local"],
                                                  attn_dropout=attn_dropout))
        object.__setattr__(self, "training", replace(
            t, epochs=budget["epochs"] if t.epochs is None else t.epochs,
            batch_size=budget["batch_size"] if t.batch_size is None else t.batch_size,
            lr=budget["lr"] if t.lr is None else t.lr,
            weight_decay=budget["weight_decay"] if t.weight_decay is None else t.weight_decay,
            warmup=budget["warmup"] if t.warmup is None else t.warmup))

    @property
    def bucket(self) -> bool:
        """Whether training batches hold molecules of similar size (the budget's choice)."""
        return BUDGETS[(self.dataset, self.budget)]["bucket"]

    @property
    def pooling(self) -> str:
        """GraphGPS's readout for the dataset: the sum (ZINC) or the mean (Peptides-func)."""
        return DATASET_DEFAULTS[self.dataset]["pooling"]

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out) if self.run.out is not None else Path("runs") / self.dataset / self.budget


def _parse(text: str):
    from ..patterns import parse_pattern

    try:
        return parse_pattern(text)
    except (TypeError, ValueError) as e:
        raise ValueError(f"attention: {e}") from None
