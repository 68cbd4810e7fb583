"""Dropper, Slicer, Flattener, Rows2Columnar: element reshaping, compared with torchdata."""

from __future__ import annotations

import warnings

import pytest

from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter

SEQ_ROWS = [(0, 1, 2, 3), [4, 5, 6, 7]]
DICT_ROWS = [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]
ROWS = SEQ_ROWS + DICT_ROWS


def _both(build):
    td = torchdata_iter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = list(build(td.IterableWrapper))
        ours = list(build(IterableWrapper))
    return ours, theirs


@pytest.mark.parametrize(
    ("rows", "indices"),
    [(SEQ_ROWS, 0), (SEQ_ROWS, [0, 2]), (SEQ_ROWS, 3), (DICT_ROWS, "a"), (DICT_ROWS, ["a", "c"])],
)
def test_drop(rows, indices) -> None:
    ours, theirs = _both(lambda W: W(rows).drop(indices))
    assert ours == theirs


def test_mixed_index_types_warn_instead_of_crashing() -> None:
    with pytest.warns(UserWarning, match="drop: index 'a' is not present"):
        assert list(IterableWrapper([(1, 2)]).drop("a")) == [(1, 2)]


def test_drop_warns_on_missing_and_non_containers() -> None:
    with pytest.warns(UserWarning, match="drop: index 9 is not present"):
        list(IterableWrapper([(1, 2)]).drop(9))
    with pytest.warns(UserWarning, match="drop: the element is not a list, tuple or dict"):
        list(IterableWrapper([5]).drop(0))


@pytest.mark.parametrize(
    ("rows", "index", "stop", "step"),
    [
        (SEQ_ROWS, 0, 2, None),
        (SEQ_ROWS, 1, None, None),
        (SEQ_ROWS, 0, None, 2),
        (SEQ_ROWS, [0, 3], None, None),
        (DICT_ROWS, "b", None, None),
        (DICT_ROWS, "z", None, None),
        (DICT_ROWS, ["a", "b"], None, None),
    ],
)
def test_slice(rows, index, stop, step) -> None:
    ours, theirs = _both(lambda W: W(rows).slice(index, stop, step))
    assert ours == theirs


def test_slice_errors() -> None:
    with pytest.raises(ValueError, match="slice: a list of indices cannot be combined with stop/step"):
        IterableWrapper(ROWS).slice([0], 2)
    with pytest.raises(ValueError, match="slice: step must not be 0"):
        IterableWrapper(ROWS).slice(0, 2, 0)


SEQ_NESTED = [(0, (1, 2), [3, (4,)]), [[5], 6]]
DICT_NESTED = [{"a": {"x": 1, "y": 2}, "b": 3, "c": {"z": 4}}]
NESTED = SEQ_NESTED + DICT_NESTED


@pytest.mark.parametrize(
    ("rows", "indices"),
    [(NESTED, None), (SEQ_NESTED, 1), (SEQ_NESTED, [0, 1]), (DICT_NESTED, "a"), (DICT_NESTED, ["a", "c"])],
)
def test_flatten(rows, indices) -> None:
    ours, theirs = _both(lambda W: W(rows).flatten(indices))
    assert ours == theirs


def test_flatten_duplicate_key_warns() -> None:
    with pytest.warns(UserWarning, match="flatten: the same key came twice"):
        list(IterableWrapper([{"a": {"b": 1}, "b": 2}]).flatten())


@pytest.mark.parametrize(
    ("batches", "names"),
    [
        ([[{"a": 1, "b": 2}, {"a": 3, "b": 4}], [{"a": 5, "b": 6}]], None),
        ([[{"a": 1, "b": 2}, {"a": 3, "b": 4}]], ["b"]),
        ([[[1, 2], [3, 4]]], ["x", "y"]),
    ],
)
def test_rows2columnar(batches, names) -> None:
    ours, theirs = _both(lambda W: W(batches).rows2columnar(names))
    assert ours == theirs


def test_rows2columnar_too_few_names() -> None:
    with pytest.raises(ValueError, match="rows2columnar: a list row has 2 values but column_names has 1"):
        list(IterableWrapper([[[1, 2]]]).rows2columnar(["x"]))


def test_lengths() -> None:
    for pipe in (
        IterableWrapper(ROWS).drop(0),
        IterableWrapper(ROWS).slice(0),
        IterableWrapper(NESTED).flatten(),
    ):
        assert len(pipe) == len(pipe.source_datapipe)


def test_resumes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_resumes_identically(lambda: IterableWrapper(SEQ_ROWS * 3).drop([0, 2]).slice(0, 1))
        assert_resumes_identically(lambda: IterableWrapper(NESTED).flatten())
    assert_resumes_identically(lambda: IterableWrapper([[{"a": i}] * 2 for i in range(4)]).rows2columnar())
