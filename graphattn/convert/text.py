"""Text to attention graphs: a word-level tokenizer and ``text_to_graph``.

Each token is a node; ``x`` holds the token ids (``[L]``, long) for an embedding layer and
``pos`` the positions ``0 .. L-1``. With ``add_cls=True`` a ``<cls>`` token is node 0, so a
pattern such as ``Window(2) | Global((0,))`` lets it see the whole text (and the whole text
see it); pool the sequence by reading node 0.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..patterns import Pattern
from .sequence import build_data, check_pattern

__all__ = ["Tokenizer", "text_to_graph"]

TOKEN_RE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
"""A word (letters, digits, underscore, inner apostrophes as in "don't"), or one punctuation mark."""

_NO_SPACE_BEFORE = set(".,!?;:%)]}")
_NO_SPACE_AFTER = set("([{$")


class Tokenizer:
    """A word-level tokenizer with a vocabulary learnt from texts.

    Text is lowercased and split by :data:`TOKEN_RE` into words and single punctuation
    marks. ``fit`` keeps the words seen at least ``min_freq`` times, the most frequent first
    (ties alphabetical), up to ``max_size`` entries in all. Specials come first: ``<pad>`` = 0,
    ``<unk>`` = 1 and, with ``cls=True``, ``<cls>`` = 2. Unknown words encode as ``<unk>``.

    Args:
        min_freq: the smallest count a word needs to enter the vocabulary (default 1).
        max_size: the largest vocabulary, specials included (default ``None``: no limit).
        cls: whether the vocabulary has a ``<cls>`` token (default ``False``).
    """

    PAD, UNK, CLS = "<pad>", "<unk>", "<cls>"

    def __init__(self, min_freq: int = 1, max_size: int | None = None, cls: bool = False):
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
        if not isinstance(cls, bool):
            raise TypeError(f"cls must be a bool, got {type(cls).__name__}")
        specials = [self.PAD, self.UNK] + ([self.CLS] if cls else [])
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                     or max_size < len(specials)):
            raise ValueError(f"max_size must be None or an int >= {len(specials)} (the specials), got {max_size!r}")
        self.min_freq, self.max_size, self.cls = min_freq, max_size, cls
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

    def encode(self, text: str, add_cls: bool = False) -> Tensor:
        """Token ids ``[L]`` (long); with ``add_cls`` the ``<cls>`` id comes first."""
        if not self.fitted:
            raise ValueError("Tokenizer is not fitted; call fit(texts) or load from_state_dict(...) first")
        ids = [self.stoi.get(t, self.unk_id) for t in self.tokenize(text)]
        if add_cls:
            ids.insert(0, self.cls_id)
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: Tensor | Iterable[int]) -> str:
        """Tokens joined by spaces, without ``<pad>`` and ``<cls>``, and with no space before
        closing punctuation (``. , ! ? ; : % ) ] }``) or after opening brackets (``( [ { $``).

        For ordinary sentences ``decode(encode(s))`` is ``s`` lowercased (with single spaces).
        """
        if isinstance(ids, Tensor):
            if ids.dim() != 1 or ids.dtype.is_floating_point:
                raise ValueError(f"ids must be a 1-D integer tensor, got dtype {ids.dtype} shape {list(ids.shape)}")
            ids = ids.tolist()
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
        return {"min_freq": self.min_freq, "max_size": self.max_size, "cls": self.cls,
                "fitted": self.fitted, "itos": list(self.itos)}

    @classmethod
    def from_state_dict(cls, state: dict) -> Tokenizer:
        """The tokenizer that ``state_dict()`` described."""
        if not isinstance(state, dict) or not {"min_freq", "max_size", "cls", "itos"} <= state.keys():
            raise ValueError("state must be a dict from Tokenizer.state_dict() with min_freq, max_size, cls, itos")
        tok = cls(state["min_freq"], state["max_size"], state["cls"])
        itos = list(state["itos"])
        if itos[: len(tok.itos)] != tok.itos or len(set(itos)) != len(itos):
            raise ValueError(f"state['itos'] must start with the specials {tok.itos} and hold no duplicates")
        tok.itos, tok.stoi = itos, {t: i for i, t in enumerate(itos)}
        tok.fitted = bool(state.get("fitted", True))
        return tok

    def __repr__(self) -> str:
        return f"Tokenizer(size={len(self)}, min_freq={self.min_freq}, max_size={self.max_size}, cls={self.cls})"


def text_to_graph(text: str | Tensor, tokenizer: Tokenizer | None, pattern: Pattern, y: object = None,
                  add_cls: bool = False) -> Data:
    """A text as an attention graph over its tokens.

    Args:
        text: a string (encoded with ``tokenizer``) or token ids ``[L]`` already encoded.
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
    if isinstance(text, str):
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a Tokenizer to encode a str, got {type(tokenizer).__name__}")
        ids = tokenizer.encode(text)
    elif isinstance(text, Tensor):
        if text.dim() != 1 or text.dtype.is_floating_point or text.dtype == torch.bool:
            raise ValueError(f"text given as ids must be a 1-D integer tensor, got {text.dtype} {list(text.shape)}")
        ids = text.long()
    else:
        raise TypeError(f"text must be a str or a 1-D tensor of token ids, got {type(text).__name__}")
    if ids.numel() == 0:
        raise ValueError(f"text has no tokens (nothing to attend over): {text!r}")
    if add_cls:
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must be a Tokenizer with cls=True for add_cls, got {type(tokenizer).__name__}")
        ids = torch.cat([ids.new_tensor([tokenizer.cls_id]), ids])
    return build_data(ids, pattern, pos=torch.arange(ids.numel()), y=y)
