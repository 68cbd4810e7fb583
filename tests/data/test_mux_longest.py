from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper, MultiplexerLongest

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter

SIZES = [[3], [0, 2], [5, 3, 4], [2, 2], [1, 4, 0]]


@pytest.mark.parametrize("sizes", SIZES)
def test_matches_torchdata(sizes) -> None:
    td = torchdata_iter()
    ours = MultiplexerLongest(*[IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)])
    theirs = td.MultiplexerLongest(
        *[td.IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)]
    )
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_functional() -> None:
    assert list(IterableWrapper("abc").mux_longest(IterableWrapper([1]))) == ["a", 1, "b", "c"]


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="mux_longest: every input must be an IterDataPipe, got list"):
        IterableWrapper([1]).mux_longest([2])


def test_bad_state() -> None:
    build = lambda: IterableWrapper(range(4)).mux_longest(IterableWrapper(range(2)))  # noqa: E731
    state = iter(build()).state_dict()
    state["state"]["finished"] = [True]
    with pytest.raises(RuntimeError, match="MultiplexerLongest expects 2 flags in 'finished', got 1"):
        iter(build()).load_state_dict(state)


@pytest.mark.parametrize("sizes", SIZES)
def test_resumes(sizes) -> None:
    assert_resumes_identically(
        lambda: MultiplexerLongest(*[IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)])
    )
