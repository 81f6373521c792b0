"""The settings of graph classification (:mod:`.graph_classification`): :class:`GraphConfig`.
Imports no torch."""

from __future__ import annotations

from dataclasses import dataclass

from ..checks import check_choice, check_int
from .options import Options, document, option, piece
from .pieces import BatchTrainingConfig, EncodingConfig, ModelConfig, RunConfig, SplitConfig

__all__ = ["GraphConfig", "GRAPH_DATASETS", "GRAPH_MODELS"]

GRAPH_DATASETS = ("MUTAG",)
#: ``gps``: GraphGPS (GINE on the bonds with their types, ``attention`` globally, the
#: positional features); ``transformer``: the GraphTransformer along the bonds (``add`` joined);
#: ``gin``: PyG's GIN, the control.
GRAPH_MODELS = ("gps", "transformer", "gin")


@document
@dataclass(frozen=True)
class GraphConfig(Options):
    """One cross-validated graph-classification run (:mod:`graphattn.experiments.graph_classification`):
    every model in ``models`` on the same folds and validation splits.

    ``add`` and ``attention`` are stored canonically (their ``repr``). MUTAG's smallest graph
    has 10 nodes, so Laplacian encodings take ``encoding_dim <= 9``; ``val_fraction`` is the
    stratified share of each fold's training part held out for validation (below 0.5).
    """

    dataset: str = option("MUTAG", "TUDataset name (only MUTAG)")
    models: tuple[str, ...] = option(("gps", "gin"), f"models to cross-validate, space- or comma-separated, from "
                                                     f"{', '.join(GRAPH_MODELS)}", metavar="MODEL")
    attention: str = option("Full()", "gps: pattern of the global attention, laid on each molecule")
    add: str | None = option(None, 'transformer: pattern joined to the bonds and self-loops, e.g. "VirtualNodes(1)"')
    folds: int = option(10, "cross-validation folds (>= 2)")
    positional: EncodingConfig = piece(EncodingConfig(encoding="random_walk", encoding_dim=16), "positional features")
    model: ModelConfig = piece(ModelConfig(layers=3), "model")
    training: BatchTrainingConfig = piece(BatchTrainingConfig(epochs=100, patience=30, batch_size=32),
                                          "training, per fold")
    split: SplitConfig = piece(SplitConfig(), "seed and validation split",
                               seed="seeds the folds, the validation splits, the weights and the batch order")
    run: RunConfig = piece(RunConfig(), "output and device")

    def __post_init__(self) -> None:
        if str(self.dataset).upper() not in GRAPH_DATASETS:
            check_choice(self.dataset, "dataset", GRAPH_DATASETS)
        object.__setattr__(self, "dataset", str(self.dataset).upper())
        models = (self.models,) if isinstance(self.models, str) else tuple(self.models)
        if not models:
            raise ValueError(f"models must name at least one of {GRAPH_MODELS}")
        for name in models:
            check_choice(name, "models", GRAPH_MODELS)
        object.__setattr__(self, "models", tuple(dict.fromkeys(models)))
        if self.add is not None:
            object.__setattr__(self, "add", repr(self.parsed_add()))
        object.__setattr__(self, "attention", repr(self.parsed_attention()))
        check_int(self.folds, "folds", 2)
        if self.positional.encoding == "laplacian" and self.positional.encoding_dim > 9:
            raise ValueError(f"encoding_dim={self.positional.encoding_dim}: Laplacian eigenvectors need k < 10 "
                             f"(MUTAG's smallest graph has 10 nodes)")
        if not self.split.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.split.val_fraction!r}")

    def parsed_attention(self):
        """The pattern of GraphGPS's global attention."""
        return _parse(self.attention, "attention")

    def parsed_add(self):
        """The pattern joined to each molecule's edges, or ``None``."""
        return None if self.add is None else _parse(self.add, "add")


def _parse(text: str, name: str):
    from ..patterns import parse_pattern

    try:
        return parse_pattern(text)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: {e}") from None
