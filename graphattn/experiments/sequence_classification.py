"""Sequence classification with one attention layer on three modalities.

* ``text``: TREC questions (6 coarse classes); words are nodes, a ``<cls>`` token is node 0,
  default pattern ``Window(2) | Global([0])`` (Longformer's) read out at ``<cls>``.
* ``speech``: FSDD spoken digits (10 classes, official split); log-mel frames (10 ms hop) are
  nodes, default pattern ``Window(8)`` (each frame sees the 80 ms around it; the streaming
  ``Window(left=8, right=0)`` sees only the past), mean pooling.
* ``image``: MNIST digits (10 classes); 4 x 4 patches of the 28 x 28 image are nodes (a 7 x 7
  grid of 49), default pattern ``Full()`` (ViT; try ``Grid2D(2, 7)``), mean pooling.
* ``listops``: ListOps expressions (10 classes) from :mod:`graphattn.datasets.listops`, LRA's
  generator; tokens are nodes, at most ``max_length`` of them (LRA: 2000), mean pooling. The
  splits are LRA's own (validation 2,000, test 2,000, training ``limit``), not carved.
* ``pixels``: MNIST digits as sequences of 784 pixels (LRA's image task on MNIST), one node per
  pixel in raster order with 1-D positions, mean pooling; try ``Grid2D(2, 28)``.

Speech at frame rate: ``hop=20`` (2.5 ms) gives about 170 frames a clip on average and up to 900.

Each example becomes a ``Data`` through :mod:`graphattn.convert`; a PyG ``DataLoader`` lays
examples of different lengths block-diagonally and the model lays the pattern on each of them
(``batch.batch`` says which nodes belong together). Positions enter as sinusoidal features
(``position="sinusoidal"``: 1-D for text and speech, the 2-D (row, col) variant for image
patches), as rotary scores (``"rope"``), or not at all (``"none"``). A validation split is
carved from the training split deterministically (``seed``), :func:`graphattn.train.fit` keeps
the weights of the best validation accuracy, and the test split is scored once with them.
With ``ensemble = K`` (TREC's default is 5) ``K`` models are trained so, from the seeds ``seed
.. seed + K - 1``, and classify by the mean of their probabilities,
``argmax_c (1/K) sum_k p_k(c | x)``; the metrics give each model's accuracy beside the ensemble's.

Training by default: AdamW, the learning rate rising linearly over 2 epochs and then decaying
on a cosine to 0 at the end of the task's budget (text 30, speech 40, image 60 epochs; ListOps
and pixels 20), no early stopping; learning rate 0.001, no label smoothing and dropout 0.1,
except TREC: 0.002, 0.1 and 0.3 (each task's :class:`~.sequence_config.SequenceTask`). The
data is :mod:`.sequence_data`'s; every model is trained by the harness's one loop
(:func:`~.harness.train_model`), called as ``model(x, graph)``. Only training batches are augmented, each
draw fresh: TREC words read as ``<unk>`` with probability ``word_dropout`` (each word also
carries its hashed character trigrams, ``subwords``); MNIST images shifted by up to ``shift``
pixels; FSDD clips masked SpecAugment-style (``freq_mask`` channels, ``time_mask`` frames).

    from graphattn.experiments.sequence_classification import SequenceConfig, run
    metrics = run(SequenceConfig.from_options(task="speech", epochs=10, out="runs/speech"))
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from ..files import FolderLock
from ..models import GraphTransformer
from ..nn.encodings import RotaryEncoding, SinusoidalEncoding
from ..patterns import Pattern
from ..train import TrainConfig, peak_memory_mb, reset_peak_memory, set_seed
from .attention_spec import parse_operator
from .harness import EVAL_BATCH, Batch, ExampleBatches, Optimization, predict, train_model
from .metrics import classification
from .registry import Task
from .results import OUTPUT_FILES, key_value_table, write_results
from .sequence_config import POSITIONS, SEQUENCE_TASKS, TASKS, SequenceConfig
from .sequence_data import LOADERS, _augmenter

__all__ = ["SequenceConfig", "run", "report", "keys_per_query", "TASKS", "POSITIONS", "SequenceTransformer", "COMMANDS"]

KEY_SAMPLE = 256  # test examples over which keys_per_query is counted


class SequenceTransformer(GraphTransformer):
    """:class:`~graphattn.models.GraphTransformer` that also takes the harness's call
    ``model(x, graph)`` on collated sequences: its pattern laid on each sequence of
    ``graph.batch`` at the positions ``graph.pos`` (none with rotary scores and virtual nodes:
    score-side positions cannot be laid on virtual nodes, which then use sequence positions)."""

    def forward(self, x: Tensor, edges=None, *args, **kwargs):  # type: ignore[override]
        if not isinstance(edges, Data):
            return super().forward(x, edges, *args, **kwargs)
        pos = None if self.position is not None and self.pattern.extra_nodes else edges.pos
        return super().forward(x, self.pattern, batch=edges.batch, pos=pos, **kwargs)


def _model(cfg: SequenceConfig, pattern: Pattern, in_channels: int, num_classes: int,
           max_length: int) -> SequenceTransformer:
    m = cfg.model
    operator = None if cfg.operator is None else parse_operator(cfg.operator).build(max_length)
    return SequenceTransformer(
        in_channels, m.hidden, num_classes, num_layers=m.layers, heads=m.heads, pattern=pattern,
        pooling=cfg.pooling, dropout=m.dropout, embedding=cfg.task in ("text", "listops"),
        feature_encoding=SinusoidalEncoding(m.hidden) if cfg.position == "sinusoidal" else None,
        position=RotaryEncoding(m.hidden // m.heads) if cfg.position == "rope" else None, operator=operator,
    )


def _on_examples(augment: Callable | None) -> Callable[[Batch], Batch] | None:
    """An augmentation of collated PyG batches (which sets their ``x``) as the loop's ``augment``."""
    if augment is None:
        return None
    return lambda batch: replace(batch, x=augment(batch.graph).x)


