from __future__ import annotations

import pytest

from loom.data.iter import FlatMapper, IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter


def _pair(a, b):
    return [a, b]


@pytest.mark.parametrize(
    ("data", "fn", "input_col"),
    [
        ([1, 2, 3], lambda x: [x] * x, None),
        ([[1, 2], [], [3]], None, None),
        ([(1, 2), (3, 4)], _pair, [0, 1]),
        ([{"k": "ab"}, {"k": ""}], list, "k"),
        ([], None, None),
    ],
)
def test_matches_torchdata(data, fn, input_col) -> None:
    td = torchdata_iter()
    assert list(IterableWrapper(data).flatmap(fn, input_col=input_col)) == list(
        td.IterableWrapper(data).flatmap(fn, input_col=input_col)
    )


def test_errors() -> None:
    with pytest.raises(TypeError, match="flatmap: fn must be callable"):
        FlatMapper(IterableWrapper([1]), 5)
    with pytest.raises(ValueError, match="takes 2 positional parameters"):
        IterableWrapper([1]).flatmap(_pair, input_col=0)
    with pytest.raises(TypeError, match="length relies on the output of its function"):
        len(IterableWrapper([1]).flatmap())


def test_resumes() -> None:
    assert_resumes_identically(lambda: IterableWrapper([0, 3, 1, 0, 2]).flatmap(lambda x: list(range(x))))
