"""Release hygiene: one place for the version, a changelog that names it, the license the
metadata claims, and the type marker in the package. (.ci/run builds the wheel and the sdist
and smoke-tests the wheel in a fresh virtual environment.)"""

import importlib
import importlib.metadata
import re

import pytest
from markdown_support import ROOT

import graphattn

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_the_installed_metadata():
    assert graphattn.__version__ == importlib.metadata.version("graphattn") == PYPROJECT["project"]["version"]


def test_the_version_is_written_only_in_pyproject():
    literals = [(p.name, v) for p in (ROOT / "graphattn").rglob("*.py")
                for v in re.findall(r"__version__\s*=\s*['\"]([^'\"]*)['\"]", p.read_text())]
    assert literals == [("__init__.py", "0.0.0+unknown")]  # only the fallback of a tree never installed


def test_a_source_tree_that_was_never_installed_says_so(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    try:
        assert importlib.reload(graphattn).__version__ == "0.0.0+unknown"
    finally:
        monkeypatch.undo()
        importlib.reload(graphattn)
    assert graphattn.__version__ == PYPROJECT["project"]["version"]


def test_the_changelog_has_an_unreleased_section_and_the_current_version():
    headings = re.findall(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    assert headings[0] == "Unreleased"
    assert any(h.split(" - ")[0] == PYPROJECT["project"]["version"] for h in headings[1:])


def test_the_license_file_is_the_license_the_metadata_names():
    assert PYPROJECT["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_package_ships_its_type_marker():
    assert (ROOT / "graphattn" / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["graphattn"]