def keys_per_query(pattern: Pattern, lengths: Iterable[int]) -> float:
    """Edges over nodes of ``pattern`` laid on sequences of these ``lengths``: the mean number of
    keys a query attends to (self included), whatever the kernel."""
    lengths = list(lengths)
    edges = {n: pattern.edge_index(n).size(1) for n in set(lengths)}
    return sum(edges[n] for n in lengths) / max(sum(lengths), 1)


def _cost(cfg: SequenceConfig, pattern: Pattern, model: SequenceTransformer, test: list[Data],
          device: torch.device) -> tuple[float, str]:
    """``(keys_per_query, what it counts)`` on the first :data:`KEY_SAMPLE` test examples: a fixed
    pattern's edges over nodes (``"keys"``); a data-dependent pattern's edges over nodes as the
    trained ``model`` chose them, the mean over its layers (``"keys (routed)"``); an operator's
    size (``"rank"``: Linformer's summaries per query; ``"features"``: Performer's)."""
    sample = test[:KEY_SAMPLE]
    if cfg.operator is not None:
        spec = parse_operator(cfg.operator)
        return float(spec.size), spec.unit
    if not pattern.data_dependent:
        return keys_per_query(pattern, (d.num_nodes for d in sample)), "keys"
    edges = nodes = 0
    model.eval()
    with torch.no_grad():
        for batch in (b.to(device) for b in ExampleBatches(sample, 16)):  # a few at a time: edges are listed
            _, weights = model(batch.x, batch.graph, return_attention_weights=True)
            edges += sum(edge_index.size(1) for edge_index, _ in weights)
            nodes += len(weights) * batch.graph.num_nodes
    return edges / max(nodes, 1), "keys (routed)"


def _mean_probability(log_probs: list[torch.Tensor], split: list[Data]) -> tuple[float, float]:
    """(accuracy, cross-entropy) of the mean of the models' probabilities over ``split``."""
    mean = torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))  # log (1/K sum_k p_k)
    y = torch.cat([d.y for d in split]).to(mean.device)
    return int((mean.argmax(-1) == y).sum()) / max(y.numel(), 1), float(F.nll_loss(mean, y))


def run(cfg: SequenceConfig) -> dict:
    """Train and test one model, or ``cfg.ensemble`` of them; returns the metrics (also written
    to ``cfg.run.out``, which the run holds against other runs). ``test_acc`` / ``best_val_acc``
    score what classifies (the ensemble's mean probabilities); ``members`` holds each model's
    own; ``history`` is the first model's."""
    if not isinstance(cfg, SequenceConfig):
        raise TypeError(f"cfg must be a SequenceConfig, got {type(cfg).__name__}")
    with FolderLock(cfg.run.out, outputs=OUTPUT_FILES) if cfg.run.out is not None else nullcontext():
        return _run(cfg)


