"""Text to attention graphs: a word-level tokenizer and ``text_to_graph``.

Each token is a node; ``x`` holds the token ids (``[L]``, long; ``[L, 1 + SUBWORD_SLOTS]`` with
the word's hashed character trigrams, ``Tokenizer(subwords=...)``) for an embedding layer and
``pos`` the positions ``0 .. L-1``. With ``add_cls=True`` a ``<cls>`` token is node 0, so a
pattern such as ``Window(2) | Global((0,))`` lets it see the whole text (and the whole text
see it); pool the sequence by reading node 0.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..checks import MAX_INDEX, check_bool, check_int
from ..patterns import Pattern
from .sequence import build_data, check_pattern

__all__ = ["Tokenizer", "text_to_graph", "SUBWORD_SLOTS"]

TOKEN_RE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
"""A word (letters, digits, underscore, inner apostrophes as in "don't"), or one punctuation mark."""

SUBWORD_SLOTS = 16
"""Character trigrams kept per word with ``subwords`` (a word of ``n`` letters has ``n``: ``<`` and ``>`` mark its ends)."""

_NO_SPACE_BEFORE = set(".,!?;:%)]}")
_NO_SPACE_AFTER = set("([{$")


class Tokenizer:
    """A word-level tokenizer with a vocabulary learnt from texts.

    Text is lowercased and split by :data:`TOKEN_RE` into words and single punctuation
    marks. ``fit`` keeps the words seen at least ``min_freq`` times, the most frequent first
    (ties alphabetical), up to ``max_size`` entries in all. Specials come first: ``<pad>`` = 0,
    ``<unk>`` = 1 and, with ``cls=True``, ``<cls>`` = 2. Unknown words encode as ``<unk>``.

    With ``subwords = S > 0`` each token also carries its character trigrams, fastText-style:
    the trigrams of ``"<" + word + ">"`` (at most :data:`SUBWORD_SLOTS`), each hashed to one of
    ``S`` buckets by CRC-32 (the same on every run and machine) and numbered after the
    vocabulary, ``len(self) + crc32(g) % S``. ``encode`` then gives ``[L, 1 + SUBWORD_SLOTS]``
    ids: the word's id (``<unk>`` for unknown words), then its trigram ids padded with
    ``<pad>`` = 0, so an unknown word is still told apart by its spelling. A model sums the
    embeddings of a row's ids, ``<pad>`` left out (``embedding=True`` in
    :class:`~graphattn.models.AttentionModel`); it needs :attr:`num_embeddings` entries.

    Args:
        min_freq: the smallest count a word needs to enter the vocabulary (default 1).
        max_size: the largest vocabulary, specials included (default ``None``: no limit).
        cls: whether the vocabulary has a ``<cls>`` token (default ``False``).
        subwords: hash buckets of the character trigrams; 0 turns them off (default 0).
    """

    PAD, UNK, CLS = "<pad>", "<unk>", "<cls>"

    def __init__(self, min_freq: int = 1, max_size: int | None = None, cls: bool = False, subwords: int = 0):
        check_int(min_freq, "min_freq", 1, MAX_INDEX)
        check_bool(cls, "cls")
        check_int(subwords, "subwords", 0, MAX_INDEX)  # ids index an embedding of len(vocabulary) + subwords rows
        specials = [self.PAD, self.UNK] + ([self.CLS] if cls else [])
        if max_size is not None:
            check_int(max_size, "max_size", len(specials), MAX_INDEX)
        self.min_freq, self.max_size, self.cls, self.subwords = min_freq, max_size, cls, subwords
        self.itos: list[str] = specials
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(specials)}
        self.fitted = False

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    @property
    def cls_id(self) -> int:
        if not self.cls:
            raise ValueError("this Tokenizer has no <cls> token; build it with Tokenizer(cls=True)")
        return 2

    @staticmethod
    def tokenize(text: str) -> list[str]:
        """Lowercase and split into words and punctuation marks."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return TOKEN_RE.findall(text.lower())

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Learn the vocabulary from ``texts`` (replacing any earlier one); returns ``self``."""
        if isinstance(texts, str):
            raise TypeError("texts must be an iterable of str, got a single str; wrap it in a list")
        counts: Counter[str] = Counter()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
            counts.update(self.tokenize(text))
        specials = self.itos[: 3 if self.cls else 2]
        words = sorted((w for w, c in counts.items() if c >= self.min_freq and w not in specials),
                       key=lambda w: (-counts[w], w))
        if self.max_size is not None:
            words = words[: self.max_size - len(specials)]
        self.itos = specials + words
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.fitted = True
        return self

    @property
    def num_embeddings(self) -> int:
        """Rows an embedding of the ids needs: the vocabulary plus the ``subwords`` buckets."""
        return len(self.itos) + self.subwords

    def trigram_ids(self, token: str) -> list[int]:
        """The hashed ids of ``token``'s character trigrams (empty without ``subwords``), padded
        with 0 to :data:`SUBWORD_SLOTS`; specials have none."""
        if not self.subwords:
            return []
        marked = "" if token in (self.PAD, self.UNK, self.CLS) else f"<{token}>"
        grams = [marked[i:i + 3] for i in range(len(marked) - 2)][:SUBWORD_SLOTS]
        ids = [len(self.itos) + zlib.crc32(g.encode()) % self.subwords for g in grams]
        return ids + [self.pad_id] * (SUBWORD_SLOTS - len(ids))

    def encode(self, text: str, add_cls: bool = False) -> Tensor:
        """Token ids ``[L]`` (long), or ``[L, 1 + SUBWORD_SLOTS]`` with ``subwords`` (the word's
        id, then its trigrams'); with ``add_cls`` the ``<cls>`` token comes first."""
        if not self.fitted:
            raise ValueError("Tokenizer is not fitted; call fit(texts) or load from_state_dict(...) first")
        check_bool(add_cls, "add_cls")
        tokens = self.tokenize(text)
        if add_cls:
            tokens.insert(0, self.itos[self.cls_id])
        rows = [[self.stoi.get(t, self.unk_id), *self.trigram_ids(t)] for t in tokens]
        ids = torch.tensor(rows, dtype=torch.long).view(len(rows), 1 + (SUBWORD_SLOTS if self.subwords else 0))
        return ids if self.subwords else ids[:, 0]

    def decode(self, ids: Tensor | Iterable[int]) -> str:
        """Tokens joined by spaces, without ``<pad>`` and ``<cls>``, and with no space before
        closing punctuation (``. , ! ? ; : % ) ] }``) or after opening brackets (``( [ { $``).

        For ordinary sentences ``decode(encode(s))`` is ``s`` lowercased (with single spaces).
        """
        if isinstance(ids, Tensor):
            if ids.dim() not in (1, 2) or ids.dtype.is_floating_point:
                raise ValueError(f"ids must be a 1-D (or, with subwords, 2-D) integer tensor, got dtype {ids.dtype} "
                                 f"shape {list(ids.shape)}")
            ids = (ids if ids.dim() == 1 else ids[:, 0]).tolist()  # column 0: the words
        out = ""
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.itos):
                raise ValueError(f"ids must be ints in [0, {len(self.itos)}), got {i!r}")
            token = self.itos[i]
            if token in (self.PAD, self.CLS):
                continue
            glue = not out or token in _NO_SPACE_BEFORE or out[-1] in _NO_SPACE_AFTER
            out += token if glue else " " + token
        return out

    def __len__(self) -> int:
        return len(self.itos)

    def state_dict(self) -> dict:
        """A JSON-able description of the tokenizer and its vocabulary."""
        return {"min_freq": self.min_freq, "max_size": self.max_size, "cls": self.cls, "subwords": self.subwords,
                "fitted": self.fitted, "itos": list(self.itos)}

    @classmethod
    def from_state_dict(cls, state: dict) -> Tokenizer:
        """The tokenizer that ``state_dict()`` described."""
        if not isinstance(state, dict) or not {"min_freq", "max_size", "cls", "itos"} <= state.keys():
            raise ValueError("state must be a dict from Tokenizer.state_dict() with min_freq, max_size, cls, itos")
        tok = cls(state["min_freq"], state["max_size"], state["cls"], state.get("subwords", 0))
        itos = list(state["itos"])
        if itos[: len(tok.itos)] != tok.itos or len(set(itos)) != len(itos):
            raise ValueError(f"state['itos'] must start with the specials {tok.itos} and hold no duplicates")
        tok.itos, tok.stoi = itos, {t: i for i, t in enumerate(itos)}
        tok.fitted = bool(state.get("fitted", True))
        return tok

    def __repr__(self) -> str:
        return (f"Tokenizer(size={len(self)}, min_freq={self.min_freq}, max_size={self.max_size}, cls={self.cls}, "
                f"subwords={self.subwords})")


