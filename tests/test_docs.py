"""The documentation: its Python examples run, its Markdown is well-formed, its links and anchors
resolve, the build's own checks (math, offline, links) catch what they promise to, and the
docstrings' math renders."""

from __future__ import annotations

import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from markdown_support import ROOT, broken_local_links, fences, python_blocks

DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_ext" not in p.parts)
EXAMPLES = [(page, index) for page in PAGES for index, _ in enumerate(python_blocks(page.read_text()))]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_ext_{name}", DOCS / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [str(p.relative_to(DOCS)) for p in PAGES if str(p.relative_to(DOCS)) not in nav]
    assert not missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_fences_are_closed(page):
    bad = [f.first_line for f in fences(page.read_text()) if not f.closed or f.nested_fence]
    assert not bad, f"unclosed or malformed fences at lines {bad}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_links_resolve(page):
    assert not broken_local_links(page, aliases={DOCS / "notebooks": ROOT / "notebooks"})


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\n## Real heading\n\n[ok](#real-heading) [bad](#missing) [gone](b.md) [ok2](a.md#a)\n")
    assert broken_local_links(tmp_path / "a.md") == ["#missing: no heading with that anchor in a.md", "b.md: no such file"]


@pytest.mark.parametrize(("page", "index"), EXAMPLES, ids=[f"{p.relative_to(DOCS)}[{i}]" for p, i in EXAMPLES])
def test_docs_python_example_runs(page, index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = python_blocks(page.read_text())[index]
    exec(compile(code, f"{page.relative_to(ROOT)}[python block {index}]", "exec"), {"__name__": "__docs__"})


# the build's own pieces -------------------------------------------------------------------------

def test_rst_math_and_literal_blocks_become_markdown():
    rst = _load("griffe_rst")
    doc = textwrap.dedent("""\
        Scores :math:`s_{ij}` of :class:`~graphattn.ops.AttentionGraph` and :func:`graphattn.ops.attention`:

        .. math::
            a = b

            c = d

        Example::

            x = f(1)
                y = 2

        Args:
            x: ``int``.
        """)
    assert rst.rst_to_markdown(doc) == textwrap.dedent("""\
        Scores $s_{ij}$ of `AttentionGraph` and `graphattn.ops.attention`:


        $$
        a = b
        $$


        $$
        c = d
        $$


        Example:

        ```python
        x = f(1)
            y = 2
        ```


        Args:
            x: ``int``.""")


def _docstring_math() -> list[tuple[str, str]]:
    """Every math formula in graphattn's docstrings, as the docs build sees it: ``(where, tex)``."""
    rst = _load("griffe_rst")
    found = []
    for path in sorted((ROOT / "graphattn").rglob("*.py")):
        text = path.read_text()
        if ".. math::" not in text and ":math:" not in text:
            continue
        import ast

        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node):
                markdown = rst.rst_to_markdown(inspect.cleandoc(ast.get_docstring(node, clean=False)))
                blocks = markdown.split("$$")[1::2]
                inline = [part for chunk in markdown.split("$$")[0::2] for part in chunk.split("$")[1::2]]
                found += [(f"{path.relative_to(ROOT)}:{getattr(node, 'name', 'module')}", tex.strip()) for tex in blocks + inline]
    return found


def test_docstring_math_renders_to_mathml():
    pytest.importorskip("latex2mathml")
    mathml = _load("mathml")
    formulas = _docstring_math()
    assert len(formulas) >= 18  # every `.. math::` block in the package at least
    failed = [(where, tex) for where, tex in formulas if mathml.LEFTOVER.search(mathml.to_mathml(tex, display=True))]
    assert not failed


def test_math_the_converter_cannot_render_is_a_warning(caplog):
    pytest.importorskip("latex2mathml")
    mathml = _load("mathml")
    page = type("Page", (), {"file": type("File", (), {"src_uri": "x.md"})()})()
    good = mathml.on_page_content('<div class="arithmatex">\\[a^2 \\le b\\]</div>', page, None, None)
    assert good.startswith("<math") and "block" in good and not caplog.records
    mathml.on_page_content('<span class="arithmatex">\\(\\notacommand{x}\\)</span>', page, None, None)
    assert any("x.md" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_a_page_fetching_remote_resources_is_a_warning(caplog):
    offline = _load("offline")
    page = type("Page", (), {"file": type("File", (), {"src_uri": "x.md"})()})()
    offline.on_post_page('<a href="https://example.org">a link is fine</a><img src="pic.png">', page, None)
    assert not caplog.records
    for remote in ('<script src="https://cdn.example.org/x.js"></script>',
                   '<link rel="stylesheet" href="//fonts.example.org/a.css">',
                   "<style>@import url(https://fonts.example.org/css);</style>"):
        caplog.clear()
        offline.on_post_page(remote, page, None)
        assert [r for r in caplog.records if r.levelname == "WARNING"], remote


def _mkdocs(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1", **env}, timeout=600)


def test_the_strict_build_fails_on_a_broken_anchor(tmp_path):
    """A small site with this repository's validation settings and hooks: strict mode refuses
    a link to a missing anchor and one to a missing page, and accepts the site once fixed."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    import yaml

    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)  # !ENV tags stay strings
    site = {"site_name": "t", "docs_dir": "docs", "strict": True, "validation": config["validation"],
            "theme": {"name": "material", "font": False},
            "hooks": [str(ROOT / h) for h in config["hooks"] if "notebooks" not in h]}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(site))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## Present\n")
    (tmp_path / "docs" / "index.md").write_text("# Home\n\n[a](other.md#absent) [b](missing.md)\n")
    broken = _mkdocs(["build", "-d", str(tmp_path / "site")], tmp_path)
    assert broken.returncode != 0
    assert "does not contain an anchor '#absent'" in broken.stderr and "missing.md" in broken.stderr
    (tmp_path / "docs" / "index.md").write_text("# Home\n\n[a](other.md#present)\n")
    assert _mkdocs(["build", "-d", str(tmp_path / "site")], tmp_path).returncode == 0


@pytest.mark.slow
def test_the_docs_build_strict(tmp_path):
    """The whole site, notebooks rendered from their stored outputs (.ci/run builds it with the
    notebooks executed)."""
    pytest.importorskip("mkdocs")
    done = _mkdocs(["build", "--strict", "-d", str(tmp_path / "site")], ROOT, GRAPHATTN_DOCS_EXECUTE="false")
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "reference" / "nn" / "index.html").read_text()
    assert "SelfAttentionConv" in api and "<math" in api
