"""The ListOps generator against LRA's specification: values, lengths, depth, seeds, splits."""

import random

import pytest

from graphattn.datasets.listops import (
    END,
    OPERATORS,
    VOCABULARY,
    encode_listops,
    evaluate_listops,
    generate_listops,
    listops_splits,
    load_listops,
)


@pytest.mark.parametrize("text, value", [
    ("[MAX 4 3 [MIN 2 3 ] 1 0 [MED 1 5 8 9 2 ] ]", 5),
    ("[MIN 4 [MAX 7 9 ] 2 ]", 2),
    ("[SM 9 8 7 ]", 4),  # 24 mod 10
    ("[MED 1 2 7 9 ]", 4),  # even count: int(np.median) = int(4.5) = 4, as LRA
    ("[MED 3 ]", 3),
    ("7", 7),
])
def test_evaluate_known_expressions(text, value):
    assert evaluate_listops(text.split()) == value


@pytest.mark.parametrize("bad", ["[MAX 1 2", "1 2", "[FIRST 1 2 ]", "]"])
def test_evaluate_refuses_broken_expressions(bad):
    with pytest.raises((ValueError, IndexError)):
        evaluate_listops(bad.split())


def _depth(tokens):
    depth = deepest = 0
    for t in tokens:
        depth += t in OPERATORS
        deepest = max(deepest, depth)
        depth -= t == END
    return deepest


def test_examples_follow_the_spec():
    examples = generate_listops(300, min_length=16, max_length=64, max_depth=10, max_args=10, seed=1)
    assert len({" ".join(t) for t, _ in examples}) == 300  # unique
    for tokens, value in examples:
        assert 16 < len(tokens) < 64 and set(tokens) <= set(VOCABULARY[1:])
        assert value == evaluate_listops(tokens) and 0 <= value <= 9
        assert _depth(tokens) <= 10
        # every operator takes 2 .. 10 arguments: count them with a stack
        counts = []
        for t in tokens:
            if counts and t != END:
                counts[-1] += 1
            if t in OPERATORS:
                counts.append(0)
            elif t == END:
                assert 2 <= counts.pop() <= 10
    ops = {t for tokens, _ in examples for t in tokens if t in OPERATORS}
    assert ops == set(OPERATORS)


def test_depth_limit_is_kept():
    examples = generate_listops(50, min_length=2, max_length=400, max_depth=3, seed=0)
    assert max(_depth(t) for t, _ in examples) == 2  # nodes at depth 3 are digits: operators on levels 1 and 2


def test_seeded_and_splits_disjoint_with_test_first():
    train, val, test = listops_splits(64, (40, 10, 10), seed=3)
    again = listops_splits(64, (40, 10, 10), seed=3)
    assert (train, val, test) == again and listops_splits(64, (40, 10, 10), seed=4)[2] != test
    keys = [" ".join(t) for split in (train, val, test) for t, _ in split]
    assert len(set(keys)) == 60
    assert listops_splits(64, (5, 10, 10), seed=3)[2] == test  # the test set does not depend on the training size
    assert all(16 < len(t) < 64 for t, _ in train)  # min_length: a quarter of max_length


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="min_length"):
        generate_listops(1, min_length=10, max_length=11)
    with pytest.raises(ValueError, match="unknown ListOps token"):
        encode_listops(["[MAX", "x", "]"])
    with pytest.raises(ValueError, match="sizes"):
        listops_splits(64, (1, 2))


def test_load_caches_the_encoded_splits(tmp_path):
    first = load_listops(48, (6, 3, 3), root=tmp_path)
    assert len(list((tmp_path / "listops").glob("*.pt"))) == 1
    second = load_listops(48, (6, 3, 3), root=tmp_path)
    for a, b in zip(first, second):
        assert [(ids.tolist(), y) for ids, y in a] == [(ids.tolist(), y) for ids, y in b]
    ids, y = first[2][0]
    assert evaluate_listops([VOCABULARY[i] for i in ids.tolist()]) == y


def test_stopping_early_keeps_the_distribution():
    # A tree abandoned for length is one LRA would reject: the kept trees have the lengths of an
    # unbounded draw filtered afterwards.
    import graphattn.datasets.listops as lo

    rng, kept = random.Random(0), []
    while len(kept) < 200:
        out = []
        try:
            lo._tree(rng, 1, 10, 10, out, 10**9)
        except lo._TooLong:
            raise AssertionError("no limit was set") from None
        if 8 < len(out) < 40:
            kept.append(len(out))
    bounded = [len(t) for t, _ in generate_listops(200, min_length=8, max_length=40, seed=0)]
    assert abs(sum(kept) / 200 - sum(bounded) / 200) < 3
