from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper, ZipperLongest

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter

SIZES = [[3], [0, 2], [5, 3, 4], [2, 2], [0, 0]]


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("fill", [None, -1])
def test_matches_torchdata(sizes, fill) -> None:
    td = torchdata_iter()
    ours = ZipperLongest(
        *[IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)], fill_value=fill
    )
    theirs = td.ZipperLongest(
        *[td.IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)], fill_value=fill
    )
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_functional() -> None:
    assert list(IterableWrapper("a").zip_longest(IterableWrapper([1, 2]), fill_value=0)) == [("a", 1), (0, 2)]


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="zip_longest: every input must be an IterDataPipe, got list"):
        IterableWrapper([1]).zip_longest([2])


def test_len_unknown() -> None:
    with pytest.raises(TypeError, match="ZipperLongest instance doesn't have valid length"):
        len(IterableWrapper([1]).zip_longest(IterableWrapper(iter([2]))))


@pytest.mark.parametrize("sizes", SIZES)
def test_resumes(sizes) -> None:
    assert_resumes_identically(
        lambda: ZipperLongest(
            *[IterableWrapper(range(10 * i, 10 * i + n)).batch(2) for i, n in enumerate(sizes)]
        )
    )
