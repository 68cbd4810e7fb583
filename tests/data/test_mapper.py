from __future__ import annotations

import functools

import pytest

from loom.data.iter import IterableWrapper, Mapper

from ._checks import assert_resumes_identically
from ._oracle import torch_iter


def _add(a, b):
    return a + b


@pytest.mark.parametrize(
    ("data", "fn", "input_col", "output_col"),
    [
        (list(range(10)), lambda x: x * 3, None, None),
        ([(1, 2), (3, 4)], lambda x: x * 10, 1, None),
        ([(1, 2), (3, 4)], lambda x: -x, 0, -1),
        ([[1, 2, 5], [3, 4, 6]], _add, [0, 1], None),
        ([[1, 2, 5], [3, 4, 6]], _add, (0, 2), 1),
        ([{"a": 1, "b": 2}], lambda x: x + 100, "a", "c"),
        ([{"a": 1, "b": 2}], _add, ["a", "b"], None),
        ([(1, 2, 3)], _add, [2, 0], None),
        ([], lambda x: x, None, None),
    ],
)
def test_matches_torch(data, fn, input_col, output_col) -> None:
    import copy

    ours = list(IterableWrapper(copy.deepcopy(data)).map(fn, input_col=input_col, output_col=output_col))
    theirs = list(
        torch_iter.IterableWrapper(copy.deepcopy(data)).map(fn, input_col=input_col, output_col=output_col)
    )
    assert ours == theirs


def test_does_not_modify_the_input_element() -> None:
    rows = [{"a": 1}]
    out = list(IterableWrapper(rows, deepcopy=False).map(lambda x: x + 1, input_col="a"))
    assert out == [{"a": 2}] and rows == [{"a": 1}]


def test_len_and_functional_form() -> None:
    pipe = IterableWrapper(range(7)).map(str)
    assert isinstance(pipe, Mapper) and len(pipe) == 7
    with pytest.raises(TypeError, match="Mapper instance doesn't have valid length"):
        len(IterableWrapper(iter(range(3))).map(str))


def test_bad_arguments() -> None:
    src = IterableWrapper([1])
    with pytest.raises(TypeError, match="map: fn must be callable, got 3"):
        src.map(3)
    with pytest.raises(ValueError, match="output_col must be None when input_col is None"):
        src.map(str, output_col=1)
    with pytest.raises(ValueError, match="output_col must be a single index"):
        src.map(str, input_col=0, output_col=[1, 2])
    with pytest.raises(ValueError, match="takes 2 positional parameters"):
        src.map(_add, input_col=0)
    with pytest.raises(ValueError, match="takes 1 positional"):
        src.map(lambda x: x, input_col=[0, 1])
    with pytest.raises(TypeError, match="map: the source must be an IterDataPipe"):
        Mapper(3, str)


def test_partial_and_builtin_functions() -> None:
    assert list(IterableWrapper([1, 2]).map(functools.partial(_add, 10))) == [11, 12]
    assert list(IterableWrapper([(1, 2)]).map(max, input_col=[0, 1])) == [(2,)]


def test_resumes() -> None:
    assert_resumes_identically(
        lambda: IterableWrapper([(i, i) for i in range(12)]).map(lambda x: x * 2, input_col=0)
    )
