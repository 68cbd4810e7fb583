from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper
from loom.data.map import Concater, SequenceWrapper, UnZipper, Zipper

from ._checks import assert_resumes_identically
from ._oracle import torch_map, torchdata_map

SIZES = [[3], [0, 2], [2, 0, 3]]


@pytest.mark.parametrize("sizes", SIZES)
def test_concat_matches_torch(sizes) -> None:
    ours = Concater(*[SequenceWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)])
    theirs = torch_map.Concater(
        *[torch_map.SequenceWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)]
    )
    assert len(ours) == len(theirs)
    assert [ours[i] for i in range(len(ours))] == [theirs[i] for i in range(len(theirs))]
    assert list(ours) == list(theirs)
    if len(ours):
        assert ours[-1] == ours[len(ours) - 1]
    with pytest.raises(IndexError, match=f"concat: index {len(ours)} is out of range for length {len(ours)}"):
        ours[len(ours)]
    with pytest.raises(TypeError, match="concat: index must be an int, got 'a'"):
        ours["a"]


@pytest.mark.parametrize("sizes", SIZES)
def test_zip_matches_torch(sizes) -> None:
    ours = Zipper(*[SequenceWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)])
    theirs = torch_map.Zipper(
        *[torch_map.SequenceWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)]
    )
    assert len(ours) == len(theirs)
    assert list(ours) == list(theirs)
    with pytest.raises(IndexError, match="zip: index 9 is out of range for input 0"):
        ours[9]


def test_functional_names() -> None:
    a, b = SequenceWrapper([1, 2]), SequenceWrapper("xy")
    assert list(a.concat(b)) == [1, 2, "x", "y"]
    assert list(a.zip(b)) == [(1, "x"), (2, "y")]


@pytest.mark.parametrize("skip", [None, [0], [1, 2]])
def test_unzip_matches_torchdata(skip) -> None:
    tdm = torchdata_map()
    rows = [(i, -i, str(i)) for i in range(5)]
    ours = SequenceWrapper(rows).unzip(3, columns_to_skip=skip)
    theirs = tdm.SequenceWrapper(rows).unzip(3, columns_to_skip=skip)
    assert [list(c) for c in ours] == [list(c) for c in theirs]
    assert [len(c) for c in ours] == [len(c) for c in theirs]


@pytest.mark.parametrize(
    ("call", "err", "match"),
    [
        (lambda: Concater(), ValueError, "concat: expected at least one MapDataPipe, got nothing"),
        (
            lambda: Concater(SequenceWrapper([1]), [2]),
            TypeError,
            "concat: every input must be a MapDataPipe, got list at position 1",
        ),
        (
            lambda: Zipper(IterableWrapper([1])),
            TypeError,
            "zip: every input must be a MapDataPipe, got IterableWrapper",
        ),
        (lambda: Zipper(), ValueError, "zip: expected at least one MapDataPipe"),
        (lambda: UnZipper([1], 1), TypeError, "unzip: the source must be a MapDataPipe, got list"),
        (lambda: SequenceWrapper([(1,)]).unzip(0), ValueError, "unzip: sequence_length must be >= 1"),
        (lambda: SequenceWrapper([(1,)]).unzip(1, columns_to_skip=[0]), ValueError, "skips every column"),
        (
            lambda: SequenceWrapper([(1,)]).unzip(2, columns_to_skip=[2]),
            ValueError,
            r"columns_to_skip must hold ints in \[0, 1\]",
        ),
    ],
)
def test_bad_arguments(call, err, match) -> None:
    with pytest.raises(err, match=match):
        call()


def test_resumes_through_to_iter_datapipe() -> None:
    rows = [(i, str(i)) for i in range(6)]
    assert_resumes_identically(
        lambda: SequenceWrapper(range(4)).concat(SequenceWrapper(range(10, 13))).to_iter_datapipe()
    )
    assert_resumes_identically(lambda: Zipper(*SequenceWrapper(rows).unzip(2)).to_iter_datapipe())
