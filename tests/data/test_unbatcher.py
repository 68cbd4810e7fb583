from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torch_iter

NESTED = [[[0, 1], [2]], [[3, 4], [5]], [[6]], []]


@pytest.mark.parametrize("level", [-1, 0, 1, 2])
def test_matches_torch(level) -> None:
    assert list(IterableWrapper(NESTED).unbatch(level)) == list(
        torch_iter.IterableWrapper(NESTED).unbatch(level)
    )


def test_too_deep_is_an_error() -> None:
    with pytest.raises(IndexError):
        list(torch_iter.IterableWrapper(NESTED).unbatch(3))
    with pytest.raises(IndexError, match="unbatch: unbatch_level 3 exceeds the depth"):
        list(IterableWrapper(NESTED).unbatch(3))


def test_batch_then_unbatch_is_identity() -> None:
    assert list(IterableWrapper(range(11)).batch(3).unbatch()) == list(range(11))


def test_bad_level() -> None:
    with pytest.raises(ValueError, match="unbatch: unbatch_level must be >= -1, got -2"):
        IterableWrapper(NESTED).unbatch(-2)


@pytest.mark.parametrize("level", [-1, 1, 2])
def test_resumes(level) -> None:
    assert_resumes_identically(lambda: IterableWrapper(NESTED).unbatch(level))
