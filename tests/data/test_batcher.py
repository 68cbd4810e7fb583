from __future__ import annotations

import pytest

from loom.data import DataChunk
from loom.data.iter import Batcher, IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torch_iter


@pytest.mark.parametrize("n", [0, 1, 5, 8, 9])
@pytest.mark.parametrize("size", [1, 3, 4, 20])
@pytest.mark.parametrize("drop_last", [False, True])
def test_matches_torch(n, size, drop_last) -> None:
    ours = IterableWrapper(range(n)).batch(size, drop_last=drop_last)
    theirs = torch_iter.IterableWrapper(range(n)).batch(size, drop_last=drop_last)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)
    assert all(type(b) is DataChunk for b in ours)


def test_wrapper_class() -> None:
    assert list(IterableWrapper(range(4)).batch(2, wrapper_class=tuple)) == [(0, 1), (2, 3)]
    assert [type(b) for b in Batcher(IterableWrapper(range(2)), 2, wrapper_class=list)] == [list]


@pytest.mark.parametrize(
    ("size", "err"), [(0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError)]
)
def test_bad_batch_size(size, err) -> None:
    with pytest.raises(err, match="batch: batch_size must be"):
        IterableWrapper([1]).batch(size)


def test_len_unknown() -> None:
    with pytest.raises(TypeError, match="Batcher instance doesn't have valid length"):
        len(IterableWrapper(iter([1])).batch(2))


@pytest.mark.parametrize("drop_last", [False, True])
def test_resumes(drop_last) -> None:
    assert_resumes_identically(lambda: IterableWrapper(range(23)).batch(5, drop_last=drop_last))