def _run(cfg: SequenceConfig) -> dict:
    seed, t = cfg.split.seed, cfg.training
    set_seed(seed)
    pattern = cfg.parsed_pattern()
    device = torch.device(cfg.run.device)
    tic = time.perf_counter()
    (train, val, test), num_classes, info = LOADERS[cfg.task](cfg, pattern)
    data_s = time.perf_counter() - tic
    objective = classification(t.label_smoothing)
    optimization = Optimization("adamw", t.lr, t.weight_decay, clip=1.0, warmup=t.warmup, schedule=t.schedule)
    val_batches, test_batches = ExampleBatches(val, EVAL_BATCH), ExampleBatches(test, EVAL_BATCH)
    longest = max(d.num_nodes for split in (train, val, test) for d in split)  # Linformer mixes this many
    reset_peak_memory(device)
    members, histories, val_lp, test_lp = [], [], [], []
    for member_seed in range(seed, seed + cfg.ensemble):
        set_seed(member_seed)
        model = _model(cfg, pattern, info["in_channels"], num_classes, longest).to(device)
        history = train_model(model, ExampleBatches(train, t.batch_size, shuffle=True, seed=member_seed), val_batches,
                              objective, optimization,
                              TrainConfig(epochs=t.epochs, patience=t.patience, progress=cfg.run.progress),
                              augment=_on_examples(_augmenter(cfg, member_seed)))
        val_lp.append(F.log_softmax(predict(model, val_batches, device=device), dim=-1))
        test_lp.append(F.log_softmax(predict(model, test_batches, device=device), dim=-1))
        histories.append(history)
        members.append({"seed": member_seed, "test_acc": _mean_probability(test_lp[-1:], test)[0],
                        "best_val_acc": history.best_metrics.get("val_acc"), "best_epoch": history.best_epoch,
                        "epochs_run": history.epochs_run, "time_per_epoch_s": history.mean_epoch_time_s})
    test_acc, test_loss = _mean_probability(test_lp, test)
    keys, counted = _cost(cfg, pattern, model, test, device)
    first = histories[0]
    rows = [{"epoch": r.epoch, "loss": r.loss, **r.metrics} for r in first.rows]
    epochs = sum(h.epochs_run for h in histories)
    member_acc = [m["test_acc"] for m in members]
    metrics = {
        "task": cfg.task, "dataset": SEQUENCE_TASKS[cfg.task].dataset, "pattern": repr(pattern),
        "operator": cfg.operator, "pooling": cfg.pooling,
        "position": cfg.position, "test_acc": test_acc, "test_loss": test_loss,
        "best_val_acc": _mean_probability(val_lp, val)[0], "best_epoch": first.best_epoch,
        "epochs_run": first.epochs_run, "stopped_early": first.stopped_early,
        "time_per_epoch_s": sum(h.mean_epoch_time_s * h.epochs_run for h in histories) / max(epochs, 1),
        "data_prep_s": data_s, "peak_memory_mb": peak_memory_mb(device), "device": str(device),
        "keys_per_query": keys, "keys_counted": counted,
        "num_train": len(train), "num_val": len(val), "num_test": len(test), "num_classes": num_classes,
        "parameters": sum(p.numel() for p in model.parameters()), "data": info,
        "ensemble": cfg.ensemble, "members": members,
        "member_test_acc_mean": statistics.fmean(member_acc),
        "member_test_acc_std": statistics.stdev(member_acc) if len(member_acc) > 1 else 0.0,
        "config": cfg.options(), "history": rows,
    }
    if cfg.run.out is not None:
        write_results(cfg.run.out, metrics, rows)
    return metrics


def report(m: dict) -> str:
    """What ``graphattn text`` (``speech``, ...) prints: the task, the split sizes, the accuracies
    (each model's of an ensemble too), epochs, time, memory, parameters, where results went."""
    rows = [("task", f"{m['task']} ({m['dataset']})"), ("pattern", m["pattern"]),
            *([("operator", m["operator"])] if m.get("operator") else []),
            ("pooling / position", f"{m['pooling']} / {m['position']}"),
            ("train / val / test", f"{m['num_train']} / {m['num_val']} / {m['num_test']}"),
            ("test_acc", m["test_acc"]), ("best_val_acc", m["best_val_acc"])]
    if m["ensemble"] > 1:
        rows.append(("ensemble", f"{m['ensemble']} models, each test_acc {m['member_test_acc_mean']:.4f} "
                                 f"+- {m['member_test_acc_std']:.4f}"))
    rows += [("epochs (best)", f"{m['epochs_run']} ({m['best_epoch']})"), ("time/epoch (s)", m["time_per_epoch_s"]),
             ("peak memory (MB)", m["peak_memory_mb"]), ("parameters", m["parameters"])]
    out = m["config"]["out"]
    return key_value_table(rows + ([("wrote", out)] if out is not None else []))


#: One command per sequence task: ``graphattn text``, ``graphattn speech``, ...
COMMANDS = tuple(Task(name=t.name, config=SequenceConfig, fixed={"task": t.name}, runner=run, report=report,
                      help=f"train and test: {t.what}; default pattern {t.pattern}, {t.pooling} pooling",
                      description=f"Classify: {t.what}; default pattern {t.pattern}, {t.pooling} pooling.")
                 for t in SEQUENCE_TASKS.values())
