"""ZINC-12k and Peptides-func: GraphGPS with any pattern as its global attention, against the
same blocks without attention (tuned message passing, Luo et al.'s "GNN+"), in one harness.

``graphattn zinc`` regresses ZINC's constrained solubility (L1 loss, test MAE of the best
validation epoch); ``graphattn peptides`` predicts Peptides-func's 10 functions (binary
cross-entropy on the logits, test average precision as LRGB computes it). Both use the
published split and every model is a :class:`~graphattn.models.GraphGPS` called as the harness
calls models, ``model(x, graph)`` on a collated batch of molecules:

* atom and bond codes embedded by :class:`~graphattn.nn.CategoricalEncoder` (ZINC's atom and
  bond types as benchmarking-gnns embeds them; OGB's ``AtomEncoder`` / ``BondEncoder`` for
  Peptides-func), structural features ``pe`` (RWSE by default) through a linear map;
* ``gps``: the local layer (``local``: GINE on ZINC, GatedGCN on Peptides-func, as GraphGPS's
  configs) beside attention along ``attention`` (``Full()``: GraphGPS's transformer) laid on
  each molecule; ``exphormer``: along ``VirtualNodes(1) | Expander(d, seed)``; ``bigbird``:
  along ``bigbird(1, [0], 3, seed)`` (a window over the atom order, the first atom global,
  3 random keys per atom);
* ``gine+``, ``gatedgcn+``, ``gcn+``: the same blocks without attention (residual, batch norm,
  dropout, feed-forward block; GCN reads no bond features).

Each model's width is the largest multiple of ``heads`` whose parameter count stays within
``parameters`` (:func:`fit_width`; ~500k in the published budget, the ZINC and LRGB budgets),
so models are compared at equal size; the width and count are in every row. The training is
AdamW with warmup and cosine decay, gradients clipped to norm 1; the epoch is picked on
validation. Budgets and datasets fill unset settings (:mod:`.molecule_config`).
"""

from __future__ import annotations

from functools import cache, partial
from types import SimpleNamespace
from typing import Any, Protocol

import torch

from ..nn import CategoricalEncoder
from ..patterns import Expander, VirtualNodes, bigbird, parse_pattern
from ..train import set_seed
from .graph_classification import MoleculeGPS
from .harness import EVAL_BATCH, ExampleBatches, Optimization, SplitExampleBatches
from .metrics import AveragePrecision, L1Loss, MeanAbsoluteError, MultiLabelBCELoss, Objective
from .molecule_config import GPS_MODELS, MoleculeConfig
from .molecule_data import MoleculeData, RandomSigns
from .options import resolved
from .published import published_table
from .registry import SeedTask
from .results import markdown_table, write_json, write_text
from .seeds import SeedRun

__all__ = ["ZINC", "PEPTIDES", "fit_width", "pattern_for", "build", "identity", "MoleculeConfig"]

_TUNED_LOCAL = {"gine+": "gine", "gatedgcn+": "gatedgcn", "gcn+": "gcn"}
#: The options a checkpoint's weights depend on (besides the model, the seed and the fitted width).
_IDENTITY = ("budget", "attention", "expander_degree", "encoding", "encoding_dim", "limit", "parameters", "layers",
             "heads", "dropout", "attn_dropout", "local", "epochs", "batch_size", "lr", "weight_decay", "warmup")


def pattern_for(name: str, config: MoleculeConfig, seed: int):
    """The global attention of model ``name`` (``None`` for the models without attention)."""
    if name == "gps":
        return parse_pattern(config.attention)
    if name == "exphormer":
        return VirtualNodes(1) | Expander(config.expander_degree, seed=seed)
    if name == "bigbird":
        return bigbird(1, (0,), 3, seed=seed)
    return None


class _Vocabularies(Protocol):
    """What a model's shape depends on: a :class:`~.molecule_data.MoleculeData`, or these alone."""

    @property
    def atoms(self) -> tuple[int, ...]: ...
    @property
    def bonds(self) -> tuple[int, ...]: ...
    @property
    def targets(self) -> int: ...


