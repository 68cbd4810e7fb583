from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter


@pytest.mark.parametrize("limit", [None, 0, 1, 5, 10, 50])
def test_matches_torchdata(limit) -> None:
    td = torchdata_iter()
    ours = IterableWrapper(range(10)).header(limit)
    theirs = td.IterableWrapper(range(10)).header(limit)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_does_not_pull_past_the_limit() -> None:
    pulled = []

    def gen():
        for i in range(10):
            pulled.append(i)
            yield i

    assert list(IterableWrapper(gen(), deepcopy=False).header(3)) == [0, 1, 2]
    assert pulled == [0, 1, 2]


def test_bad_limit_and_unknown_len() -> None:
    with pytest.raises(ValueError, match="header: limit must be >= 0, got -1"):
        IterableWrapper([1]).header(-1)
    with pytest.raises(TypeError, match="header: limit must be an int"):
        IterableWrapper([1]).header(1.5)
    with pytest.raises(TypeError, match="Header instance doesn't have valid length"):
        len(IterableWrapper(iter([1])).header(1))


def test_state_of_a_larger_limit_is_an_error() -> None:
    it = iter(IterableWrapper(range(10)).header(8))
    next(it)
    with pytest.raises(RuntimeError, match="does not match limit=3"):
        iter(IterableWrapper(range(10)).header(3)).load_state_dict(it.state_dict())


@pytest.mark.parametrize("limit", [None, 0, 4, 30])
def test_resumes(limit) -> None:
    assert_resumes_identically(lambda: IterableWrapper(range(12)).header(limit))
