"""parse_pattern: text to patterns, safely."""

import pytest

from graphattn.patterns import (
    PATTERN_NAMES,
    PATTERNS,
    Causal,
    Expander,
    Full,
    Global,
    Grid2D,
    Random,
    SelfLoops,
    Stride,
    VirtualNodes,
    Window,
    bigbird,
    longformer,
    parse_pattern,
)


@pytest.mark.parametrize("text,expected", [
    ("longformer(radius=2, global_tokens=[0])", Window(2) | Global((0,))),
    ("Window(2) | Global([0])", Window(2) | Global((0,))),
    ("bigbird(3, [0], 2, seed=1)", Window(3) | Global((0,)) | Random(2, seed=1)),
    ("Window(left=16, right=0)", Window(left=16, right=0)),
    ("(Window(1) | Global([0, -1])) & Causal()", (Window(1) | Global((0, -1))) & Causal()),
    ("  Full()  ", Full()),
    ("Grid2D(1, width=7)", Grid2D(1, 7)),
])
def test_parse(text, expected):
    assert parse_pattern(text) == expected


@pytest.mark.parametrize("pattern", [
    Full(), Window(3), Window(left=4, right=1), Causal(), Stride(3), Stride(2, reach=6), Global((0, 5)),
    Random(2, seed=4), Grid2D(2, 6), SelfLoops(), VirtualNodes(2), Expander(4, seed=1),
    longformer(2, (0,), stride=3), bigbird(1, (0, -1), 2, seed=3), (Window(1) | Global((0,))) & Causal(),
])
def test_repr_round_trip(pattern):
    parsed = parse_pattern(repr(pattern))
    assert parsed == pattern
    assert (parsed.dense_mask(12) == pattern.dense_mask(12)).all()


def test_names():
    assert set(PATTERN_NAMES) == set(PATTERNS)
    assert {"Full", "Window", "Grid2D", "longformer", "bigbird"} <= set(PATTERN_NAMES)
    assert all(PATTERNS[name].__doc__ for name in PATTERN_NAMES)


@pytest.mark.parametrize("text,match", [
    ("", "empty"),
    ("Window(", "cannot parse"),
    ("Windw(2)", "unknown pattern 'Windw'.*did you mean 'Window'"),
    ("__import__('os').system('true')", "not a pattern name"),
    ("open('x')", "unknown pattern 'open'"),
    ("Window(2) + Full()", "operator '\\+'"),
    ("Window(radius=n)", "must be a literal"),
    ("Window(*[2])", "\\* arguments"),
    ("Window(**{'radius': 2})", "\\*\\* arguments"),
    ("Window", "bare name"),
    ("Window(2).left", "not allowed"),
    ("Window(-1)", "bad arguments for Window: radius must be an int >= 0"),
    ("Window(size=3)", "bad arguments for Window"),
    ("Window(2) | 3", "'3' is not allowed"),
    ("GraphEdges([[0], [1]])", "unknown pattern 'GraphEdges'"),
])
def test_bad_text(text, match):
    with pytest.raises(ValueError, match=match):
        parse_pattern(text)


def test_bad_type():
    with pytest.raises(TypeError, match="text must be a str"):
        parse_pattern(Window(2))
