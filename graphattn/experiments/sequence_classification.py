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
on a cosine to 0 at the end of the task's budget (``TASK_EPOCHS``: text 30, speech 40, image 60
epochs; ListOps and pixels 20), no early stopping; learning rate 0.001, no label smoothing and
dropout 0.1, except TREC: 0.002, 0.1 and 0.3 (``TASK_RECIPES``). Only training batches are augmented, each
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

import torch
import torch.nn.functional as F
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from ..models import GraphTransformer
from ..nn.encodings import RotaryEncoding, SinusoidalEncoding
from ..patterns import Pattern
from ..train import peak_memory_mb, reset_peak_memory, set_seed
from .common import EVAL_BATCH, fit_minibatches, log_probabilities, write_results
from .sequence_config import POSITIONS, SEQUENCE_TASKS, TASKS, SequenceConfig

__all__ = ["SequenceConfig", "run", "keys_per_query", "TASKS", "POSITIONS"]

PATCH = 4  # MNIST: 28 x 28 -> a 7 x 7 grid of 4 x 4 patches
UNK_ID, CLS_ID = 1, 2  # the Tokenizer's <unk> and <cls> ids
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the usual normalisation of MNIST pixels in [0, 1]
KEY_SAMPLE = 256  # test examples over which keys_per_query is counted
MEL = {"n_fft": 256, "n_mels": 40}  # FSDD is 8 kHz: 32 ms windows; the hop is cfg.hop (80: 10 ms)


# ----------------------------------------------------------------------------- data

