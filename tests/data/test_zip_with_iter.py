from __future__ import annotations

import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loom.data.iter import IterableWrapper, IterKeyZipper

from ._checks import assert_resumes_identically, until_buffer_error
from ._oracle import torchdata_iter


def first(x):  # type: ignore[no-untyped-def]
    return x[0]


def merge(a, b):  # type: ignore[no-untyped-def]
    return a[1] + b[1]


def _data(n: int, seed: int):  # type: ignore[no-untyped-def]
    src = [(i, i) for i in range(n)]
    ref = [(i, 100 * i) for i in range(n)]
    random.Random(seed).shuffle(ref)
    return src, ref


@pytest.mark.parametrize("n", [0, 1, 12])
@pytest.mark.parametrize("keep_key", [False, True])
@pytest.mark.parametrize("merge_fn", [None, merge])
def test_matches_torchdata(n, keep_key, merge_fn) -> None:
    td = torchdata_iter()
    src, ref = _data(n, n)
    ours = IterableWrapper(src).zip_with_iter(
        IterableWrapper(ref), first, keep_key=keep_key, merge_fn=merge_fn
    )
    theirs = td.IterableWrapper(src).zip_with_iter(
        td.IterableWrapper(ref), first, keep_key=keep_key, merge_fn=merge_fn
    )
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_ref_key_fn() -> None:
    td = torchdata_iter()
    ref = [{"id": i, "v": -i} for i in (2, 0, 1)]
    ours = IterableWrapper(range(3)).zip_with_iter(
        IterableWrapper(ref), lambda x: x, ref_key_fn=lambda r: r["id"]
    )
    theirs = td.IterableWrapper(range(3)).zip_with_iter(
        td.IterableWrapper(ref), lambda x: x, ref_key_fn=lambda r: r["id"]
    )
    assert list(ours) == list(theirs)


def test_small_buffer_drops_oldest_with_a_warning() -> None:
    td = torchdata_iter()
    src = [(i, i) for i in range(6)]
    ref = [(i, i) for i in (5, 4, 3, 2, 1, 0)]
    with pytest.warns(UserWarning, match=r"zip_with_iter: the buffer is full \(buffer_size=2\)"):
        ours = until_buffer_error(
            iter(IterableWrapper(src).zip_with_iter(IterableWrapper(ref), first, buffer_size=2))
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = until_buffer_error(
            iter(td.IterableWrapper(src).zip_with_iter(td.IterableWrapper(ref), first, buffer_size=2))
        )
    assert ours == theirs and ours[1]
    with (
        pytest.warns(UserWarning),
        pytest.raises(BufferError, match=r"ended without an element of key 3 .*raise buffer_size"),
    ):
        list(IterableWrapper(src).zip_with_iter(IterableWrapper(ref), first, buffer_size=2))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 15), buffer_size=st.one_of(st.none(), st.integers(1, 8)), seed=st.integers(0, 1000))
def test_matches_torchdata_property(n, buffer_size, seed) -> None:
    td = torchdata_iter()
    src, ref = _data(n, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = until_buffer_error(
            iter(IterableWrapper(src).zip_with_iter(IterableWrapper(ref), first, buffer_size=buffer_size))
        )
        theirs = until_buffer_error(
            iter(
                td.IterableWrapper(src).zip_with_iter(td.IterableWrapper(ref), first, buffer_size=buffer_size)
            )
        )
    assert ours == theirs


def test_errors_while_iterating() -> None:
    with pytest.raises(ValueError, match="zip_with_iter: ref_datapipe has the key 1 twice"):
        list(IterableWrapper([(0, 0)]).zip_with_iter(IterableWrapper([(1, 1), (1, 2), (0, 0)]), first))
    with pytest.raises(BufferError, match="ref_datapipe ended without an element of key 3"):
        list(IterableWrapper([(3, 0)]).zip_with_iter(IterableWrapper([(1, 1)]), first))


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        (
            {"ref_datapipe": [1], "key_fn": first},
            TypeError,
            "zip_with_iter: ref_datapipe must be an IterDataPipe, got list",
        ),
        (
            {"ref_datapipe": IterableWrapper([1]), "key_fn": 3},
            TypeError,
            "zip_with_iter: key_fn must be callable",
        ),
        (
            {"ref_datapipe": IterableWrapper([1]), "key_fn": first, "buffer_size": 0},
            ValueError,
            "buffer_size must be None or a positive int, got 0",
        ),
        (
            {"ref_datapipe": IterableWrapper([1]), "key_fn": first, "merge_fn": 1},
            TypeError,
            "merge_fn must be callable",
        ),
    ],
)
def test_bad_arguments(kwargs, err, match) -> None:
    with pytest.raises(err, match=match):
        IterableWrapper([1]).zip_with_iter(**kwargs)
    with pytest.raises(TypeError, match="zip_with_iter: source_datapipe must be an IterDataPipe"):
        IterKeyZipper([1], IterableWrapper([1]), first)


def test_resumes() -> None:
    src, ref = _data(15, 1)
    assert_resumes_identically(
        lambda: IterableWrapper(src).zip_with_iter(IterableWrapper(ref), first, keep_key=True, merge_fn=merge)
    )
    assert_resumes_identically(
        lambda: IterableWrapper(src).zip_with_iter(IterableWrapper(ref).batch(1).unbatch(), first)
    )
