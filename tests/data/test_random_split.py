from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper, MultiplexerLongest, RandomSplitter

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter

WEIGHTS = [{"train": 0.5, "valid": 0.5}, {"a": 5, "b": 3, "c": 2}, {"x": 1, "y": 0.1}]


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("seed", [0, 7])
def test_matches_torchdata(weights, seed) -> None:
    td = torchdata_iter()
    ours = IterableWrapper(range(10)).random_split(weights, seed=seed, total_length=10)
    theirs = td.IterableWrapper(range(10)).random_split(total_length=10, weights=weights, seed=seed)
    assert [list(c) for c in ours] == [list(c) for c in theirs]
    assert sorted(x for c in ours for x in c) == list(range(10))
    for key in weights:
        one = IterableWrapper(range(10)).random_split(weights, seed=seed, target=key)
        assert list(one) == list(td.IterableWrapper(range(10)).random_split(weights, seed=seed, target=key))


def test_same_split_every_epoch_and_override_seed() -> None:
    train, valid = IterableWrapper(range(20)).random_split({"t": 0.7, "v": 0.3}, seed=1)
    first = list(train)
    assert list(train) == first
    assert set(first).isdisjoint(valid)
    train.override_seed(2)
    td = torchdata_iter()
    theirs = td.IterableWrapper(range(20)).random_split({"t": 0.7, "v": 0.3}, seed=2, target="t")
    assert list(train) == list(theirs)


def test_len() -> None:
    a, b = IterableWrapper(range(10)).random_split({"a": 7, "b": 3}, seed=0)
    assert (len(a), len(b)) == (7, 3) == (len(list(a)), len(list(b)))
    a, _ = IterableWrapper(range(10)).random_split({"a": 0.5, "b": 0.4}, seed=0)
    with pytest.raises(TypeError, match="random_split: the lengths of the splits are not known in advance"):
        len(a)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"weights": {}, "seed": 0}, ValueError, "random_split: weights must be a non-empty dict"),
        ({"weights": {"a": -1}, "seed": 0}, ValueError, "random_split: weights must be non-negative numbers"),
        ({"weights": {"a": 0}, "seed": 0}, ValueError, "random_split: the weights must not all be 0"),
        ({"weights": {"a": 1}, "seed": None}, TypeError, "random_split: seed must be an int"),
        ({"weights": {"a": 1}, "seed": 0, "target": "b"}, KeyError, "random_split: target='b' is not a key"),
        (
            {"weights": {"a": 1}, "seed": 0, "total_length": 0},
            ValueError,
            "random_split: total_length must be",
        ),
    ],
)
def test_bad_arguments(kwargs, err, match) -> None:
    with pytest.raises(err, match=match):
        IterableWrapper(range(3)).random_split(**kwargs)
    with pytest.raises(TypeError, match="random_split: needs total_length"):
        IterableWrapper(iter(range(3))).random_split({"a": 1}, seed=0)
    with pytest.raises(TypeError, match="random_split: the source must be an IterDataPipe"):
        RandomSplitter(range(3), {"a": 1}, 0)


def test_resumes() -> None:
    for key in ("a", "b", "c"):
        assert_resumes_identically(
            lambda key=key: IterableWrapper(range(15)).random_split(WEIGHTS[1], 3, target=key)
        )
    assert_resumes_identically(
        lambda: MultiplexerLongest(*IterableWrapper(range(15)).random_split(WEIGHTS[1], 3))
    )
