"""The data of each sequence task (:data:`LOADERS`) and what is done to its training batches
(:func:`_augmenter`): examples become ``Data`` through :mod:`graphattn.convert`, split into
training, validation (carved from the training split, seeded) and test parts.

* ``text``: TREC questions; words are nodes, a ``<cls>`` token is node 0; words carry their
  hashed character trigrams (``subwords``); the tokenizer is fitted on the training part only.
* ``speech``: FSDD spoken digits (official split); log-mel frames (``hop`` samples apart) are
  nodes, standardised with the training part's mean and deviation.
* ``image``: MNIST digits; 4 x 4 patches of the 28 x 28 image are nodes (a 7 x 7 grid of 49).
* ``listops``: ListOps expressions from :mod:`graphattn.datasets.listops` (LRA's generator);
  the splits are LRA's own (validation 2,000, test 2,000, training ``limit``), not carved.
* ``pixels``: MNIST digits as sequences of 784 pixels in raster order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch_geometric.data import Data
from tqdm.auto import tqdm

from ..patterns import Pattern
from .options import resolved
from .sequence_config import SequenceConfig
from .splits import carve

__all__ = ["LOADERS", "PATCH", "MNIST_MEAN", "MNIST_STD"]

PATCH = 4  # MNIST: 28 x 28 -> a 7 x 7 grid of 4 x 4 patches
UNK_ID, CLS_ID = 1, 2  # the Tokenizer's <unk> and <cls> ids
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the usual normalisation of MNIST pixels in [0, 1]
MEL = {"n_fft": 256, "n_mels": 40}  # FSDD is 8 kHz: 32 ms windows; the hop is cfg.hop (80: 10 ms)


def _carve(n: int, cfg: SequenceConfig) -> tuple[list[int], list[int]]:
    """Deterministic (train, val) indices into a training split of ``n`` examples (:func:`~.splits.carve`)."""
    return carve(n, cfg.split.seed, cfg.split.val_fraction, cfg.train_limit)


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
    tokenizer = Tokenizer(min_freq=2, cls=True, subwords=resolved(cfg.subwords, "subwords"))
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

    train_limit = cfg.train_limit
    assert train_limit is not None  # ListOps always has one (LISTOPS_TRAIN when limit is unset)
    encoded = load_listops(cfg.max_length, (train_limit, 2000, 2000))  # the data seed is fixed: one task
    splits = [[_sequence(ids, y) for ids, y in split] for split in encoded]
    lengths = [d.num_nodes for d in splits[0]]
    return splits, 10, {"in_channels": len(VOCABULARY), "vocabulary": len(VOCABULARY), "max_length": cfg.max_length,
                        "tokens_max": max(lengths), "tokens_mean": sum(lengths) / len(lengths)}


#: task -> its loader ``(cfg, pattern) -> ([train, val, test], num_classes, info)``.
LOADERS: dict[str, Callable] = {"text": _text, "speech": _speech, "image": _image, "listops": _listops,
                                "pixels": _pixels}
