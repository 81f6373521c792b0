"""The sequence tasks' own options: subword trigrams and word dropout (text), image shifts,
SpecAugment (speech), the learning-rate schedule, label smoothing, and their checks."""

import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from graphattn.convert import Tokenizer, image_to_graph, text_to_graph
from graphattn.convert.audio import spec_augment
from graphattn.convert.image import image_to_patches, patches_to_images, shift_images
from graphattn.convert.text import SUBWORD_SLOTS
from graphattn.experiments.harness import lr_factor
from graphattn.experiments.sequence_config import SequenceConfig
from graphattn.experiments.sequence_data import _augmenter
from graphattn.models import GraphTransformer
from graphattn.patterns import Full

pytestmark = pytest.mark.usefixtures("one_thread")


def test_patches_to_images_inverts_image_to_patches():
    images = torch.randn(3, 2, 8, 12)
    feats = torch.stack([image_to_patches(im, 4)[0] for im in images])  # (3, 6, 32)
    assert torch.equal(patches_to_images(feats, 2, 3, 4), images)
    with pytest.raises(ValueError, match="feats must have shape"):
        patches_to_images(feats, 3, 3, 4)


def test_shift_images_moves_each_image_and_fills_the_background():
    images = torch.zeros(64, 1, 9, 9)
    images[:, 0, 4, 4] = 1.0  # one bright pixel in the centre
    out = shift_images(images, 2, fill=-0.5, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and not torch.equal(out, images)
    where = (out == 1.0).nonzero()[:, 2:]  # (64, 2): the pixel's new (row, col), one per image
    assert where.size(0) == 64 and ((where - 4).abs() <= 2).all() and len({tuple(w) for w in where.tolist()}) > 5
    assert set(out.unique().tolist()) <= {-0.5, 0.0, 1.0}  # only what was there, or the fill
    assert shift_images(images, 0) is images
    with pytest.raises(ValueError, match="max_shift must be an int >= 0"):
        shift_images(images, -1)
    with pytest.raises(TypeError, match="max_shift must be an int"):
        shift_images(images, 1.5)


def test_spec_augment_masks_one_band_and_one_span_per_clip():
    lengths = [30, 50]
    x = torch.randn(sum(lengths), 40) + 10.0  # no zeros before masking
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor(lengths))
    pos = torch.cat([torch.arange(n) for n in lengths])
    out = spec_augment(x, batch, pos, 8, 10, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and x.min() > 0  # the input is left as it was
    for b in range(len(lengths)):
        zero = out[batch == b] == 0  # (n, 40)
        full_rows = zero.all(1)  # masked frames: every channel
        cols = zero[~full_rows].all(0) if (~full_rows).any() else torch.zeros(40, dtype=torch.bool)
        assert int(full_rows.sum()) <= 10 and int(cols.sum()) <= 8
        for mask in (full_rows, cols):  # each mask is one contiguous run
            idx = mask.nonzero().flatten()
            assert idx.numel() == 0 or idx[-1] - idx[0] + 1 == idx.numel()
        assert (zero == (full_rows[:, None] | cols[None, :])).all()  # nothing else is zeroed
    assert (out == 0).any()
    assert spec_augment(x, batch, pos, 0, 0) is x


def test_lr_factor_warms_up_then_follows_the_schedule():
    assert [lr_factor(t, 4, 20, "cosine") for t in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 4, 20, "cosine") == 1.0 and lr_factor(12, 4, 20, "cosine") == pytest.approx(0.5)
    assert lr_factor(19, 4, 20, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 16)))
    assert lr_factor(19, 4, 20, "constant") == 1.0 and lr_factor(0, 0, 20, "cosine") == 1.0
    assert lr_factor(9, 20, 10, "cosine") == 0.5  # a warmup longer than the run: still rising at the end


def test_augmentation_options_resolve_per_task_and_are_checked():
    image, speech, text = (SequenceConfig.from_options(task=t) for t in ("image", "speech", "text"))
    assert (image.subwords, image.word_dropout, text.subwords, text.word_dropout) == (0, 0, 4096, 0.1)
    assert (image.shift, image.freq_mask, image.time_mask) == (2, 0, 0)
    assert (speech.shift, speech.freq_mask, speech.time_mask) == (0, 8, 10)
    assert (text.shift, text.freq_mask, text.time_mask) == (0, 0, 0)
    assert SequenceConfig.from_options(task="image", shift=0).shift == 0
    with pytest.raises(ValueError, match="shift=2 applies to task='image' only"):
        SequenceConfig.from_options(task="text", shift=2)
    with pytest.raises(ValueError, match="time_mask must be an int >= 0"):
        SequenceConfig.from_options(task="speech", time_mask=-1)
    with pytest.raises(TypeError, match="freq_mask must be an int"):
        SequenceConfig.from_options(task="speech", freq_mask="8")


@pytest.mark.parametrize("options, error, match", [
    ({"schedule": "linear"}, ValueError, "schedule must be one of"),
    ({"warmup": -1}, ValueError, "warmup must be an int >= 0"),
    ({"label_smoothing": 1.0}, ValueError, "label_smoothing must be a float >= 0 and < 1"),
    ({"label_smoothing": "0.1"}, TypeError, "label_smoothing must be a float"),
])
def test_schedule_options_are_checked(options, error, match):
    with pytest.raises(error, match=match):
        SequenceConfig.from_options(task="text", **options)


