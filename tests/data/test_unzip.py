from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper, UnZipper, Zipper

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter
from ._split_checks import assert_children_resume_in_lockstep

ROWS = [(i, -i, str(i)) for i in range(8)]


@pytest.mark.parametrize("skip", [None, [1], [0, 2]])
def test_matches_torchdata(skip) -> None:
    td = torchdata_iter()
    ours = IterableWrapper(ROWS).unzip(3, columns_to_skip=skip)
    theirs = td.IterableWrapper(ROWS).unzip(3, columns_to_skip=skip)
    assert [list(c) for c in ours] == [list(c) for c in theirs]
    assert [len(c) for c in ours] == [len(c) for c in theirs]
    ours = IterableWrapper(ROWS).unzip(3, columns_to_skip=skip)
    theirs = td.IterableWrapper(ROWS).unzip(3, columns_to_skip=skip)
    assert list(zip(*ours)) == list(zip(*theirs))


def test_buffer_bound() -> None:
    a, _ = IterableWrapper([(i, i) for i in range(10)]).unzip(2, buffer_size=2)
    with pytest.raises(BufferError, match=r"unzip: buffer overflow: child 0 .* ahead of child 1"):
        list(a)


@pytest.mark.parametrize(
    ("args", "kwargs", "err", "match"),
    [
        ((0,), {}, ValueError, "unzip: sequence_length must be >= 1"),
        ((2,), {"columns_to_skip": [0, 1]}, ValueError, "unzip: columns_to_skip=.* skips every column"),
        (
            (2,),
            {"columns_to_skip": [5]},
            ValueError,
            r"unzip: columns_to_skip must hold ints in \[0, 1\], got 5",
        ),
        ((2,), {"buffer_size": 0}, ValueError, "unzip: buffer_size must be >= 1"),
    ],
)
def test_bad_arguments(args, kwargs, err, match) -> None:
    with pytest.raises(err, match=match):
        IterableWrapper(ROWS).unzip(*args, **kwargs)
    with pytest.raises(TypeError, match="unzip: the source must be an IterDataPipe"):
        UnZipper(ROWS, 3)


def test_resumes() -> None:
    assert_resumes_identically(lambda: Zipper(*IterableWrapper(ROWS).unzip(3, columns_to_skip=[1])))
    assert_children_resume_in_lockstep(lambda: IterableWrapper(ROWS).unzip(3))
