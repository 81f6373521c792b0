"""Shared by the ``test_reliability_*`` modules: a tally of the bad inputs the searches try, and
the generators of bad values with the table entry they fill.

Each search calls :func:`count_bad` once per generated bad input; at the end of the session
the totals per kind are printed (``bad inputs tried: ...``), so a run says how hard it looked.
An :class:`Entry` is one public entry point with a valid call and, per argument, a strategy of
values it must refuse; :func:`named` tells whether a message names the argument.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import strategies as st

TALLY: Counter[str] = Counter()
_reported = False


def count_bad(kind: str) -> None:
    """Record one generated bad input of ``kind`` (e.g. ``"pattern: huge size"``)."""
    TALLY[kind] += 1


@pytest.fixture(scope="session")
def bad_input_report(request):
    """Print the tally once, after every test of the session."""
    yield
    global _reported
    if _reported or not TALLY:
        return
    _reported = True
    groups = Counter()
    for kind, count in TALLY.items():
        groups[kind.split(":")[0]] += count
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = (f"bad inputs tried: {sum(TALLY.values())} "
            f"({', '.join(f'{group} {count}' for group, count in sorted(groups.items()))})")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
            reporter.write_line("")
            reporter.write_line(line)


# bad values, by what the argument expects ---------------------------------------------------

NOT_INT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.text(max_size=3),
                    st.just([1]), st.just(torch.tensor(2)))
HUGE = st.integers(2**63, 2**80)  # past int64: no size, reach, id or seed may be this large


def bad_int(minimum: int, *, optional: bool = False, huge: bool = True) -> st.SearchStrategy:
    """Values an int argument ``>= minimum`` must refuse (``None`` too unless ``optional``)."""
    parts = [NOT_INT, st.integers(-(2**70), minimum - 1)]
    if huge:
        parts.append(HUGE)
    if not optional:
        parts.append(st.none())
    return st.one_of(*parts)


BAD_RATE = st.one_of(st.floats(1.0, 1e9), st.floats(-1e9, -1e-9), st.just(float("nan")), st.text(max_size=3),
                     st.booleans(), st.none())
BAD_CHOICE = st.one_of(st.text(max_size=6).filter(lambda s: s not in ("auto", "dot", "additive", "reference",
                                                                      "scatter", "dense", "blocked", "sparse",
                                                                      "flex", "mean", "add", "max", "cls")),
                       st.integers(), st.none())
BAD_POS_FLOAT = st.one_of(st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")))


@st.composite
def bad_tensor(draw, shape: tuple[int, ...], *, dtype=torch.float32, finite: bool = True, wrong_dtypes=None,
               free: tuple[int, ...] = (), ranks: tuple[int, ...] = ()):
    """A tensor that differs from ``shape`` / ``dtype`` in one way (its rank, the size of an axis
    not in ``free``, its dtype, its type), or holds NaN / inf. ``ranks``: other ranks that are valid."""
    fixed = [a for a in range(len(shape)) if a not in free]
    kinds = ["rank", "type"] + (["dtype"] if wrong_dtypes != [] else []) + (["size"] if fixed else []) + (
        ["nonfinite"] if finite and dtype.is_floating_point else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "rank":
        rank = draw(st.sampled_from([r for r in range(0, len(shape) + 3) if r != len(shape) and r not in ranks]))
        new = (*shape, 1, 1, 1)[:rank] if rank > len(shape) else shape[:rank]
        return torch.zeros(new, dtype=dtype)
    if kind == "size":
        axis = draw(st.sampled_from(fixed))
        new = list(shape)
        new[axis] = draw(st.integers(0, 9).filter(lambda s: s != shape[axis]))
        return torch.zeros(new, dtype=dtype)
    if kind == "dtype":
        options = wrong_dtypes or ([torch.int64, torch.bool, torch.complex64] if dtype.is_floating_point
                                   else [torch.float32, torch.bool, torch.float64])
        return torch.zeros(shape, dtype=draw(st.sampled_from(options)))
    if kind == "type":
        return draw(st.sampled_from([1.5, "x", [[0.0]], (1, 2)]))
    t = torch.zeros(shape, dtype=dtype)
    t.view(-1)[draw(st.integers(0, max(t.numel() - 1, 0)))] = draw(BAD_POS_FLOAT)
    return t



@dataclass
class Entry:
    """``call(**kwargs)`` with ``valid`` kwargs; ``bad[name]`` generates values ``name`` must refuse;
    ``names[name]`` lists the words any of which the message must contain (default: ``name``)."""

    call: object
    valid: dict
    bad: dict
    names: dict = field(default_factory=dict)



def named(message: str, words: list[str]) -> bool:
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(w)}(?![A-Za-z0-9_])", message) for w in words)
