"""The capability cheatsheet in the docs is the one the kernels generate: a kernel whose support
changes without the page changing fails here."""

from __future__ import annotations

from pathlib import Path

from graphattn.ops.capabilities import capability_markdown

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "capabilities.md"


def test_the_cheatsheet_page_is_what_the_kernels_generate():
    assert PAGE.read_text() == capability_markdown(), (
        "docs/reference/capabilities.md is stale: regenerate it with "
        "`python -m graphattn.ops.capabilities > docs/reference/capabilities.md`")


def test_the_cheatsheet_says_what_auto_runs_on_each_device():
    page = capability_markdown()
    cpu, cuda = page.split("## Graphs on CUDA")
    assert "| `Window(128)`, n = 16,384 | yes | yes | **auto** |" in cpu  # the band kernel on CPU
    assert "| no (" in cpu and "**auto**" in cuda
    assert cuda.split("## Features")[0].count("**auto**") == 9  # one kernel per graph
