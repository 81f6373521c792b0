"""mkdocs hook: a built page that would fetch a script, stylesheet, font or frame from another
host is a warning (an error under ``--strict``), so the site works offline and tracks no one.

Plain links (``<a href="https://...">``) are fine: a reader follows them or not.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger("mkdocs.hooks.offline")

REMOTE = re.compile(
    r"""<(?:script|img|iframe|source|audio|video)\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//"""
    r"""|<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?//"""
    r"""|@import\s+(?:url\()?["']?(?:https?:)?//"""
    r"""|url\(\s*["']?(?:https?:)?//""",
    re.I,
)


def on_post_page(output: str, page, config) -> str:
    for match in REMOTE.finditer(output):
        start = max(match.start() - 40, 0)
        log.warning("%s: fetches a remote resource: %r", page.file.src_uri, output[start:match.end() + 80])
    return output
