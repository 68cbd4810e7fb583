"""Cycler, Repeater, LengthSetter, InMemoryCacheHolder (iterable)."""

from __future__ import annotations

import pytest

from loom.data import set_graph_random_seed
from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter


@pytest.mark.parametrize("count", [0, 1, 3])
def test_cycle_matches_torchdata(count) -> None:
    td = torchdata_iter()
    assert list(IterableWrapper("ab").cycle(count)) == list(td.IterableWrapper("ab").cycle(count))
    assert len(IterableWrapper("ab").cycle(count)) == len(td.IterableWrapper("ab").cycle(count))


def test_cycle_forever_and_empty() -> None:
    it = iter(IterableWrapper([1, 2]).cycle())
    assert [next(it) for _ in range(5)] == [1, 2, 1, 2, 1]
    assert list(IterableWrapper([]).cycle()) == []  # torchdata would spin forever
    with pytest.raises(TypeError, match="cycles forever"):
        len(IterableWrapper([1]).cycle())
    with pytest.raises(ValueError, match="cycle: count must be >= 0, got -1"):
        IterableWrapper([1]).cycle(-1)


def test_cycle_reshuffles_each_pass() -> None:
    out = list(set_graph_random_seed(IterableWrapper(range(20)).shuffle().cycle(2), 0))
    assert sorted(out[:20]) == sorted(out[20:]) == list(range(20))
    assert out[:20] != out[20:]


def test_cycle_resumes() -> None:
    assert_resumes_identically(lambda: IterableWrapper(range(4)).cycle(3))
    assert_resumes_identically(lambda: set_graph_random_seed(IterableWrapper(range(5)).shuffle().cycle(3), 2))
    assert_resumes_identically(lambda: IterableWrapper(range(3)).cycle().header(10))


@pytest.mark.parametrize("times", [2, 3])
def test_repeat_matches_torchdata(times) -> None:
    td = torchdata_iter()
    assert list(IterableWrapper("ab").repeat(times)) == list(td.IterableWrapper("ab").repeat(times))
    assert len(IterableWrapper("ab").repeat(times)) == 2 * times


def test_repeat_errors_and_resume() -> None:
    with pytest.raises(ValueError, match="repeat: times must be >= 2, got 1"):
        IterableWrapper([1]).repeat(1)
    assert_resumes_identically(lambda: IterableWrapper(range(4)).repeat(3))


def test_set_length() -> None:
    td = torchdata_iter()
    assert len(IterableWrapper(iter([1, 2])).set_length(7)) == len(
        td.IterableWrapper(iter([1, 2])).set_length(7)
    )
    with pytest.raises(ValueError, match="set_length: length must be >= 0, got -1"):
        IterableWrapper([1]).set_length(-1)
    assert_resumes_identically(lambda: IterableWrapper(range(3)).set_length(3))


def test_in_memory_cache_reads_the_source_once() -> None:
    calls = []

    def record(x):
        calls.append(x)
        return x

    pipe = IterableWrapper(range(4)).map(record).in_memory_cache()
    assert list(pipe) == list(pipe) == [0, 1, 2, 3]
    assert calls == [0, 1, 2, 3]
    td = torchdata_iter()
    assert list(td.IterableWrapper(range(4)).in_memory_cache()) == list(pipe)


def test_in_memory_cache_size_bound() -> None:
    calls = []
    pipe = IterableWrapper(["x" * 400_000] * 5).map(lambda s: calls.append(1) or s).in_memory_cache(size=1)
    assert list(pipe) == list(pipe)
    assert len(calls) == 10  # too big to cache: read twice
    with pytest.raises(ValueError, match="in_memory_cache: size must be >= 1"):
        IterableWrapper([1]).in_memory_cache(size=0)


def test_in_memory_cache_resumes_filling_and_replaying() -> None:
    assert_resumes_identically(lambda: IterableWrapper(range(6)).in_memory_cache())
    pipe = IterableWrapper(range(6)).in_memory_cache()
    list(pipe)  # filled: later iterators replay

    it = iter(pipe)
    next(it)
    state = it.state_dict()
    assert state["state"] == {"replaying": True, "pending": [1, 2, 3, 4, 5]}
    fresh = iter(IterableWrapper(range(6)).in_memory_cache())
    fresh.load_state_dict(state)
    assert list(fresh) == [1, 2, 3, 4, 5]
