from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper, Multiplexer

from ._checks import assert_resumes_identically
from ._oracle import torch_iter

SIZES = [[3], [0, 2], [5, 3, 4], [2, 2], [4, 4, 3]]


@pytest.mark.parametrize("sizes", SIZES)
def test_matches_torch(sizes) -> None:
    ours = Multiplexer(*[IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)])
    theirs = torch_iter.Multiplexer(
        *[torch_iter.IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)]
    )
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_functional_and_empty() -> None:
    assert list(IterableWrapper("ab").mux(IterableWrapper([1, 2]))) == ["a", 1, "b", 2]
    assert list(Multiplexer()) == []


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="mux: every input must be an IterDataPipe, got list"):
        IterableWrapper([1]).mux([2])


def test_len_unknown() -> None:
    with pytest.raises(TypeError, match="Multiplexer instance doesn't have valid length"):
        len(IterableWrapper([1]).mux(IterableWrapper(iter([2]))))


def test_bad_state() -> None:
    it = iter(IterableWrapper(range(4)).mux(IterableWrapper(range(4))))
    state = it.state_dict()
    state["state"]["pending"] = [1, 2, 3]
    with pytest.raises(RuntimeError, match="Multiplexer holds at most 1 pending elements, got 3"):
        iter(IterableWrapper(range(4)).mux(IterableWrapper(range(4)))).load_state_dict(state)


@pytest.mark.parametrize("sizes", SIZES)
def test_resumes(sizes) -> None:
    assert_resumes_identically(
        lambda: Multiplexer(*[IterableWrapper(range(10 * i, 10 * i + n)) for i, n in enumerate(sizes)])
    )
