from __future__ import annotations

import pytest

from loom.data import set_graph_random_seed
from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter

DATA = [list(range(i * 10, i * 10 + i % 4)) for i in range(12)]


@pytest.mark.parametrize("buffer_size", [1, 3, 100])
def test_same_multiset_as_torchdata_and_inner_order_kept(buffer_size) -> None:
    td = torchdata_iter()
    ours = list(IterableWrapper(DATA).shuffled_flatmap(buffer_size=buffer_size))
    theirs = list(td.IterableWrapper(DATA).shuffled_flatmap(buffer_size=buffer_size))
    assert sorted(ours) == sorted(theirs) == sorted(x for row in DATA for x in row)
    for row in DATA:  # each element's own outputs keep their order
        assert [x for x in ours if x in row] == row
    if buffer_size == 1:
        assert ours == theirs


def test_seed_and_epochs() -> None:
    pipe = IterableWrapper(DATA).shuffled_flatmap(buffer_size=4)
    set_graph_random_seed(pipe, 1)
    a, b = list(pipe), list(pipe)
    set_graph_random_seed(pipe, 1)
    assert list(pipe) == a and a != b
    assert list(pipe.set_shuffle(False)) == [x for row in DATA for x in row]


def test_errors_and_len() -> None:
    with pytest.raises(ValueError, match="shuffled_flatmap: buffer_size must be >= 1, got 0"):
        IterableWrapper(DATA).shuffled_flatmap(buffer_size=0)
    assert len(IterableWrapper(DATA).shuffled_flatmap()) == sum(map(len, DATA))
    with pytest.raises(TypeError, match="length relies on the output"):
        len(IterableWrapper(DATA).shuffled_flatmap(list))


@pytest.mark.parametrize("buffer_size", [1, 3, 100])
def test_resumes(buffer_size) -> None:
    assert_resumes_identically(
        lambda: set_graph_random_seed(IterableWrapper(DATA).shuffled_flatmap(buffer_size=buffer_size), 4)
    )


def test_disabled_resumes() -> None:
    assert_resumes_identically(lambda: IterableWrapper(DATA).shuffled_flatmap().set_shuffle(False))