def _local(name: str, config: MoleculeConfig) -> str:
    return resolved(config.model.local, "local") if name in GPS_MODELS else _TUNED_LOCAL[name]


def _model(name: str, data: _Vocabularies, config: MoleculeConfig, seed: int, width: int) -> MoleculeGPS:
    m, local = config.model, _local(name, config)
    bonds = CategoricalEncoder(data.bonds, width) if local != "gcn" else None
    return MoleculeGPS(CategoricalEncoder(data.atoms, width), width, data.targets, resolved(m.layers, "layers"), m.heads,
                       pattern_for(name, config, seed), edge_dim=bonds,
                       pe_dim=0 if config.encoding == "none" else resolved(config.encoding_dim, "encoding_dim"),
                       dropout=m.dropout, pooling=config.pooling, local=local,
                       attn_dropout=resolved(m.attn_dropout, "attn_dropout"))


def fit_width(make, parameters: int, multiple: int) -> int:
    """The largest multiple of ``multiple`` whose model ``make(width)`` has at most ``parameters``
    parameters. The count grows with the width, so a doubling search and a bisection find it
    (about ten models built).

    Raises:
        ValueError: even ``make(multiple)`` has more than ``parameters`` parameters.
    """
    def count(width: int) -> int:
        return sum(p.numel() for p in make(width).parameters())

    if count(multiple) > parameters:
        raise ValueError(f"parameters={parameters:,} is too few: the narrowest model (width {multiple}) has "
                         f"{count(multiple):,}")
    low, high = 1, 2  # in units of multiple: count(low) fits, count(high) is to be tested
    while count(high * multiple) <= parameters:
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid * multiple) <= parameters else (low, mid)
    return low * multiple


def _width(name: str, data: MoleculeData, config: MoleculeConfig) -> int:
    """Model ``name``'s width: ``hidden``, or fitted to the parameter budget (once per process)."""
    if config.model.hidden is not None:
        return config.model.hidden
    return _fitted(name, config, data.atoms, data.bonds, data.targets)


@cache
def _fitted(name: str, config: MoleculeConfig, atoms: tuple[int, ...], bonds: tuple[int, ...], targets: int) -> int:
    shape = SimpleNamespace(atoms=atoms, bonds=bonds, targets=targets)
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the caller's RNG alone
        return fit_width(lambda width: _model(name, shape, config, 0, width), resolved(config.model.parameters, "parameters"),
                         config.model.heads)


def identity(name: str, data: MoleculeData, config: MoleculeConfig, seed: int) -> dict[str, Any]:
    """What model ``name``'s weights depend on (its checkpoint stores it; resume compares it)."""
    options = config.options()
    return {"task": config.dataset, "model": name, "seed": seed, "width": _width(name, data, config),
            **{k: options[k] for k in _IDENTITY}}


def build(name: str, data: MoleculeData, config: MoleculeConfig, seed: int) -> SeedRun:
    """Model ``name`` at its fitted width, initialised with ``seed``, on the device; AdamW with
    warmup and cosine decay; random eigenvector signs for Laplacian features in training."""
    width = _width(name, data, config)
    set_seed(seed)
    model = _model(name, data, config, seed, width)
    t = config.training
    optimization = Optimization("adamw", resolved(t.lr, "lr"), resolved(t.weight_decay, "weight_decay"), clip=1.0,
                                warmup=resolved(t.warmup, "warmup"), schedule="cosine")
    pattern = pattern_for(name, config, seed)
    local = {"gine": "GINE", "gatedgcn": "GatedGCN", "gcn": "GCN"}[_local(name, config)]
    text = f"{local} + attention along {pattern!r}" if pattern is not None else f"{local} (no attention)"
    return SeedRun(model.to(config.run.device), optimization, text, identity(name, data, config, seed),
                   RandomSigns() if config.encoding == "laplacian" else None,
                   {"width": width, "layers": config.model.layers})


