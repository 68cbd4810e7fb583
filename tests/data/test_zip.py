from __future__ import annotations

import pytest

from loom.data import set_graph_random_seed
from loom.data.iter import IterableWrapper, Zipper

from ._checks import assert_resumes_identically
from ._oracle import torch_iter

SIZES = [[3], [0, 2], [5, 3, 4], [2, 2]]


@pytest.mark.parametrize("sizes", SIZES)
def test_matches_torch(sizes) -> None:
    ours = Zipper(*[IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)])
    theirs = torch_iter.Zipper(
        *[torch_iter.IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)]
    )
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_functional_and_empty() -> None:
    assert list(IterableWrapper("ab").zip(IterableWrapper([1, 2]))) == [("a", 1), ("b", 2)]
    assert list(Zipper()) == list(zip()) == []


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="zip: every input must be an IterDataPipe, got range at position 1"):
        IterableWrapper([1]).zip(range(3))


def test_len_unknown() -> None:
    with pytest.raises(TypeError, match="Zipper instance doesn't have valid length"):
        len(IterableWrapper([1]).zip(IterableWrapper(iter([2]))))


@pytest.mark.parametrize("sizes", SIZES)
def test_resumes(sizes) -> None:
    assert_resumes_identically(
        lambda: set_graph_random_seed(
            Zipper(*[IterableWrapper(range(10 * i, 10 * i + n)).shuffle() for i, n in enumerate(sizes)]), 5
        )
    )
