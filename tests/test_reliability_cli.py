"""The CLI never hangs, never allocates what it cannot hold and never ends in a traceback.

Hypothesis writes pattern expressions (valid ones, huge sizes, wrong types, nonsense) and node
counts; ``graphattn patterns show`` must answer correctly or exit 2 with one line on stderr,
quickly: the cost is refused before anything is allocated.
"""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import bad_input_report, count_bad  # noqa: F401

from graphattn.cli import SHOW_MAX_EDGES, main
from graphattn.patterns import parse_pattern

pytestmark = pytest.mark.usefixtures("bad_input_report")

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

HUGE = st.one_of(st.integers(2**26, 2**31 - 1), st.integers(2**31, 2**80))
SMALL = st.integers(0, 6)
ARG = st.one_of(SMALL, HUGE, st.integers(-(2**70), -1), st.floats(allow_nan=True, allow_infinity=True),
                st.sampled_from(["'a'", "None", "True", "[]", "[0, 1]", "{0: 1}", "{0}", "x", "1 + 1", "(1,)"]))


@st.composite
def pattern_text(draw, arg=ARG):
    def text(a: object) -> str:
        return a if isinstance(a, str) else repr(a)

    name = draw(st.sampled_from(["Full", "Window", "Causal", "Stride", "Global", "Random", "Grid2D", "SelfLoops",
                                 "VirtualNodes", "Expander", "longformer", "bigbird", "Windw", "print", "__import__"]))
    args = draw(st.lists(arg, max_size=3))
    call = f"{name}({', '.join(text(a) for a in args)})"
    if draw(st.booleans()):
        call += f" {draw(st.sampled_from(['|', '&', '+']))} Window({draw(SMALL)})"
    return call


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    tic = time.perf_counter()
    rc = main(list(argv))
    took = time.perf_counter() - tic
    out, err = capsys.readouterr()
    assert took < 10, f"{argv} took {took:.1f} s"
    return rc, out, err


def assert_one_line_error(rc: int, err: str, command: str = "patterns") -> None:
    assert rc == 2, (rc, err)
    assert err.count("\n") == 1 and err.startswith(f"graphattn {command}: error: "), err
    assert "Traceback" not in err


@SETTINGS
@given(text=pattern_text(), n=st.one_of(st.integers(1, 40), st.integers(10**4, 10**6), st.integers(2**31, 2**40)))
def test_patterns_show_answers_or_refuses_in_one_line(capsys, text, n):
    try:
        pattern = parse_pattern(text)
        pattern.validate(n)
        expected = pattern.edge_index(n).size(1) if pattern.max_edges(n) <= 10**5 and n <= 64 else None
    except (TypeError, ValueError):
        pattern, expected = None, None
    rc, out, err = run_cli(capsys, "patterns", "show", text, "--n", str(n))
    if rc == 2:
        count_bad("cli: patterns show refused")
        assert_one_line_error(rc, err)
    else:
        assert rc == 0 and pattern is not None, (text, n, err)
        assert err == ""
        if expected is not None:  # a correct answer for a valid input
            assert f"n={n}  edges={expected}  " in out
            assert out.splitlines()[0] == repr(pattern)


@pytest.mark.parametrize("text, n, what", [
    ("Expander(1000000000)", 2, "Expander(degree=1000000000) on n=2 nodes draws"),
    ("Full()", 100000, "10,000,000,000 edges"),
    ("bigbird(2, random_per_query=100000)", 10**5, "edges"),
    ("Global(None)", 4, "Global nodes must be an int or a list"),
    ("Global({0: 1})", 4, "must be a number, string, None, or a list"),
    ("Window(2)", 2**31, "n must be <= 2147483647"),
])
def test_the_reported_hostile_calls(capsys, text, n, what):
    count_bad("cli: reported case")
    rc, _, err = run_cli(capsys, "patterns", "show", text, "--n", str(n))
    assert_one_line_error(rc, err)
    assert what in err
    assert "2**26" in err or "must" in err  # a refused size names the limit


def test_the_budget_lets_the_largest_allowed_pattern_through(capsys):
    n = 2**13  # Full() on 8192 nodes has exactly 2**26 edges
    assert n * n == SHOW_MAX_EDGES
    rc, out, _ = run_cli(capsys, "patterns", "show", "Window(1)", "--n", str(n))
    assert rc == 0 and f"edges={3 * n - 2}" in out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.one_of(st.sampled_from(["patterns", "show", "list", "gallery", "--n", "--png", "node",
                                                "--epochs", "-1", "0", "x", "--dataset", "Nope", "Full()", ""]),
                               st.text(max_size=8)), max_size=5))
def test_any_argv_exits_0_or_2_without_a_traceback(capsys, argv, tmp_path_factory):
    if "--png" in argv or "gallery" in argv or "node" in argv or "--help" in argv or "-h" in argv:
        argv = [a for a in argv if a not in ("--png", "gallery", "node", "--help", "-h")]
    count_bad("cli: random argv")
    rc, _, err = run_cli(capsys, *argv)
    assert rc in (0, 2), (argv, rc, err)
    assert "Traceback" not in err


def test_unexpected_errors_are_one_line_and_exit_2(capsys, monkeypatch):
    import graphattn.cli as cli

    def broken(args):
        raise KeyError("deep inside")

    monkeypatch.setattr(cli, "_patterns_list", broken)
    rc, _, err = run_cli(capsys, "patterns", "list")
    assert_one_line_error(rc, err)
    assert "KeyError" in err and "GRAPHATTN_DEBUG=1" in err
    monkeypatch.setenv("GRAPHATTN_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["patterns", "list"])


def test_a_corrupt_checkpoint_under_resume_is_one_line(capsys, offline_data, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "graph-seed0.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    count_bad("cli: corrupt checkpoint")
    rc, _, err = run_cli(capsys, "node", "--dataset", "Cora", "--models", "graph", "--seeds", "1", "--epochs", "1",
                         "--resume", "--out", str(out), "--no-progress")
    assert_one_line_error(rc, err, "node")
    assert "graph-seed0.pt" in err and "without resume" in err
    assert (out / "checkpoints" / "graph-seed0.pt").read_bytes() == b"PK\x03\x04 not a checkpoint"
