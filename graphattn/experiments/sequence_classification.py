"""Sequence classification with one attention layer on three modalities.

* ``text``: TREC questions (6 coarse classes); words are nodes, a ``<cls>`` token is node 0,
  default pattern ``Window(2) | Global([0])`` (Longformer's) read out at ``<cls>``.
* ``speech``: FSDD spoken digits (10 classes, official split); log-mel frames (10 ms hop) are
  nodes, default pattern ``Window(left=8, right=0)`` (each frame sees the 80 ms before it),
  mean pooling.
* ``image``: MNIST digits (10 classes); 4 x 4 patches of the 28 x 28 image are nodes (a 7 x 7
  grid of 49), default pattern ``Full()`` (ViT; try ``Grid2D(2, 7)``), mean pooling.

Each example becomes a ``Data`` through :mod:`graphattn.convert`; a PyG ``DataLoader`` lays
examples of different lengths block-diagonally and the model lays the pattern on each of them
(``batch.batch`` says which nodes belong together). Positions enter as sinusoidal features
(``position="sinusoidal"``: 1-D for text and speech, the 2-D (row, col) variant for image
patches), as rotary scores (``"rope"``), or not at all (``"none"``). A validation split is
carved from the training split deterministically (``seed``), :func:`graphattn.train.fit` keeps
the weights of the best validation accuracy, and the test split is scored once with them.

    from graphattn.experiments.sequence_classification import SequenceConfig, run
    metrics = run(SequenceConfig(task="speech", epochs=10, out="runs/speech"))
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from ..files import write_atomic
from ..models import GraphTransformer
from ..nn.encodings import RotaryEncoding, SinusoidalEncoding
from ..patterns import Pattern, parse_pattern, positions, sizes_from_batch
from ..train import TrainConfig, fit, peak_memory_mb, reset_peak_memory, set_seed

__all__ = ["SequenceConfig", "run", "TASKS", "DEFAULT_PATTERNS", "POSITIONS", "write_results", "evaluate"]

TASKS = ("text", "speech", "image")
DEFAULT_PATTERNS = {"text": "Window(2) | Global([0])", "speech": "Window(left=8, right=0)", "image": "Full()"}
DEFAULT_POOLING = {"text": "cls", "speech": "mean", "image": "mean"}
POSITIONS = ("sinusoidal", "rope", "none")
DATASETS = {"text": "TREC", "speech": "FSDD", "image": "MNIST"}

PATCH = 4  # MNIST: 28 x 28 -> a 7 x 7 grid of 4 x 4 patches
MEL = {"n_fft": 256, "hop_length": 80, "n_mels": 40}  # FSDD is 8 kHz: 32 ms windows, 10 ms hop


def _positive(value: object, name: str, *, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {value!r}")


@dataclass
class SequenceConfig:
    """One sequence-classification run.

    Args:
        task: ``"text"`` (TREC), ``"speech"`` (FSDD) or ``"image"`` (MNIST). (default: ``"text"``)
        pattern: attention pattern as text for :func:`~graphattn.patterns.parse_pattern`;
            ``None`` takes the task's entry of :data:`DEFAULT_PATTERNS`. Stored canonically
            (its ``repr``) after validation. (default: ``None``)
        pooling: ``"cls"`` (text only: reads the ``<cls>`` token) or ``"mean"``; ``None`` is
            ``"cls"`` for text, ``"mean"`` otherwise. (default: ``None``)
        position: ``"sinusoidal"``, ``"rope"`` or ``"none"``. (default: ``"sinusoidal"``)
        hidden, heads, layers, dropout: the model. (default: ``64, 4, 2, 0.1``)
        epochs, patience, batch_size, lr, weight_decay: training (AdamW, early stopping on
            ``val_acc``). (default: ``20, 5, 64, 1e-3, 0.01``)
        seed: seeds the weights, the validation split and the batch order. (default: ``0``)
        limit: use at most this many examples of the training split (the validation split is
            carved from them); the test split is always scored in full. (default: ``None``)
        val_fraction: share of the (limited) training split held out for validation. (default: ``0.1``)
        out: folder for ``results.json`` and ``history.png``; ``None`` writes nothing. (default: ``None``)
        progress: progress bars on stderr. (default: ``True``)
        device: ``"cpu"`` or ``"cuda"``. (default: ``"cpu"``)
    """

    task: str = "text"
    pattern: str | None = None
    pooling: str | None = None
    position: str = "sinusoidal"
    hidden: int = 64
    heads: int = 4
    layers: int = 2
    dropout: float = 0.1
    epochs: int = 20
    patience: int | None = 5
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    limit: int | None = None
    val_fraction: float = 0.1
    out: str | None = None
    progress: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        self.pattern = repr(self.parsed_pattern())
        self.pooling = DEFAULT_POOLING[self.task] if self.pooling is None else self.pooling
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {self.pooling!r}")
        if self.pooling == "cls" and self.task != "text":
            raise ValueError(f"pooling='cls' needs a <cls> token, which only the text task has; "
                             f"use pooling='mean' for task={self.task!r}")
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {self.position!r}")
        for name in ("hidden", "heads", "layers", "epochs", "batch_size"):
            _positive(getattr(self, name), name)
        _positive(self.patience, "patience", allow_none=True)
        _positive(self.limit, "limit", allow_none=True)
        if self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")
        if self.position == "rope" and (self.hidden // self.heads) % (4 if self.task == "image" else 2):
            raise ValueError(f"position='rope' needs hidden / heads divisible by {4 if self.task == 'image' else 2}")
        if self.position == "sinusoidal" and self.task == "image" and self.hidden % 2:
            raise ValueError("2-D sinusoidal positions need an even hidden")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if not (self.lr > 0 and self.weight_decay >= 0 and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"need lr > 0, weight_decay >= 0, 0 <= dropout < 1; got lr={self.lr}, "
                             f"weight_decay={self.weight_decay}, dropout={self.dropout}")
        if self.device not in ("cpu", "cuda") or (self.device == "cuda" and not torch.cuda.is_available()):
            raise ValueError(f"device must be 'cpu' or an available 'cuda', got {self.device!r}")

    def parsed_pattern(self) -> Pattern:
        """The pattern object (raises ``ValueError`` naming the problem)."""
        text = DEFAULT_PATTERNS[self.task] if self.pattern is None else self.pattern
        try:
            pattern = parse_pattern(text)
            if self.task == "image":
                pattern.validate(49)  # a Grid2D must have the patch grid's width (7)
        except (TypeError, ValueError) as e:
            raise ValueError(f"pattern: {e}") from None
        return pattern


# ----------------------------------------------------------------------------- data

def _carve(n: int, cfg: SequenceConfig) -> tuple[list[int], list[int]]:
    """Deterministic (train, val) indices into a training split of ``n`` examples."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    order = order[: cfg.limit] if cfg.limit is not None else order
    n_val = max(1, round(cfg.val_fraction * len(order)))
    if len(order) - n_val < 1:
        raise ValueError(f"limit={cfg.limit} leaves no training examples after the validation split")
    return order[n_val:], order[:n_val]


