from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter


@pytest.mark.parametrize("start", [0, 5, -2])
def test_enumerate_matches_torchdata(start) -> None:
    td = torchdata_iter()
    assert list(IterableWrapper("abcd").enumerate(start)) == list(td.IterableWrapper("abcd").enumerate(start))
    assert len(IterableWrapper("abcd").enumerate(start)) == 4


def test_add_index_matches_torchdata() -> None:
    td = torchdata_iter()
    rows = [{"a": i} for i in range(4)]
    assert list(IterableWrapper(rows).add_index("i")) == list(td.IterableWrapper(rows).add_index("i"))
    with pytest.raises(NotImplementedError, match="add_index: only dict elements can get an index, got int"):
        list(IterableWrapper([1]).add_index())


def test_bad_start() -> None:
    with pytest.raises(TypeError, match="enumerate: starting_index must be an int"):
        IterableWrapper([1]).enumerate("0")


def test_resumes() -> None:
    assert_resumes_identically(lambda: IterableWrapper(range(9)).filter(lambda x: x % 2 == 0).enumerate(3))
    assert_resumes_identically(lambda: IterableWrapper([{"a": i} for i in range(6)]).add_index())