def text_to_graph(text: str | Tensor, tokenizer: Tokenizer | None, pattern: Pattern, y: object = None,
                  add_cls: bool = False) -> Data:
    """A text as an attention graph over its tokens.

    Args:
        text: a string (encoded with ``tokenizer``) or token ids ``[L]`` (with subwords
            ``[L, 1 + SUBWORD_SLOTS]``) already encoded.
        tokenizer: a fitted :class:`Tokenizer`; may be ``None`` when ``text`` is ids and
            ``add_cls`` is False.
        pattern: the attention pattern laid on the tokens.
        y: a label for the text.
        add_cls: put a ``<cls>`` token at node 0 (before the ids, when ids are given).

    Raises:
        ValueError: the text has no tokens (an empty string, only whitespace, or empty ids);
            a text with only ``<cls>`` has no tokens either.
        TypeError: wrong argument types.
    """
    check_pattern(pattern)
    check_bool(add_cls, "add_cls")
    if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"tokenizer must be a Tokenizer or None, got {type(tokenizer).__name__}")
    if isinstance(text, str):
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a Tokenizer to encode a str, got {type(tokenizer).__name__}")
        ids = tokenizer.encode(text)
    elif isinstance(text, Tensor):
        width = 1 + SUBWORD_SLOTS
        shape_ok = text.dim() == 1 or (text.dim() == 2 and text.size(1) == width)
        if not shape_ok or text.dtype.is_floating_point or text.dtype.is_complex or text.dtype == torch.bool:
            raise ValueError(f"text given as ids must be an integer tensor [L] (or, with subwords, [L, {width}]), "
                             f"got {text.dtype} {list(text.shape)}")
        ids = text.long()
        _check_ids(ids, tokenizer)
    else:
        raise TypeError(f"text must be a str or a 1-D tensor of token ids, got {type(text).__name__}")
    if ids.numel() == 0:
        raise ValueError(f"text has no tokens (nothing to attend over): {text!r}")
    if add_cls:
        if tokenizer is None:
            raise TypeError(f"tokenizer must be a Tokenizer with cls=True for add_cls, got {type(tokenizer).__name__}")
        cls = tokenizer.encode("", add_cls=True).to(ids.device)  # [1] or, with subwords, [1, 1 + SUBWORD_SLOTS]
        if cls.dim() != ids.dim():
            raise ValueError(f"ids have {ids.dim()} dimensions but the tokenizer (subwords={tokenizer.subwords}) "
                             f"encodes {cls.dim()}")
        ids = torch.cat([cls, ids])
    return build_data(ids, pattern, pos=torch.arange(ids.size(0)), y=y)


def _check_ids(ids: Tensor, tokenizer: Tokenizer | None) -> None:
    """Token ids must index an embedding: ``>= 0``, and with a ``tokenizer`` below its size
    (words in column 0 below ``len(tokenizer)``, trigram ids below ``num_embeddings``)."""
    if not ids.numel():
        return
    words = ids if ids.dim() == 1 else ids[:, 0]
    if int(ids.min()) < 0:
        raise ValueError(f"text holds token id {int(ids.min())}; ids must be >= 0 (0 is <pad>)")
    if tokenizer is None:
        return
    for what, got, size in (("word", words, len(tokenizer)), ("trigram", ids, tokenizer.num_embeddings)):
        if int(got.max()) >= size:
            raise ValueError(f"text holds {what} id {int(got.max())} but the tokenizer has {size} entries; "
                             f"ids must be in [0, {size})")
