"""The package's shape: no import circle among graphattn's modules (every import statement counts:
module level, inside functions, under ``TYPE_CHECKING``), and no module over 400 lines.

The imports are read from the source with :mod:`ast`, so a circle that only closes at run time
(a function-level import) is found as surely as one that breaks ``import``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "graphattn"
MAX_LINES = 400

#: Circles allowed: none.
EXEMPT_CIRCLES: set[frozenset[str]] = set()
#: Modules allowed over MAX_LINES: none.
EXEMPT_LONG: dict[str, int] = {}


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its ``__init__``)."""
    found = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The graphattn modules that the module ``name`` (at ``path``) imports, wherever the statement is.

    ``from X import Y`` imports the module ``X.Y`` when that is a module, else ``X`` (``Y`` is then
    an attribute); a name that is no module resolves to its nearest enclosing module."""
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    out = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    known = modules(package)
    return {name: imported(name, path, known) for name, path in known.items()}


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def test_no_import_circle():
    found = set(circles(import_graph()))
    new = [sorted(c) for c in found - EXEMPT_CIRCLES]
    assert not new, f"import circles: {new}"


def test_exempt_circles_still_exist():
    """An exemption whose circle is gone must be removed, so the list only shrinks."""
    found = set(circles(import_graph()))
    assert not [sorted(c) for c in EXEMPT_CIRCLES - found]


def test_no_module_over_400_lines():
    lengths = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    long = {name: n for name, n in lengths.items() if n > MAX_LINES and name not in EXEMPT_LONG}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
    stale = [name for name in EXEMPT_LONG if lengths.get(name, 0) <= MAX_LINES]
    assert not stale, f"remove from EXEMPT_LONG (now short or gone): {stale}"


# the checker itself -----------------------------------------------------------------------------

def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


@pytest.mark.parametrize("files, expected", [
    # a function-level import closes a circle as surely as a top-level one
    ({"pkg/__init__.py": "", "pkg/a.py": "from . import b\n", "pkg/b.py": "def f():\n    from .a import x\n"},
     [{"pkg.a", "pkg.b"}]),
    # TYPE_CHECKING imports count
    ({"pkg/__init__.py": "", "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n",
      "pkg/b.py": "import pkg.a\n"}, [{"pkg.a", "pkg.b"}]),
    # across packages, through relative imports two levels up
    ({"pkg/__init__.py": "", "pkg/x/__init__.py": "", "pkg/x/a.py": "from ..y.b import f\n",
      "pkg/y/__init__.py": "", "pkg/y/b.py": "from ..x import a\n"}, [{"pkg.x.a", "pkg.y.b"}]),
    # a package's __init__ importing its modules, which import each other one way: no circle
    ({"pkg/__init__.py": "from .a import f\nfrom .b import g\n", "pkg/a.py": "from .b import g\n", "pkg/b.py": ""}, []),
    # three modules in a ring
    ({"pkg/__init__.py": "", "pkg/a.py": "from .b import x\n", "pkg/b.py": "from .c import y\n",
      "pkg/c.py": "from pkg.a import z\n"}, [{"pkg.a", "pkg.b", "pkg.c"}]),
])
def test_the_checker_finds_every_kind_of_circle(tmp_path, files, expected):
    package = write(tmp_path, files)
    assert sorted(map(sorted, circles(import_graph(package)))) == sorted(map(sorted, expected))
