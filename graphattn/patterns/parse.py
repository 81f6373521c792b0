"""Read a pattern from text, safely: ``parse_pattern("Window(2) | Global([0])")``.

The text is parsed with :mod:`ast`, never evaluated. Allowed: calls of the names in
:data:`PATTERNS` with literal arguments (ints, floats, strings, ``None``, booleans, and
lists / tuples of them), ``|`` (union), ``&`` (intersection) and parentheses. Every
pattern's ``repr`` is valid input, so ``parse_pattern(repr(p)) == p`` for the patterns
listed here (``GraphEdges`` holds a tensor and cannot be written as text).
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable
from types import MappingProxyType

from .base import Pattern
from .graph import Expander, SelfLoops, VirtualNodes
from .grid import Grid2D
from .presets import bigbird, longformer
from .routed import LSH, KMeans, TopK
from .sequence import Causal, Full, Global, Random, Stride, Window

__all__ = ["parse_pattern", "PATTERNS", "PATTERN_NAMES"]

MAX_TEXT = 10_000

PATTERNS: MappingProxyType[str, Callable[..., Pattern]] = MappingProxyType({
    "Full": Full,
    "Window": Window,
    "Causal": Causal,
    "Stride": Stride,
    "Global": Global,
    "Random": Random,
    "Grid2D": Grid2D,
    "SelfLoops": SelfLoops,
    "VirtualNodes": VirtualNodes,
    "Expander": Expander,
    "longformer": longformer,
    "bigbird": bigbird,
    "LSH": LSH,
    "KMeans": KMeans,
    "TopK": TopK,
})
"""The names ``parse_pattern`` knows, each mapped to its class or preset function."""

PATTERN_NAMES: tuple[str, ...] = tuple(PATTERNS)

_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.BitXor: "^", ast.MatMult: "@"}


def parse_pattern(text: str) -> Pattern:
    """Build the pattern that ``text`` describes, e.g. ``"longformer(radius=2, global_tokens=[0])"``.

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: the text is not a pattern expression: a syntax error, an unknown name, a
            non-literal argument, another operator, or arguments the pattern rejects.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str such as 'Window(2) | Global([0])', got {type(text).__name__}")
    if not text.strip():
        raise ValueError("text must describe a pattern such as 'Window(2) | Global([0])', got an empty string")
    if len(text) > MAX_TEXT:
        raise ValueError(f"text must be at most {MAX_TEXT} characters, got {len(text)}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"cannot parse pattern {_shown(text)}: {e.msg} (column {e.offset})") from None
    return _build(tree.body, text)


def _build(node: ast.AST, text: str) -> Pattern:
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitOr, ast.BitAnd)):
        left, right = _build(node.left, text), _build(node.right, text)
        return left | right if isinstance(node.op, ast.BitOr) else left & right
    if isinstance(node, ast.BinOp):
        op = _OPERATORS.get(type(node.op), type(node.op).__name__)
        raise ValueError(f"in pattern {_shown(text)}: operator {op!r} is not allowed; combine patterns with | or &")
    if isinstance(node, ast.Call):
        return _call(node, text)
    if isinstance(node, ast.Name):
        hint = f"; write {node.id}() to call it" if node.id in PATTERNS else _did_you_mean(node.id)
        raise ValueError(f"in pattern {_shown(text)}: a bare name {node.id!r} is not a pattern{hint}")
    what = ast.get_source_segment(text.strip(), node) or type(node).__name__
    raise ValueError(
        f"in pattern {_shown(text)}: {what!r} is not allowed; expected calls such as Window(2) joined by | or &"
    )


def _call(node: ast.Call, text: str) -> Pattern:
    if not isinstance(node.func, ast.Name):
        what = ast.get_source_segment(text.strip(), node.func) or "expression"
        raise ValueError(f"in pattern {_shown(text)}: {what!r} is not a pattern name; known: {', '.join(PATTERN_NAMES)}")
    name = node.func.id
    if name not in PATTERNS:
        raise ValueError(
            f"in pattern {_shown(text)}: unknown pattern {name!r}{_did_you_mean(name)}; known: {', '.join(PATTERN_NAMES)}"
        )
    args = [_literal(a, name, text) for a in node.args]
    kwargs = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise ValueError(f"in pattern {_shown(text)}: ** arguments are not allowed in {name}(...)")
        if kw.arg in kwargs:  # Python's parser keeps the last one: refuse, never pick silently
            raise ValueError(f"in pattern {_shown(text)}: keyword {kw.arg!r} is repeated in {name}(...)")
        kwargs[kw.arg] = _literal(kw.value, name, text)
    try:
        pattern = PATTERNS[name](*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"in pattern {_shown(text)}: bad arguments for {name}: {e}") from None
    return pattern


def _literal(node: ast.AST, name: str, text: str) -> object:
    if isinstance(node, ast.Starred):
        raise ValueError(f"in pattern {_shown(text)}: * arguments are not allowed in {name}(...)")
    try:
        value = ast.literal_eval(node)
    except ValueError:
        what = ast.get_source_segment(text.strip(), node) or type(node).__name__
        raise ValueError(
            f"in pattern {_shown(text)}: argument {what!r} of {name} must be a literal (number, string, None, list)"
        ) from None
    if _holds(value, (dict, set, frozenset, bytes, complex)):  # literals no pattern takes: refuse, never reinterpret
        what = ast.get_source_segment(text.strip(), node) or type(value).__name__
        raise ValueError(f"in pattern {_shown(text)}: argument {what!r} of {name} must be a number, string, None, "
                         f"or a list / tuple of them, got a {type(value).__name__}")
    return _freeze(value)


def _holds(value: object, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, kinds):
        return True
    return isinstance(value, (list, tuple)) and any(_holds(v, kinds) for v in value)


def _freeze(value: object) -> object:
    """Lists become tuples, so patterns stay hashable and equal to their ``repr`` twins."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _shown(text: str, limit: int = 120) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters so an error stays one short line."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, PATTERN_NAMES, n=1)
    if not close:
        close = [k for k in PATTERN_NAMES if k.lower() == name.lower()]
    return f" (did you mean {close[0]!r}?)" if close else ""
