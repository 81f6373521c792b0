"""Griffe extension: the reStructuredText of graphattn's docstrings as Markdown for mkdocstrings.

The docstrings follow PyG's style (Google sections, ``.. math::`` blocks, ``:math:`` and
``:class:`` roles, ``literal::`` blocks); mkdocstrings reads Markdown. Rewritten before parsing:

* ``.. math::`` and its indented block: one ``$$ ... $$`` display per paragraph (rendered to
  MathML by ``docs/_ext/mathml.py``);
* ``:math:`x``` -> ``$x$``; ``:class:`~a.B``` (and ``meth``, ``func``, ``attr``, ``mod``,
  ``obj``) -> a code span, the last component with ``~``;
* a paragraph ending in ``::`` followed by an indented block: ``:`` and a fenced Python block.

Double-backtick literals are already Markdown code spans.
"""

from __future__ import annotations

import re
import textwrap

from griffe import Extension, Object

ROLE = re.compile(r":(?:class|meth|func|attr|mod|obj|data|exc):`(~?)([^`]+)`")
MATH_ROLE = re.compile(r":math:`([^`]+)`")


def _role(match: re.Match) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """The lines after ``start`` indented deeper than ``base`` (blank lines inside kept)."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end], end


def rst_to_markdown(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        pad = " " * _indent(line)
        if stripped.startswith(".. math::"):
            inline = stripped[len(".. math::"):].strip()
            body, i = _block(lines, i + 1, _indent(line))
            equations = textwrap.dedent("\n".join(body)).split("\n\n")
            if inline:
                equations.insert(0, inline)
            for equation in equations:
                if equation.strip():
                    out += ["", f"{pad}$$", *[pad + eq for eq in equation.strip().splitlines()], f"{pad}$$", ""]
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            body, end = _block(lines, i + 1, _indent(line))
            if body and any(b.strip() for b in body):
                out.append(line[:-1] if stripped != "::" else "")
                code = textwrap.dedent("\n".join(body)).strip("\n")
                out += ["", f"{pad}```python", *[pad + c if c else "" for c in code.splitlines()], f"{pad}```", ""]
                i = end
                continue
        out.append(line)
        i += 1
    text = "\n".join(out)
    text = MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
    return ROLE.sub(_role, text)


class RstToMarkdown(Extension):
    """Rewrites every docstring once, when its object is loaded."""

    def on_instance(self, *, obj: Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
