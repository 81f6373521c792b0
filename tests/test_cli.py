"""The command line: main(argv) returns an exit status and prints what it did."""

import subprocess
import sys

from graphattn.cli import main
from graphattn.patterns import PATTERN_NAMES, longformer


def test_patterns_list(capsys):
    assert main(["patterns", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(PATTERN_NAMES)
    assert all(len(line.split()) > 2 for line in lines)  # every name has a one-line description


def test_patterns_show(capsys, tmp_path):
    png = tmp_path / "longformer.png"
    assert main(["patterns", "show", "longformer(radius=2, global_tokens=[0])", "--n", "32", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    pattern = longformer(2, (0,))
    assert out.startswith(repr(pattern) + "\n")
    assert f"edges={pattern.edge_index(32).size(1)}" in out
    assert pattern.to_text(32) in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_patterns_gallery_writes_the_picture(capsys, tmp_path):
    png = tmp_path / "gallery.png"
    assert main(["patterns", "gallery", "--n", "16", "--png", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    assert f"wrote {png}" in capsys.readouterr().out


def test_bad_pattern_returns_2(capsys):
    assert main(["patterns", "show", "Windw(2)"]) == 2
    captured = capsys.readouterr()
    assert "unknown pattern 'Windw'" in captured.err and "did you mean 'Window'" in captured.err
    assert captured.out == ""
    assert main(["patterns", "show", "Random(5)", "--n", "3"]) == 2
    assert "per_query=5" in capsys.readouterr().err


def test_usage_errors_return_2(capsys):
    assert main([]) == 2
    assert main(["patterns", "show", "Full()", "--n", "zero"]) == 2
    assert main(["patterns", "--help"]) == 0
    capsys.readouterr()


def test_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "graphattn", "patterns", "show", "Window(1)", "--n", "4"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "###." in done.stdout
