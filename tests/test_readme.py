"""The README is well-formed CommonMark, its links resolve, and its Python examples run as
written; .ci/run runs exactly its test command."""

import pytest
from markdown_support import ROOT, broken_local_links, fences, python_blocks

README = ROOT / "README.md"
BLOCKS = python_blocks(README.read_text())


def test_readme_has_python_examples():
    assert BLOCKS, "README.md should contain python examples"


def test_readme_code_fences_are_closed():
    bad = [f"line {f.first_line}: {'unclosed' if not f.closed else 'a fence line inside'}"
           for f in fences(README.read_text()) if not f.closed or f.nested_fence]
    assert not bad, bad


def test_a_fence_closed_by_a_line_with_text_is_found():
    # the README's old mistake: "``` Measured ..." does not close, so the prose became code
    broken = "Text.\n\n```python\nx = 1\n``` Measured side by side\nmore prose\n\n```bash\nls\n```\n"
    assert [f.closed and not f.nested_fence for f in fences(broken)] == [False]
    fixed = broken.replace("``` Measured", "```\n\nMeasured")
    assert [f.closed and not f.nested_fence for f in fences(fixed)] == [True, True]
    assert [f.closed for f in fences(fixed + "\n```python\ny = 2\n")] == [True, True, False]


def test_readme_links_resolve():
    assert not broken_local_links(README)


def test_readme_stays_a_landing_page():
    assert len(README.read_text().splitlines()) <= 200


def test_ci_runs_the_readme_test_command():
    fenced = [f.content.strip() for f in fences(README.read_text()) if f.info == "bash"]
    test_command = next(command for command in fenced if "pytest" in command)
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {"__name__": "__readme__"})