def test_image_and_speech_augmenters_change_the_inputs_and_keep_shapes_and_labels():
    images = torch.randn(4, 28, 28)
    batch = Batch.from_data_list([image_to_graph(im, 4, Full(), y=i) for i, im in enumerate(images)])
    x, y = batch.x.clone(), batch.y.clone()
    out = _augmenter(SequenceConfig.from_options(task="image", shift=3), 0)(batch)
    assert out.x.shape == x.shape and torch.equal(out.y, y) and not torch.equal(out.x, x)
    assert _augmenter(SequenceConfig.from_options(task="image", shift=0), 0) is None
    speech = Batch.from_data_list([Data(x=torch.randn(20, 40) + 5, pos=torch.arange(20), y=torch.tensor([1]))] * 2)
    masked = _augmenter(SequenceConfig.from_options(task="speech"), 0)(speech.clone())
    assert masked.x.shape == speech.x.shape and (masked.x == 0).any()


def test_subword_trigrams_tell_unknown_words_apart_by_their_spelling():
    tok = Tokenizer(cls=True, subwords=50).fit(["what is a cat ?", "who is it"])
    ids = tok.encode("What is a dogs?", add_cls=True)
    assert ids.shape == (6, 1 + SUBWORD_SLOTS) and tok.num_embeddings == len(tok) + 50
    assert ids[0].tolist() == [tok.cls_id] + [0] * SUBWORD_SLOTS  # specials have no trigrams
    assert ids[4, 0] == tok.unk_id and (ids[4, 1:] > 0).sum() == len("dogs")  # <do dog ogs gs>
    assert ((ids[:, 1:] == 0) | (ids[:, 1:] >= len(tok))).all() and (ids < tok.num_embeddings).all()
    assert torch.equal(ids[2, 1:], tok.encode("is")[0, 1:])  # the same word hashes the same
    assert tok.decode(ids) == "what is a <unk>?"
    assert torch.equal(Tokenizer.from_state_dict(tok.state_dict()).encode("dogs"), tok.encode("dogs"))
    data = text_to_graph("a dog", tok, Full(), add_cls=True)
    assert data.x.shape == (3, 1 + SUBWORD_SLOTS) and data.pos.tolist() == [0, 1, 2] and data.num_nodes == 3
    assert Tokenizer(cls=True).fit(["a b"]).encode("a b", add_cls=True).shape == (3,)  # no subwords: ids [L]
    with pytest.raises(ValueError, match="subwords must be an int >= 0"):
        Tokenizer(subwords=-1)
    with pytest.raises(TypeError, match="subwords must be an int"):
        Tokenizer(subwords=True)


def test_a_model_averages_the_embeddings_of_a_rows_ids():
    model = GraphTransformer(10, 8, 2, num_layers=1, heads=2, pattern=Full(), embedding=True)
    ids = torch.tensor([[3, 5, 0], [4, 0, 0]])
    table = model.lin_in.weight
    assert torch.allclose(model._embed(ids), torch.stack([(table[3] + table[5]) / 2, table[4]]))
    assert model(ids).shape == (2, 2)


def test_word_dropout_reads_words_as_unk_but_keeps_cls_and_trigrams():
    tok = Tokenizer(cls=True, subwords=50).fit(["what is a cat ?"] * 2)
    batch = Batch.from_data_list([text_to_graph("what is a cat ?", tok, Full(), add_cls=True, y=1)] * 40)
    x = batch.x.clone()
    out = _augmenter(SequenceConfig.from_options(task="text", word_dropout=0.5), 0)(batch)
    changed = out.x[:, 0] != x[:, 0]
    assert out.x.shape == x.shape and torch.equal(out.x[:, 1:], x[:, 1:]) and torch.equal(out.y, batch.y)
    assert (out.x[changed, 0] == tok.unk_id).all() and 0.3 < changed.float().mean() < 0.5  # 5 of 6 tokens eligible
    assert (out.x[x[:, 0] == tok.cls_id, 0] == tok.cls_id).all()
    assert _augmenter(SequenceConfig.from_options(task="text", word_dropout=0.0), 0) is None
    with pytest.raises(ValueError, match="word_dropout must be in"):
        SequenceConfig.from_options(task="text", word_dropout=1.0)
    with pytest.raises(ValueError, match="subwords=10 applies to task='text' only"):
        SequenceConfig.from_options(task="image", subwords=10)


def test_max_pooling_takes_each_features_largest_value_per_sequence():
    model = GraphTransformer(4, 8, 3, num_layers=1, heads=2, pattern=Full(), pooling="max")
    h = torch.arange(10.0).view(5, 2)
    assert torch.equal(model._pool(h, torch.tensor([0, 0, 1, 1, 1]), torch.tensor([2, 3])), h[[1, 4]])
    assert model(torch.randn(5, 4), batch=torch.tensor([0, 0, 1, 1, 1])).shape == (2, 3)
    assert SequenceConfig.from_options(task="speech", pooling="max").pooling == "max"
