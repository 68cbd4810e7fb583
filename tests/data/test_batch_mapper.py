from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter


def _sums(batch):
    return [sum(batch)] * len(batch)


def _firsts(batch):
    return [row[0] for row in batch]


@pytest.mark.parametrize(
    ("data", "fn", "size", "input_col"),
    [
        (list(range(7)), _sums, 3, None),
        (list(range(7)), _sums, 1, None),
        ([(1, 2), (3, 4), (5, 6)], _sums, 2, 1),
        ([(1, 2, 9), (3, 4, 9)], _firsts, 2, [2, 0]),
        ([], _sums, 4, None),
    ],
)
def test_matches_torchdata(data, fn, size, input_col) -> None:
    td = torchdata_iter()
    ours = list(IterableWrapper(data).map_batches(fn, size, input_col=input_col))
    assert ours == list(td.IterableWrapper(data).map_batches(fn, size, input_col=input_col))


def test_errors() -> None:
    with pytest.raises(ValueError, match="map_batches: batch_size must be >= 1, got 0"):
        IterableWrapper([1]).map_batches(_sums, 0)
    with pytest.raises(TypeError, match="map_batches: fn must be callable"):
        IterableWrapper([1]).map_batches(None, 2)
    with pytest.raises(TypeError, match="length relies on the output"):
        len(IterableWrapper([1]).map_batches(_sums, 2))


def test_resumes() -> None:
    assert_resumes_identically(
        lambda: IterableWrapper(range(11)).map_batches(lambda b: [x * 2 for x in b if x % 3], 4)
    )
