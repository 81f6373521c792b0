"""Shared by the ``test_reliability_*`` modules: a tally of the bad inputs the searches try.

Each search calls :func:`count_bad` once per generated bad input; at the end of the session
the totals per kind are printed (``bad inputs tried: ...``), so a run says how hard it looked.
"""
from __future__ import annotations

from collections import Counter

import pytest

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