def _slim(data: Data) -> Data:
    # The model lays the pattern on each sequence itself, so the per-example edge lists are never
    # read; MNIST with Full() would otherwise hold 49^2 edges x 10000 images (300 MB).
    del data.edge_index
    return data


def _text(cfg: SequenceConfig, pattern: Pattern) -> tuple[list[list[Data]], int, dict]:
    from ..convert import Tokenizer, text_to_graph
    from ..datasets import load_trec

    train, test = load_trec("train", progress=cfg.progress), load_trec("test", progress=cfg.progress)
    tr, va = _carve(len(train.examples), cfg)
    tokenizer = Tokenizer(min_freq=2, cls=True).fit(train.examples[i][0] for i in tr)  # never sees val / test
    add_cls = cfg.pooling == "cls"

    def convert(examples: Iterable[tuple[str, int]]) -> list[Data]:
        return [_slim(text_to_graph(t, tokenizer, pattern, y=y, add_cls=add_cls)) for t, y in examples]

    splits = [convert(train.examples[i] for i in tr), convert(train.examples[i] for i in va), convert(test.examples)]
    return splits, len(train.classes), {"in_channels": len(tokenizer), "vocabulary": len(tokenizer)}


def _speech(cfg: SequenceConfig, pattern: Pattern) -> tuple[list[list[Data]], int, dict]:
    from ..convert import audio_to_graph
    from ..datasets import load_fsdd

    train, test = load_fsdd("train", progress=cfg.progress), load_fsdd("test", progress=cfg.progress)
    tr, va = _carve(len(train.labels), cfg)

    def convert(split, idx: Iterable[int]) -> list[Data]:
        return [_slim(audio_to_graph(split.waveforms[i], split.sample_rate, pattern, y=int(split.labels[i]), **MEL))
                for i in tqdm(list(idx), desc="log-mel", leave=False, disable=not cfg.progress)]

    splits = [convert(train, tr), convert(train, va), convert(test, range(len(test.labels)))]
    frames = torch.cat([d.x[: d.num_real_nodes] for d in splits[0]])  # (frames, n_mels), training only
    mean, std = frames.mean(0), frames.std(0).clamp(min=1e-5)
    for d in (d for split in splits for d in split):
        d.x[: d.num_real_nodes] = (d.x[: d.num_real_nodes] - mean) / std
    lengths = [d.num_real_nodes for d in splits[0]]
    return splits, 10, {"in_channels": MEL["n_mels"], "frames_max": max(lengths),
                        "frames_mean": sum(lengths) / len(lengths), **MEL}


