"""What an experiment's attention is, as text: a pattern, or an attention operator along ``Full()``.

The patterns are :func:`graphattn.patterns.parse_pattern`'s text (``"Window(8)"``,
``"LSH(8)"``, ...). The operators (:mod:`graphattn.nn.operator`) compute ``Full()`` another
way and are named by a call of one of :data:`OPERATORS`:

* ``performer(M)``: Performer's FAVOR+ (:func:`graphattn.nn.performer`), ``M`` positive random
  features per head;
* ``linformer(K)``: :class:`graphattn.nn.Linformer`, keys and values of each sequence compressed
  to ``K`` learned summaries.

:func:`parse_attention` reads either (one parser, one error for what is neither);
:class:`OperatorSpec` builds the module when the run knows its longest sequence. Imports no torch.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

__all__ = ["OPERATORS", "OperatorSpec", "parse_operator", "parse_attention", "is_operator"]

#: Operator name -> (what its one argument is, the unit the study reports it in).
OPERATORS = {"performer": ("random features M", "features"), "linformer": ("rank K", "rank")}


@dataclass(frozen=True)
class OperatorSpec:
    """An attention operator by name and size: ``performer(M)`` or ``linformer(K)``."""

    name: str
    size: int

    def __str__(self) -> str:
        return f"{self.name}({self.size})"

    @property
    def unit(self) -> str:
        """What ``size`` counts: ``"features"`` (Performer) or ``"rank"`` (Linformer's summaries per query)."""
        return OPERATORS[self.name][1]

    def build(self, max_length: int):
        """The operator module for sequences of at most ``max_length`` nodes (Linformer's mixing width)."""
        from ..nn import Linformer, performer

        return performer(self.size) if self.name == "performer" else Linformer(self.size, max_length)


def _forms() -> str:
    return ", ".join(f"{name}({arg.split()[-1]}) ({arg})" for name, (arg, _) in OPERATORS.items())


def _called(text: str) -> str | None:
    """The name ``text`` calls (or is), if it is a bare name or a call of one; else ``None``."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id
    return node.id if isinstance(node, ast.Name) else None


def is_operator(text: str) -> bool:
    """Whether ``text`` names an operator (a call of, or a bare name in, :data:`OPERATORS`)."""
    return isinstance(text, str) and _called(text) in OPERATORS


def parse_operator(text: str) -> OperatorSpec:
    """``"performer(64)"`` -> ``OperatorSpec("performer", 64)``; ``size=`` may be named.

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: not a call of an operator name with one positive int.
    """
    if not isinstance(text, str):
        raise TypeError(f"operator must be a string such as 'performer(64)', got {type(text).__name__}")
    name = _called(text)
    if name not in OPERATORS:
        raise ValueError(f"unknown operator {text!r}; known: {_forms()}")
    node = ast.parse(text.strip(), mode="eval").body  # a bare name or a call of one (_called said so)
    call = node if isinstance(node, ast.Call) else None
    args = [] if call is None else [*call.args, *(k.value for k in call.keywords if k.arg == "size")]
    extra = [] if call is None else [k.arg for k in call.keywords if k.arg != "size"]
    value = args[0].value if len(args) == 1 and isinstance(args[0], ast.Constant) else None
    if extra or type(value) is not int or value < 1:
        raise ValueError(f"operator {text!r} must be {name}({OPERATORS[name][0].split()[-1]}) with one positive int, "
                         f"the {OPERATORS[name][0]}")
    return OperatorSpec(name, value)


def parse_attention(text: str) -> tuple[str, OperatorSpec | None]:
    """``(pattern text, operator)`` of an attention text: an operator runs along ``"Full()"``;
    a pattern text comes back canonical (its ``repr``) with no operator.

    Raises:
        ValueError: the text is neither an operator nor a pattern (the message names both kinds).
    """
    if is_operator(text):
        return "Full()", parse_operator(text)
    from ..patterns import parse_pattern

    try:
        return repr(parse_pattern(text)), None
    except (TypeError, ValueError) as e:
        raise ValueError(f"attention {text!r} is neither an operator ({_forms()}) nor a pattern: {e}") from None