def batches(config: MoleculeConfig, data: MoleculeData, run: SeedRun, seed: int, splits: tuple[str, ...], *,
            train: bool):
    """Shuffled training batches (their order drawn from ``(seed, epoch)``; of molecules of
    similar size if the budget buckets); scoring batches of each split on its own, sorted by size."""
    if train:
        return ExampleBatches(data.graphs["train"], resolved(config.training.batch_size, "batch_size"), shuffle=True,
                              seed=seed, by_epoch=True, bucket=config.bucket)
    return SplitExampleBatches({s: data.graphs[s] for s in splits}, EVAL_BATCH, bucket=True)


def row(config: MoleculeConfig, name: str) -> dict[str, Any]:
    """What a run's row adds: the budget, the encoding, the local layer."""
    return {"budget": config.budget, "encoding": f"{config.encoding}({config.encoding_dim})",
            "local": _local(name, config)}


def _title(config: MoleculeConfig, runs: list[dict[str, Any]]) -> str:
    t, seeds = config.training, len({r["seed"] for r in runs})
    what = {"ZINC": "ZINC-12k, test MAE", "Peptides-func": "Peptides-func, test AP"}[config.dataset]
    batches = "size-bucketed batches" if config.bucket else "batches"
    return (f"{what}: {config.budget} budget ({t.epochs} epochs, {batches} of {t.batch_size}, lr {t.lr:g}, warmup "
            f"{t.warmup}, {config.model.layers} layers, <= {config.model.parameters:,} parameters, attention dropout "
            f"{config.model.attn_dropout:g}), {seeds} seed{'s' * (seeds != 1)}")


def write(objective: Objective, config: MoleculeConfig, runs: list[dict[str, Any]], summary: list[dict[str, Any]],
          wall_time_s: float) -> None:
    """``results.json`` (one row per run), ``results.md`` (ours, then the published numbers) and
    ``<metric>_time.png`` (the metric against time per epoch) in ``config.out_dir``."""
    from ..viz import plot_metric_time

    out, metric = config.out_dir, objective.main
    out.mkdir(parents=True, exist_ok=True)
    widths = ", ".join(dict.fromkeys(f"{r['model']} {r['width']}" for r in runs))
    text = (f"# {_title(config, runs)}\n\n{markdown_table(summary, metric)}\n\nThe epoch is picked on validation; "
            f"mean ± sample std over seeds. Widths fitted to the parameter budget: {widths}. Structural features "
            f"{config.encoding}({config.encoding_dim}). Total wall time {wall_time_s:.0f} s.\n\n"
            f"## Published (their protocol, ~500k parameters)\n\n{published_table(config.dataset, metric)}\n")
    write_json(out / "results.json", runs, allow_nan=True)
    write_text(out / "results.md", text)
    scale, unit = (100.0, " (%)") if metric.percent else (1.0, "")
    plot_metric_time(summary, metric.name, _title(config, runs), label=f"test {metric.name.upper()}{unit}",
                     scale=scale, path=out / f"{metric.name}_time.png")


def report(objective: Objective, results: dict[str, Any]) -> str:
    """The summary table and one line (rank 0 only)."""
    if results.get("rank", 0) != 0:
        return ""
    return (f"{markdown_table(results['summary'], objective.main)}\n{len(results['runs'])} runs in "
            f"{results['wall_time_s']:.0f} s; wrote results.json, results.md and the plot to {results['out']}")


def _task(name: str, dataset: str, objective: Objective, what: str) -> SeedTask:
    return SeedTask(name=name, config=MoleculeConfig, fixed={"dataset": dataset},
                    help=f"{what}: GraphGPS with any global pattern vs tuned message passing",
                    description=f"{what}, published split: train every model (width fitted to a parameter budget) "
                                "with every seed and report mean +- std test metric, parameters, time per epoch and "
                                "peak memory beside the published numbers.",
                    data=MoleculeData, build=build, identity=identity, batches=batches, objective=objective, row=row,
                    write=partial(write, objective), report=partial(report, objective))


ZINC = _task("zinc", "ZINC", Objective(L1Loss(), (MeanAbsoluteError(),), "mae"), "graph regression on ZINC-12k (MAE)")
PEPTIDES = _task("peptides", "Peptides-func", Objective(MultiLabelBCELoss(), (AveragePrecision(),), "ap"),
                 "multi-label classification on Peptides-func (AP)")

