"""Markdown as CommonMark sees it (markdown-it-py): code fences, links and heading anchors.

Shared by the README and docs tests. A fence is *closed* when the line that ends it is a bare
closing fence; a fence whose content holds a line starting with its own fence characters is
malformed (a closing fence with text after it, as in "``` Measured", does not close: CommonMark
then runs the code block on until the next bare fence, and GitHub renders the prose as code).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from markdown.extensions.toc import slugify
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
PARSER = MarkdownIt("commonmark").enable("table")


@dataclass(frozen=True)
class Fence:
    info: str
    content: str
    first_line: int  # 1-based line of the opening fence
    closed: bool
    nested_fence: bool  # a line inside that looks like a fence of the same kind


def fences(text: str) -> list[Fence]:
    lines = text.splitlines()
    found = []
    for token in PARSER.parse(text):
        if token.type != "fence":
            continue
        start, end = token.map
        marker = token.markup  # e.g. ``` or ~~~~
        last = lines[end - 1].strip() if end - 1 > start else ""
        closed = end - 1 > start and re.fullmatch(f"{re.escape(marker[0])}{{{len(marker)},}}", last) is not None
        inner = lines[start + 1:end - 1] if closed else lines[start + 1:end]
        nested = any(line.lstrip().startswith(marker) for line in inner)
        found.append(Fence(token.info.strip(), token.content, start + 1, closed, nested))
    return found


def python_blocks(text: str) -> list[str]:
    return [f.content for f in fences(text) if f.info.split(" ")[0] in ("python", "py")]


def links(text: str) -> list[str]:
    """Every link and image target of the document (inline and reference style)."""
    targets = []

    def walk(tokens):
        for token in tokens:
            if token.type == "link_open":
                targets.append(token.attrs["href"])
            elif token.type == "image":
                targets.append(token.attrs["src"])
            if token.children:
                walk(token.children)

    walk(PARSER.parse(text))
    return targets


def anchors(text: str) -> set[str]:
    """The heading ids Python-Markdown's toc (what mkdocs uses) gives the headings of a page;
    repeated headings get ``_1``, ``_2``, ... as it does."""
    tokens = PARSER.parse(text)
    seen: dict[str, int] = {}
    ids = set()
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            title = "".join(child.content for child in tokens[index + 1].children or [] if child.type in ("text", "code_inline"))
            slug = slugify(title, "-")
            count = seen.get(slug, 0)
            ids.add(slug if count == 0 else f"{slug}_{count}")
            seen[slug] = count + 1
    return ids


def _documented_object(page: str, anchor: str) -> bool:
    """Whether ``anchor`` names an object that a mkdocstrings directive (``::: module``) of
    ``page`` documents, and so gets that anchor when the site is built."""
    for module in re.findall(r"^::: ([\w.]+)", page, flags=re.M):
        if anchor.startswith(module + "."):
            obj = importlib.import_module(module)
            for part in anchor[len(module) + 1:].split("."):
                if not hasattr(obj, part):
                    return False
                obj = getattr(obj, part)
            return True
    return False


def broken_local_links(path: Path, aliases: dict[Path, Path] | None = None) -> list[str]:
    """Relative links of ``path`` whose file (or heading anchor, in a Markdown file) is missing.
    ``aliases`` maps a folder as the site lays it out to where its files are in the repository
    (the docs' ``notebooks/`` pages are the repository's ``notebooks/``)."""
    broken = []
    for target in links(path.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        for site_dir, repo_dir in (aliases or {}).items():
            if resolved.is_relative_to(site_dir):
                resolved = repo_dir / resolved.relative_to(site_dir)
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()) \
                and not _documented_object(resolved.read_text(), anchor):
            where = resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved.name
            broken.append(f"{target}: no heading with that anchor in {where}")
    return broken