def _image(cfg: SequenceConfig, pattern: Pattern) -> tuple[list[list[Data]], int, dict]:
    from ..convert import image_to_graph
    from ..datasets import load_mnist

    train, test = load_mnist("train", progress=cfg.progress), load_mnist("test", progress=cfg.progress)
    tr, va = _carve(len(train.labels), cfg)

    def convert(split, idx: Iterable[int]) -> list[Data]:
        images = (split.images.float() / 255 - 0.1307) / 0.3081  # MNIST's usual mean / std
        return [_slim(image_to_graph(images[i], PATCH, pattern, y=int(split.labels[i]))) for i in idx]

    splits = [convert(train, tr), convert(train, va), convert(test, range(len(test.labels)))]
    return splits, 10, {"in_channels": PATCH * PATCH, "patch_size": PATCH, "grid": [7, 7], "mnist_source": train.source}


_LOADERS: dict[str, Callable] = {"text": _text, "speech": _speech, "image": _image}


# ----------------------------------------------------------------------------- model and loop

def _model(cfg: SequenceConfig, pattern: Pattern, in_channels: int, num_classes: int) -> GraphTransformer:
    head_dim = cfg.hidden // cfg.heads
    return GraphTransformer(
        in_channels, cfg.hidden, num_classes, num_layers=cfg.layers, heads=cfg.heads, pattern=pattern,
        pooling=cfg.pooling, dropout=cfg.dropout, embedding=cfg.task == "text",
        feature_encoding=SinusoidalEncoding(cfg.hidden) if cfg.position == "sinusoidal" else None,
        position=RotaryEncoding(head_dim) if cfg.position == "rope" else None,
    )


