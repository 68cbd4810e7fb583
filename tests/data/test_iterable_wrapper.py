from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torch_iter


@pytest.mark.parametrize("data", [[], [1, 2, 3], (4, 5), range(7), "abc", {"a": 1, "b": 2}, {3, 1, 2}])
def test_matches_torch(data) -> None:
    assert list(IterableWrapper(data)) == list(torch_iter.IterableWrapper(data))
    assert len(IterableWrapper(data)) == len(data)


def test_deepcopy_protects_the_next_epoch() -> None:
    rows = [{"x": 1}]
    pipe = IterableWrapper(rows)
    for row in pipe:
        row["x"] = 99
    assert list(pipe) == [{"x": 1}]
    shallow = IterableWrapper(rows, deepcopy=False)
    for row in shallow:
        row["x"] = 99
    assert rows == [{"x": 99}]


def test_list_changes_between_epochs_show_up() -> None:
    data = [1, 2]
    pipe = IterableWrapper(data)
    assert list(pipe) == [1, 2]
    data.append(3)
    assert list(pipe) == [1, 2, 3]


def test_one_shot_iterator() -> None:
    pipe = IterableWrapper(iter([1, 2, 3]), deepcopy=False)
    it = iter(pipe)
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="one-shot iterator"):
        it.state_dict()
    with pytest.raises(TypeError, match="IterableWrapper instance doesn't have valid length"):
        len(pipe)


def test_not_iterable() -> None:
    with pytest.raises(TypeError, match="IterableWrapper: iterable must be iterable, got int"):
        IterableWrapper(3)


def test_state_from_a_longer_source_is_an_error() -> None:
    it = iter(IterableWrapper(range(10)))
    for _ in range(8):
        next(it)
    short = iter(IterableWrapper(range(5)))
    with pytest.raises(RuntimeError, match="at element 8 but the iterable has only 5"):
        short.load_state_dict(it.state_dict())


class _Reiterable:
    def __iter__(self):
        return iter([10, 20, 30, 40])


@pytest.mark.parametrize(
    "build", [lambda: list(range(9)), lambda: tuple(range(5)), lambda: range(6), lambda: "hello"]
)
def test_resumes_positional(build) -> None:
    assert_resumes_identically(lambda: IterableWrapper(build()))


def test_resumes_reiterable() -> None:
    assert_resumes_identically(lambda: IterableWrapper(_Reiterable()))
    assert_resumes_identically(lambda: IterableWrapper({"a": 1, "b": 2, "c": 3}))
