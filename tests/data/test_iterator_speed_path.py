"""PipeIterator's C-level ``__next__`` (NOTE [next is the raw chain's own]): protocol and state still hold."""

from __future__ import annotations

import copy
import gc
import pickle

import pytest

from loom.data import profiling
from loom.data.iter import IterableWrapper


def _pipe(n: int = 20):  # type: ignore[no-untyped-def]
    return IterableWrapper(range(n)).map(lambda x: x * 3).filter(lambda x: x % 2 == 0)


def _reference(n: int = 20) -> list[int]:
    return [x * 3 for x in range(n) if (x * 3) % 2 == 0]


def test_for_loop_over_pipe_and_iterator_match_reference() -> None:
    assert list(_pipe()) == _reference()
    assert [x for x in _pipe()] == _reference()
    it = iter(_pipe())
    assert iter(it) is it
    assert [x for x in it] == _reference()
    with pytest.raises(StopIteration):
        next(it)


def test_next_and_for_loop_share_one_position() -> None:
    it = iter(_pipe())
    ref = _reference()
    got = [next(it)]
    for x in it:
        got.append(x)
        if len(got) == 3:
            got.append(next(it))
            break
    got.extend(it)
    assert got == ref


def test_state_dict_inside_a_for_loop_resumes() -> None:
    ref = _reference()
    it = iter(_pipe())
    states = []
    for x in it:
        states.append((x, it.state_dict()))
    for i, (_x, state) in enumerate(states):
        again = iter(_pipe())
        again.load_state_dict(state)
        assert list(again) == ref[i + 1 :]


def test_load_state_dict_inside_a_running_for_loop_switches_chains() -> None:
    ref = _reference()
    it = iter(_pipe())
    out: list[int] = []
    saved = None
    reloaded = False
    for x in it:
        out.append(x)
        if len(out) == 2:
            saved = it.state_dict()
        if len(out) == 5 and not reloaded:
            reloaded = True
            assert saved is not None
            it.load_state_dict(saved)
    assert out == ref[:5] + ref[2:]


def test_load_state_dict_inside_for_loop_over_the_pipe_iterator_of_for() -> None:
    # ``for x in pipe`` uses the iterator that ``iter(pipe)`` made; restoring another one leaves it alone
    pipe = _pipe()
    first = iter(pipe)
    next(first)
    state = first.state_dict()
    out = []
    for x in pipe:
        out.append(x)
        first.load_state_dict(state)
    assert out == _reference()
    assert list(first) == _reference()[1:]


def test_live_iterators_are_independent() -> None:
    ref = _reference()
    a, b = iter(_pipe()), iter(_pipe())
    assert type(a) is not type(b)
    assert next(a) == ref[0]
    assert list(b) == ref
    assert list(a) == ref[1:]
    kind = type(a)
    del a
    gc.collect()
    fresh = [iter(_pipe()) for _ in range(3)]
    assert all(list(f) == ref for f in fresh)
    assert len({type(f) for f in fresh}) == 3
    del kind


def test_dropped_iterator_releases_its_chain() -> None:
    closed = []

    def gen():  # type: ignore[no-untyped-def]
        try:
            yield from range(5)
        finally:
            closed.append(True)

    class Source(IterableWrapper):  # a plain generator at the root of the chain
        def _iterate(self, srcs, state):  # type: ignore[no-untyped-def]
            return gen()

    it = iter(Source([]))
    assert next(it) == 0
    kind = type(it)
    del it
    assert closed == [True]  # no cycle keeps the chain alive: released when the iterator goes
    with pytest.raises(StopIteration):
        next(kind.__new__(kind, None))  # type: ignore[call-arg]  # a released class yields nothing


def test_copy_and_pickle_are_refused() -> None:
    it = iter(_pipe())
    with pytest.raises(TypeError, match="cannot be copied or pickled"):
        copy.copy(it)
    with pytest.raises(TypeError, match="cannot be copied or pickled"):
        pickle.dumps(it)


def test_profile_inside_for_loop() -> None:
    try:
        profiling(True)
        it = iter(_pipe())
        for i, _x in enumerate(it):
            if i == 2:
                break
        rows = it.profile()
    finally:
        profiling(False)
    assert [r["produced"] for r in rows] == [3, 5, 5]