def _forward(model: GraphTransformer, batch, pattern: Pattern, rope: bool) -> torch.Tensor:
    x, index, pos = batch.x, batch.batch, batch.pos
    if pattern.extra_nodes:  # the converter's zero rows give way to the model's learned virtual nodes
        keep = positions(sizes_from_batch(index, x.size(0))).to(x.device) < batch.num_real_nodes[index]
        x, index = x[keep], index[keep]
        pos = None if rope else pos  # score-side positions cannot be laid on virtual nodes
    return model(x, pattern, batch=index, pos=pos)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, forward: Callable) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``forward(model, batch)`` over ``loader``."""
    model.eval()
    correct, loss, count = 0, 0.0, 0
    for batch in loader:
        out = forward(model, batch)
        correct += int((out.argmax(-1) == batch.y).sum())
        loss += float(F.cross_entropy(out, batch.y, reduction="sum"))
        count += batch.y.numel()
    return correct / max(count, 1), loss / max(count, 1)


def train_epoch_fn(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader,
                   forward: Callable) -> Callable[[], float]:
    """A ``train_epoch()`` closure for :func:`graphattn.train.fit`: one pass, mean loss per example."""
    def train_epoch() -> float:
        total, count = 0.0, 0
        for batch in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(forward(model, batch), batch.y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total, count = total + loss.item() * batch.y.numel(), count + batch.y.numel()
        return total / max(count, 1)
    return train_epoch


def write_results(out: str | os.PathLike, metrics: dict, rows: list[dict]) -> None:
    """Write ``results.json`` (atomically: temporary file, then rename) and ``history.png`` to ``out``."""
    from ..viz import plot_history

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    write_atomic(out / "results.json", lambda f: f.write(text.encode()))
    if rows:
        plot_history(rows, out / "history.png")


def run(cfg: SequenceConfig) -> dict:
    """Train and test one model; returns the metrics (also written to ``cfg.out``)."""
    if not isinstance(cfg, SequenceConfig):
        raise TypeError(f"cfg must be a SequenceConfig, got {type(cfg).__name__}")
    set_seed(cfg.seed)
    pattern = cfg.parsed_pattern()
    device = torch.device(cfg.device)
    tic = time.perf_counter()
    (train, val, test), num_classes, info = _LOADERS[cfg.task](cfg, pattern)
    data_s = time.perf_counter() - tic

    set_seed(cfg.seed)
    model = _model(cfg, pattern, info["in_channels"], num_classes).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rope = cfg.position == "rope"

    def forward(m: torch.nn.Module, batch) -> torch.Tensor:
        return _forward(m, batch.to(device), pattern, rope)

    shuffled = DataLoader(train, batch_size=cfg.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(cfg.seed))
    loaders = [DataLoader(split, batch_size=256) for split in (val, test)]

    def validate() -> dict[str, float]:
        acc, loss = evaluate(model, loaders[0], forward)
        return {"val_acc": acc, "val_loss": loss}

    reset_peak_memory(device)
    history = fit(model, optimizer, train_epoch_fn(model, optimizer, shuffled, forward), validate,
                  TrainConfig(epochs=cfg.epochs, patience=cfg.patience, progress=cfg.progress))
    test_acc, test_loss = evaluate(model, loaders[1], forward)
    rows = [{"epoch": r.epoch, "loss": r.loss, **r.metrics} for r in history.rows]
    metrics = {
        "task": cfg.task, "dataset": DATASETS[cfg.task], "pattern": repr(pattern), "pooling": cfg.pooling,
        "position": cfg.position, "test_acc": test_acc, "test_loss": test_loss,
        "best_val_acc": history.best_metrics.get("val_acc"), "best_epoch": history.best_epoch,
        "epochs_run": history.epochs_run, "stopped_early": history.stopped_early,
        "time_per_epoch_s": history.mean_epoch_time_s, "data_prep_s": data_s,
        "peak_memory_mb": peak_memory_mb(device), "device": str(device),
        "num_train": len(train), "num_val": len(val), "num_test": len(test), "num_classes": num_classes,
        "parameters": sum(p.numel() for p in model.parameters()), "data": info,
        "config": asdict(cfg), "history": rows,
    }
    if cfg.out is not None:
        write_results(cfg.out, metrics, rows)
    return metrics
