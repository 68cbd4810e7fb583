from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper, MapKeyZipper
from loom.data.map import SequenceWrapper

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter, torchdata_map

TABLE = {"a": 100, "b": 200, "c": 300}
ITEMS = [("a", 1), ("c", 3), ("b", 2), ("a", 4)]


def first(x):  # type: ignore[no-untyped-def]
    return x[0]


def merge(item, value):  # type: ignore[no-untyped-def]
    return item[1] + value


@pytest.mark.parametrize("keep_key", [False, True])
@pytest.mark.parametrize("merge_fn", [None, merge])
def test_matches_torchdata(keep_key, merge_fn) -> None:
    td, tdm = torchdata_iter(), torchdata_map()
    ours = IterableWrapper(ITEMS).zip_with_map(
        SequenceWrapper(TABLE), first, merge_fn=merge_fn, keep_key=keep_key
    )
    theirs = td.IterableWrapper(ITEMS).zip_with_map(
        tdm.SequenceWrapper(TABLE), first, merge_fn=merge_fn, keep_key=keep_key
    )
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_missing_key() -> None:
    pipe = IterableWrapper([("z", 0)]).zip_with_map(SequenceWrapper(TABLE), first)
    with pytest.raises(
        KeyError, match="zip_with_map: key_fn maps \\('z', 0\\) to 'z', which is not a valid key"
    ):
        list(pipe)
    with pytest.raises(KeyError, match="to 5, which is not a valid key"):
        list(IterableWrapper([5]).zip_with_map(SequenceWrapper([1, 2]), lambda x: x))


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="zip_with_map: map_datapipe must be a MapDataPipe, got dict"):
        IterableWrapper(ITEMS).zip_with_map(TABLE, first)
    with pytest.raises(TypeError, match="zip_with_map: source_iterdatapipe must be an IterDataPipe"):
        MapKeyZipper(ITEMS, SequenceWrapper(TABLE), first)
    with pytest.raises(TypeError, match="zip_with_map: key_fn must be callable"):
        IterableWrapper(ITEMS).zip_with_map(SequenceWrapper(TABLE), None)


def test_len_unknown() -> None:
    with pytest.raises(TypeError, match="MapKeyZipper instance doesn't have valid length"):
        len(IterableWrapper(iter(ITEMS)).zip_with_map(SequenceWrapper(TABLE), first))


def test_resumes() -> None:
    assert_resumes_identically(
        lambda: IterableWrapper(ITEMS * 3).zip_with_map(
            SequenceWrapper(TABLE), first, merge_fn=merge, keep_key=True
        )
    )
