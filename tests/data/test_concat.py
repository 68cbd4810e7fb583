from __future__ import annotations

import pytest

from loom.data.iter import Concater, IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torch_iter

SIZES = [[3], [0, 2], [2, 0, 3], [0, 0], [4, 1, 2]]


@pytest.mark.parametrize("sizes", SIZES)
def test_matches_torch(sizes) -> None:
    ours = Concater(*[IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)])
    theirs = torch_iter.Concater(
        *[torch_iter.IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)]
    )
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)
    assert list(IterableWrapper([1]).concat(IterableWrapper([2]), IterableWrapper([3]))) == [1, 2, 3]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"concat: expected at least 1 IterDataPipe\(s\), got 0"):
        Concater()
    with pytest.raises(
        TypeError, match="concat: every input must be an IterDataPipe, got list at position 1"
    ):
        IterableWrapper([1]).concat([2])


def test_len_unknown() -> None:
    with pytest.raises(
        TypeError, match="Concater instance doesn't have valid length: its source IterableWrapper"
    ):
        len(IterableWrapper([1]).concat(IterableWrapper(iter([2]))))


@pytest.mark.parametrize("sizes", SIZES)
def test_resumes(sizes) -> None:
    assert_resumes_identically(
        lambda: Concater(*[IterableWrapper(range(10 * i, 10 * i + n)).batch(2) for i, n in enumerate(sizes)])
    )
