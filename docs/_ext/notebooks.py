"""mkdocs hook: the notebooks of ``notebooks/`` become pages under ``notebooks/`` of the site.

They stay where the tests run them (``tests/test_notebooks.py``); mkdocs-jupyter renders them,
executing them first unless ``GRAPHATTN_DOCS_EXECUTE=false``. This hook runs before
mkdocs-jupyter's own ``on_files`` (higher priority), so the plugin sees them as pages.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@event_priority(100)
def on_files(files: Files, config) -> Files:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(File(f"notebooks/{path.name}", src_dir=str(NOTEBOOKS.parent), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files
