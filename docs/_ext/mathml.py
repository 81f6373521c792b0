"""mkdocs hook: TeX math rendered to MathML when the site is built, so pages need no script.

``pymdownx.arithmatex`` (generic mode) marks math in pages and docstrings as
``<span class="arithmatex">\\(...\\)</span>`` and ``<div class="arithmatex">\\[...\\]</div>``;
this hook replaces each with the MathML of ``latex2mathml``, which browsers render natively.
A formula that ``latex2mathml`` cannot convert (a TeX command left in its output) is a warning,
so ``mkdocs build --strict`` fails on math that would not render.
"""

from __future__ import annotations

import html
import logging
import re

from latex2mathml.converter import convert

log = logging.getLogger("mkdocs.hooks.mathml")

MATH = re.compile(r'<(span|div) class="arithmatex">\s*\\([(\[])(.*?)\\[)\]]\s*</\1>', re.S)
# TeX that latex2mathml leaves as text (it converts the symbols themselves)
SUBSTITUTIONS = {r"\Vert": "‖", r"\|": "‖"}
LEFTOVER = re.compile(r">[^<]*\\[A-Za-z]+")


def to_mathml(tex: str, display: bool) -> str:
    for old, new in SUBSTITUTIONS.items():
        tex = tex.replace(old, new)
    return convert(tex, display="block" if display else "inline")


def on_page_content(content: str, page, config, files) -> str:
    def replace(match: re.Match) -> str:
        tex = html.unescape(match.group(3)).strip()
        try:
            out = to_mathml(tex, display=match.group(2) == "[")
        except Exception as error:  # latex2mathml raises its own exception types per construct
            log.warning("%s: cannot render math %r: %s", page.file.src_uri, tex, error)
            return match.group(0)
        if LEFTOVER.search(out):
            log.warning("%s: math %r renders with TeX left in it: %s", page.file.src_uri, tex, LEFTOVER.search(out).group(0))
        return out

    return MATH.sub(replace, content)
