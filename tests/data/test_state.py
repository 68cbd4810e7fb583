"""The iterator-state protocol: format, plain data, mismatch errors, profiling."""

from __future__ import annotations

import pytest

from loom.data import profiling, set_graph_random_seed
from loom.data.iter import IterableWrapper

from ._checks import assert_plain, assert_resumes_identically, roundtrip


def test_state_nests_sources_under_source() -> None:
    it = iter(IterableWrapper(range(10)).map(str).batch(3))
    next(it)
    state = it.state_dict()
    assert state["version"] == 1 and state["pipe"] == "Batcher"
    assert state["source"]["pipe"] == "Mapper"
    assert state["source"]["source"] == {"pipe": "IterableWrapper", "state": {"index": 3}}
    assert_plain(state)
    assert roundtrip(state) == state


def test_state_from_a_different_pipeline_is_an_error() -> None:
    it = iter(IterableWrapper(range(10)).map(str).batch(3))
    next(it)
    state = it.state_dict()
    other = iter(IterableWrapper(range(10)).filter(bool).batch(3))
    with pytest.raises(
        RuntimeError, match=r"at root\.source it holds 'Mapper', but this pipeline has 'Filter'"
    ):
        other.load_state_dict(state)
    shorter = iter(IterableWrapper(range(10)).batch(3))
    with pytest.raises(RuntimeError, match="different pipeline"):
        shorter.load_state_dict(state)
    with pytest.raises(RuntimeError, match=r"not a loom\.data iterator state"):
        other.load_state_dict({"pipe": "Batcher"})


def test_restored_iterator_can_be_saved_again() -> None:
    def build():
        return set_graph_random_seed(IterableWrapper(range(40)).shuffle(buffer_size=8).batch(3), 5)

    ref = list(build())
    it = iter(build())
    for _ in range(4):
        next(it)
    second = iter(build())
    second.load_state_dict(it.state_dict())
    next(second)
    third = iter(build())
    third.load_state_dict(second.state_dict())
    assert list(third) == ref[5:]


def test_long_chain_resumes() -> None:
    assert_resumes_identically(
        lambda: set_graph_random_seed(
            IterableWrapper(range(40))
            .map(lambda x: x * 3)
            .filter(lambda x: x % 2 == 0)
            .shuffle(buffer_size=6)
            .batch(4)
            .unbatch()
            .header(15),
            11,
        )
    )


def test_profiling_counts_each_stage() -> None:
    assert profiling() is False
    try:
        profiling(True)
        it = iter(IterableWrapper(range(10)).filter(lambda x: x < 7).batch(2))
        first = next(it)
        rows = it.profile()
        rest = list(it)
    finally:
        profiling(False)
    assert [first, *rest] == [[0, 1], [2, 3], [4, 5], [6]]
    assert [(r["pipe"], r["produced"]) for r in rows] == [
        ("Batcher", 1),
        ("Filter", 2),
        ("IterableWrapper", 2),
    ]
    assert [r["produced"] for r in it.profile()] == [4, 7, 10]
    plain = iter(IterableWrapper(range(3)))
    assert plain.profile()[0]["produced"] is None


def test_profiling_keeps_state() -> None:
    try:
        profiling(True)
        assert_resumes_identically(lambda: IterableWrapper(range(9)).map(str).batch(2))
    finally:
        profiling(False)


def test_shared_node_is_built_once_per_iteration() -> None:
    from collections.abc import Iterator
    from typing import Any

    from loom.data import IterDataPipe

    class Box(IterDataPipe):
        _shared_in_iteration = True

        def __init__(self, source_datapipe):
            self.source_datapipe = source_datapipe

        def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Any:
            return srcs[0]

    class Take(IterDataPipe):
        def __init__(self, box, n):
            self.box, self.n = box, n

        def _sources(self):
            return (self.box,)

        def _iterate(self, srcs, state):
            import itertools

            return itertools.islice(srcs[0], self.n)

    class Both(IterDataPipe):
        def __init__(self, a, b):
            self.a, self.b = a, b

        def _sources(self):
            return (self.a, self.b)

        def _iterate(self, srcs, state):
            return iter(list(srcs[0]) + list(srcs[1]))

    box = Box(IterableWrapper(range(6)))
    # Both readers share one iteration of the box: the second continues where the first stopped.
    assert list(Both(Take(box, 2), Take(box, 10))) == [0, 1, 2, 3, 4, 5]
    it = iter(Both(Take(box, 2), Take(box, 10)))
    assert it.state_dict()["sources"][0]["source"]["pipe"] == "Box"