def _carve(n: int, cfg: SequenceConfig) -> tuple[list[int], list[int]]:
    """Deterministic (train, val) indices into a training split of ``n`` examples."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split.seed)).tolist()
    order = order[: cfg.train_limit] if cfg.train_limit is not None else order
    n_val = max(1, round(cfg.split.val_fraction * len(order)))
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

    train, test = load_trec("train", progress=cfg.run.progress), load_trec("test", progress=cfg.run.progress)
    tr, va = _carve(len(train.examples), cfg)
    tokenizer = Tokenizer(min_freq=2, cls=True, subwords=cfg.subwords)
    tokenizer.fit(train.examples[i][0] for i in tr)  # never sees val / test
    add_cls = cfg.pooling == "cls"

    def convert(examples: Iterable[tuple[str, int]]) -> list[Data]:
        return [_slim(text_to_graph(t, tokenizer, pattern, y=y, add_cls=add_cls)) for t, y in examples]

    splits = [convert(train.examples[i] for i in tr), convert(train.examples[i] for i in va), convert(test.examples)]
    return splits, len(train.classes), {"in_channels": tokenizer.num_embeddings, "vocabulary": len(tokenizer),
                                        "subwords": tokenizer.subwords}


def _speech(cfg: SequenceConfig, pattern: Pattern) -> tuple[list[list[Data]], int, dict]:
    from ..convert import audio_to_graph
    from ..datasets import load_fsdd

    train, test = load_fsdd("train", progress=cfg.run.progress), load_fsdd("test", progress=cfg.run.progress)
    tr, va = _carve(len(train.labels), cfg)
    mel = {**MEL, "hop_length": cfg.hop}

    def convert(split, idx: Iterable[int]) -> list[Data]:
        return [_slim(audio_to_graph(split.waveforms[i], split.sample_rate, pattern, y=int(split.labels[i]), **mel))
                for i in tqdm(list(idx), desc="log-mel", leave=False, disable=not cfg.run.progress)]

    splits = [convert(train, tr), convert(train, va), convert(test, range(len(test.labels)))]
    frames = torch.cat([d.x for d in splits[0]])  # (frames, n_mels), training only
    mean, std = frames.mean(0), frames.std(0).clamp(min=1e-5)
    for d in (d for split in splits for d in split):
        d.x = (d.x - mean) / std
    lengths = [d.num_nodes for d in splits[0]]
    return splits, 10, {"in_channels": MEL["n_mels"], "frames_max": max(lengths),
                        "frames_mean": sum(lengths) / len(lengths), **mel}


def _image(cfg: SequenceConfig, pattern: Pattern) -> tuple[list[list[Data]], int, dict]:
    from ..convert import image_to_graph
    from ..datasets import load_mnist

    train, test = load_mnist("train", progress=cfg.run.progress), load_mnist("test", progress=cfg.run.progress)
    tr, va = _carve(len(train.labels), cfg)

    def convert(split, idx: Iterable[int]) -> list[Data]:
        images = (split.images.float() / 255 - MNIST_MEAN) / MNIST_STD
        return [_slim(image_to_graph(images[i], PATCH, pattern, y=int(split.labels[i]))) for i in idx]

    splits = [convert(train, tr), convert(train, va), convert(test, range(len(test.labels)))]
    return splits, 10, {"in_channels": PATCH * PATCH, "patch_size": PATCH, "grid": [7, 7], "mnist_source": train.source}


def _augmenter(cfg: SequenceConfig, seed: int) -> Callable | None:
    """What is done to each training batch (a fresh draw every time; seeded by ``seed``):
    text: each word but ``<cls>`` read as ``<unk>`` with probability ``word_dropout`` (with
    subwords its trigrams stay, so the model learns to read unknown words by their spelling);
    image: every image shifted by up to ``shift`` pixels (:func:`~graphattn.convert.shift_images`,
    the background moves in); speech: SpecAugment masks of up to ``freq_mask`` mel channels and
    ``time_mask`` frames per clip (:func:`~graphattn.convert.spec_augment`); ``None``: nothing."""
    from ..convert.audio import spec_augment
    from ..convert.image import image_to_patches, patches_to_images, shift_images

    generator = torch.Generator().manual_seed(seed)
    if cfg.word_dropout:
        def dropped(batch):
            x = batch.x.clone()
            words = x if x.dim() == 1 else x[:, 0]  # a view; with subwords column 0 holds the word
            words[(torch.rand(words.shape, generator=generator) < cfg.word_dropout) & (words != CLS_ID)] = UNK_ID
            batch.x = x
            return batch
        return dropped
    if cfg.shift:
        def shifted(batch):
            images = patches_to_images(batch.x.view(batch.num_graphs, 49, PATCH * PATCH), 7, 7, PATCH)
            images = shift_images(images, cfg.shift, fill=-MNIST_MEAN / MNIST_STD, generator=generator)
            batch.x = torch.cat([image_to_patches(image, PATCH)[0] for image in images])
            return batch
        return shifted
    if cfg.freq_mask or cfg.time_mask:
        def masked(batch):
            batch.x = spec_augment(batch.x, batch.batch, batch.pos, cfg.freq_mask, cfg.time_mask, generator)
            return batch
        return masked
    return None


def _sequence(x: torch.Tensor, y: int) -> Data:
    # What sequence_to_graph gives less its edges (_slim), without laying the pattern first:
    # Full() on 784 pixels is 615k edges an image.
    return Data(x=x, pos=torch.arange(x.size(0)), y=torch.tensor([y]), num_nodes=x.size(0))


def _pixels(cfg: SequenceConfig, pattern: Pattern) -> tuple[list[list[Data]], int, dict]:
    from ..datasets import load_mnist

    train, test = load_mnist("train", progress=cfg.run.progress), load_mnist("test", progress=cfg.run.progress)
    tr, va = _carve(len(train.labels), cfg)

    def convert(split, idx: Iterable[int]) -> list[Data]:
        pixels = ((split.images.float() / 255 - MNIST_MEAN) / MNIST_STD).flatten(1)[:, :, None]  # (N, 784, 1), raster order
        return [_sequence(pixels[i], int(split.labels[i])) for i in idx]

    splits = [convert(train, tr), convert(train, va), convert(test, range(len(test.labels)))]
    return splits, 10, {"in_channels": 1, "sequence_length": 784, "mnist_source": train.source}


def _listops(cfg: SequenceConfig, pattern: Pattern) -> tuple[list[list[Data]], int, dict]:
    from ..datasets.listops import VOCABULARY, load_listops

    splits = load_listops(cfg.max_length, (cfg.train_limit, 2000, 2000))  # the data seed is fixed: one task
    splits = [[_sequence(ids, y) for ids, y in split] for split in splits]
    lengths = [d.num_nodes for d in splits[0]]
    return splits, 10, {"in_channels": len(VOCABULARY), "vocabulary": len(VOCABULARY), "max_length": cfg.max_length,
                        "tokens_max": max(lengths), "tokens_mean": sum(lengths) / len(lengths)}


_LOADERS: dict[str, Callable] = {"text": _text, "speech": _speech, "image": _image, "listops": _listops,
                                 "pixels": _pixels}


# ----------------------------------------------------------------------------- model and loop

def _model(cfg: SequenceConfig, pattern: Pattern, in_channels: int, num_classes: int) -> GraphTransformer:
    m = cfg.model
    return GraphTransformer(
        in_channels, m.hidden, num_classes, num_layers=m.layers, heads=m.heads, pattern=pattern,
        pooling=cfg.pooling, dropout=m.dropout, embedding=cfg.task in ("text", "listops"),
        feature_encoding=SinusoidalEncoding(m.hidden) if cfg.position == "sinusoidal" else None,
        position=RotaryEncoding(m.hidden // m.heads) if cfg.position == "rope" else None,
    )


def _forward(model: GraphTransformer, batch, pattern: Pattern, rope: bool) -> torch.Tensor:
    # score-side positions cannot be laid on the model's virtual nodes: those use sequence positions
    pos = None if rope and pattern.extra_nodes else batch.pos
    return model(batch.x, pattern, batch=batch.batch, pos=pos)


def keys_per_query(pattern: Pattern, lengths: Iterable[int]) -> float:
    """Edges over nodes of ``pattern`` laid on sequences of these ``lengths``: the mean number of
    keys a query attends to (self included), whatever the kernel."""
    lengths = list(lengths)
    edges = {n: pattern.edge_index(n).size(1) for n in set(lengths)}
    return sum(edges[n] for n in lengths) / max(sum(lengths), 1)


def _mean_probability(log_probs: list[torch.Tensor], split: list[Data]) -> tuple[float, float]:
    """(accuracy, cross-entropy) of the mean of the models' probabilities over ``split``."""
    mean = torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))  # log (1/K sum_k p_k)
    y = torch.cat([d.y for d in split]).to(mean.device)
    return int((mean.argmax(-1) == y).sum()) / max(y.numel(), 1), float(F.nll_loss(mean, y))


