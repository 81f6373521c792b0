"""ListOps (Nangia & Bowman, 2018) as the Long Range Arena generates it (Tay et al., 2021).

An example is a nested list of operations on single digits, written in prefix form; the label
is its value, a digit (10 classes)::

    [MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 2 ] ]   ->   5

The generator follows LRA's ``lra_benchmarks/data/listops.py``: operators ``MAX``, ``MIN``,
``MED`` (the median, rounded down) and ``SM`` (sum modulo 10); each node is an operator with
probability 1/4 (:data:`OPERATOR_P`) and a digit otherwise, nodes at ``max_depth`` (10) are
digits, an operator takes 2 to ``max_args`` (10) arguments, and a tree is kept when its token
count lies strictly between ``min_length`` and ``max_length`` (LRA: 500 and 2000) and it has
not been drawn before. A token is an operator, a digit or the closing ``]`` (LRA's tuple
brackets are dropped by its input pipeline; here they are never written). LRA holds
96,000 / 2,000 / 2,000 examples.

Everything is seeded: :func:`listops_splits` draws one stream of unique trees from
``random.Random(seed)`` and deals it out test first, then validation, then training, so the
test set does not depend on how many training examples are asked for.

    train, val, test = listops_splits(max_length=2000, sizes=(96000, 2000, 2000))
    tokens, label = test[0]

Drawing is pure Python (about 2 ms per kept example at ``max_length=128``, 4 ms at 512 on one
core); :func:`load_listops` caches the encoded splits under the data root
(``<root>/listops/``), written atomically.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch

from ..checks import check_int
from .cache import cached
from .roots import data_root

__all__ = ["OPERATORS", "VOCABULARY", "OPERATOR_P", "generate_listops", "listops_splits", "evaluate_listops",
           "encode_listops", "load_listops", "LRA_SIZES", "GENERATOR_VERSION"]

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
DIGITS = tuple(str(d) for d in range(10))
#: Token ids: 0 is padding (never produced), then the digits, the operators and ``]``.
VOCABULARY = ("<pad>", *DIGITS, *OPERATORS, END)
OPERATOR_P = 0.25  # LRA's VALUE_P: a node is a digit when random() > 0.25
LRA_SIZES = (96_000, 2_000, 2_000)
#: Bump when the generator changes what it draws: cached splits are then generated again.
GENERATOR_VERSION = 1

_IDS = {token: i for i, token in enumerate(VOCABULARY)}


class _TooLong(Exception):
    pass


def _tree(rng: random.Random, depth: int, max_depth: int, max_args: int, out: list[str], limit: int) -> None:
    """Append the tokens of one random (sub)tree to ``out``; raises ``_TooLong`` as soon as ``out``
    outgrows ``limit`` (such a tree would be rejected anyway, and each tree is drawn independently,
    so stopping early leaves the distribution of kept trees unchanged)."""
    if depth >= max_depth or rng.random() > OPERATOR_P:
        out.append(DIGITS[int(rng.random() * 10)])
        return
    arity = 2 + int(rng.random() * (max_args - 1))  # uniform in 2 .. max_args
    head = len(out)
    out.append("")  # the operator, drawn after its arguments as LRA draws it
    for _ in range(arity):
        _tree(rng, depth + 1, max_depth, max_args, out, limit)
        if len(out) >= limit:
            raise _TooLong
    out[head] = OPERATORS[int(rng.random() * len(OPERATORS))]
    out.append(END)


def evaluate_listops(tokens: Sequence[str]) -> int:
    """The value of a ListOps expression (a stack machine over the tokens, independent of the generator)."""
    stack: list[list] = [[]]
    for token in tokens:
        if token in OPERATORS:
            stack.append([token])
        elif token == END:
            operator, *args = stack.pop()
            if operator == "[MIN":
                value = min(args)
            elif operator == "[MAX":
                value = max(args)
            elif operator == "[MED":
                ordered, mid = sorted(args), len(args) // 2
                value = ordered[mid] if len(args) % 2 else (ordered[mid - 1] + ordered[mid]) // 2  # int(np.median)
            else:
                value = sum(args) % 10
            stack[-1].append(value)
        elif token in DIGITS:
            stack[-1].append(int(token))
        else:
            raise ValueError(f"tokens: unknown ListOps token {token!r}")
    if len(stack) != 1 or len(stack[0]) != 1:
        raise ValueError("tokens: not one complete ListOps expression")
    return stack[0][0]


def generate_listops(num: int, *, min_length: int, max_length: int, max_depth: int = 10, max_args: int = 10,
                     seed: int = 0, rng: random.Random | None = None, seen: set | None = None) -> list[tuple[list[str], int]]:
    """``num`` unique ``(tokens, value)`` examples with ``min_length < len(tokens) < max_length``
    (LRA's bounds are exclusive). ``rng`` and ``seen`` continue a stream (default: a new one from ``seed``)."""
    check_int(num, "num", 0)
    check_int(max_length, "max_length", 3)
    check_int(min_length, "min_length", 0)
    check_int(max_depth, "max_depth")
    check_int(max_args, "max_args", 2)
    if min_length >= max_length - 1:
        raise ValueError(f"min_length must be below max_length - 1, got {min_length} and {max_length}")
    rng = random.Random(seed) if rng is None else rng
    seen = set() if seen is None else seen
    out: list[tuple[list[str], int]] = []
    while len(out) < num:
        tokens: list[str] = []
        try:
            _tree(rng, 1, max_depth, max_args, tokens, max_length - 1)
        except _TooLong:
            continue
        key = " ".join(tokens)
        if len(tokens) > min_length and key not in seen:
            seen.add(key)
            out.append((tokens, evaluate_listops(tokens)))
    return out


def listops_splits(max_length: int = 2000, sizes: Sequence[int] = LRA_SIZES, *, min_length: int | None = None,
                   seed: int = 0) -> tuple[list, list, list]:
    """(train, val, test) lists of ``(tokens, value)``; ``sizes`` are (train, val, test) counts;
    ``min_length`` defaults to ``max_length // 4`` (LRA: 500 for 2000). The test examples are
    drawn first, then validation, then training, from one seeded stream of unique trees."""
    if len(sizes) != 3:
        raise ValueError(f"sizes must be (train, val, test) counts, got {sizes!r}")
    min_length = max_length // 4 if min_length is None else min_length
    rng, seen = random.Random(seed), set()
    test, val, train = (generate_listops(n, min_length=min_length, max_length=max_length, rng=rng, seen=seen)
                        for n in (sizes[2], sizes[1], sizes[0]))
    return train, val, test


def encode_listops(tokens: Sequence[str]) -> torch.Tensor:
    """Token ids ``(L)`` in :data:`VOCABULARY`."""
    try:
        return torch.tensor([_IDS[t] for t in tokens], dtype=torch.long)
    except KeyError as e:
        raise ValueError(f"tokens: unknown ListOps token {e.args[0]!r}") from None


def load_listops(max_length: int = 2000, sizes: Sequence[int] = LRA_SIZES, *, seed: int = 0,
                 root: str | Path | None = None) -> tuple[list, list, list]:
    """:func:`listops_splits` encoded: three lists of ``(ids (L) long, value)``, cached in
    ``<data root>/listops/`` (one file per ``max_length``, ``sizes`` and ``seed``).

    The cache records what it was made from (:data:`GENERATOR_VERSION`, ``max_length``,
    ``min_length``, ``sizes``, ``seed``) and a sha256 (:mod:`.cache`): a truncated, changed or
    foreign file, or one made for other settings, is named in a warning and generated again.
    """
    sizes = tuple(sizes)
    path = data_root(root) / "listops" / f"listops-L{max_length}-{'-'.join(map(str, sizes))}-seed{seed}.pt"
    key = {"generator": GENERATOR_VERSION, "max_length": max_length, "min_length": max_length // 4,
           "sizes": list(sizes), "seed": seed}

    def build() -> dict:
        splits = listops_splits(max_length, sizes, seed=seed)
        saved = {}
        for name, split in zip(("train", "val", "test"), splits):
            saved[f"{name}_ids"] = [encode_listops(tokens) for tokens, _ in split]
            saved[f"{name}_y"] = torch.tensor([y for _, y in split], dtype=torch.long)
        return saved

    saved = cached(path, key, build, "ListOps cache")
    return tuple([(ids, int(y)) for ids, y in zip(saved[f"{s}_ids"], saved[f"{s}_y"].tolist())]
                 for s in ("train", "val", "test"))