def run(cfg: SequenceConfig) -> dict:
    """Train and test one model, or ``cfg.ensemble`` of them; returns the metrics (also written
    to ``cfg.run.out``). ``test_acc`` / ``best_val_acc`` score what classifies (the ensemble's
    mean probabilities); ``members`` holds each model's own; ``history`` is the first model's."""
    if not isinstance(cfg, SequenceConfig):
        raise TypeError(f"cfg must be a SequenceConfig, got {type(cfg).__name__}")
    seed = cfg.split.seed
    set_seed(seed)
    pattern = cfg.parsed_pattern()
    device = torch.device(cfg.run.device)
    tic = time.perf_counter()
    (train, val, test), num_classes, info = _LOADERS[cfg.task](cfg, pattern)
    data_s = time.perf_counter() - tic
    rope = cfg.position == "rope"

    def forward(m: torch.nn.Module, batch) -> torch.Tensor:
        return _forward(m, batch.to(device), pattern, rope)

    val_loader, test_loader = DataLoader(val, batch_size=EVAL_BATCH), DataLoader(test, batch_size=EVAL_BATCH)
    reset_peak_memory(device)
    members, histories, val_lp, test_lp = [], [], [], []
    for member_seed in range(seed, seed + cfg.ensemble):
        set_seed(member_seed)
        model = _model(cfg, pattern, info["in_channels"], num_classes).to(device)
        history = fit_minibatches(model, forward, train, val, cfg.training, seed=member_seed,
                                  progress=cfg.run.progress, augment=_augmenter(cfg, member_seed))
        val_lp.append(log_probabilities(model, val_loader, forward))
        test_lp.append(log_probabilities(model, test_loader, forward))
        histories.append(history)
        members.append({"seed": member_seed, "test_acc": _mean_probability(test_lp[-1:], test)[0],
                        "best_val_acc": history.best_metrics.get("val_acc"), "best_epoch": history.best_epoch,
                        "epochs_run": history.epochs_run, "time_per_epoch_s": history.mean_epoch_time_s})
    test_acc, test_loss = _mean_probability(test_lp, test)
    first = histories[0]
    rows = [{"epoch": r.epoch, "loss": r.loss, **r.metrics} for r in first.rows]
    epochs = sum(h.epochs_run for h in histories)
    member_acc = [m["test_acc"] for m in members]
    metrics = {
        "task": cfg.task, "dataset": SEQUENCE_TASKS[cfg.task].dataset, "pattern": repr(pattern), "pooling": cfg.pooling,
        "position": cfg.position, "test_acc": test_acc, "test_loss": test_loss,
        "best_val_acc": _mean_probability(val_lp, val)[0], "best_epoch": first.best_epoch,
        "epochs_run": first.epochs_run, "stopped_early": first.stopped_early,
        "time_per_epoch_s": sum(h.mean_epoch_time_s * h.epochs_run for h in histories) / max(epochs, 1),
        "data_prep_s": data_s, "peak_memory_mb": peak_memory_mb(device), "device": str(device),
        "keys_per_query": keys_per_query(pattern, (d.num_nodes for d in test[:KEY_SAMPLE])),
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
