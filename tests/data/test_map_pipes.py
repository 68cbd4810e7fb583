"""Map-style pipes and the converters, compared with torch / torchdata."""

from __future__ import annotations

import pytest

from loom.data import set_graph_random_seed
from loom.data.iter import IterableWrapper, MapToIterConverter
from loom.data.map import IterToMapConverter, SequenceWrapper

from ._checks import assert_resumes_identically
from ._oracle import torch_map, torchdata_map


def test_map_mapper_and_batcher_match_torch() -> None:
    ours = SequenceWrapper(range(7)).map(lambda x: x * 2)
    theirs = torch_map.SequenceWrapper(range(7)).map(lambda x: x * 2)
    assert [ours[i] for i in range(7)] == [theirs[i] for i in range(7)] and len(ours) == 7
    for drop_last in (False, True):
        ob = SequenceWrapper(range(7)).batch(3, drop_last=drop_last)
        tb = torch_map.SequenceWrapper(range(7)).batch(3, drop_last=drop_last)
        assert len(ob) == len(tb)
        assert [ob[i] for i in range(len(ob))] == [tb[i] for i in range(len(tb))]
        with pytest.raises(IndexError):
            ob[len(ob)]
    with pytest.raises(ValueError, match="batch: batch_size must be >= 1"):
        SequenceWrapper([1]).batch(0)
    with pytest.raises(TypeError, match="map: the source must be a MapDataPipe"):
        from loom.data.map import Mapper

        Mapper(IterableWrapper([1]), str)


def test_map_in_memory_cache() -> None:
    calls = []
    dp = SequenceWrapper(range(3)).map(lambda x: calls.append(x) or x).in_memory_cache()
    assert [dp[0], dp[0], dp[2]] == [0, 0, 2] and calls == [0, 2]
    assert len(dp) == 3
    td = torchdata_map()
    assert td.SequenceWrapper(range(3)).in_memory_cache()[1] == dp[1]


def test_map_shuffle() -> None:
    pipe = SequenceWrapper("abcdefgh").shuffle()
    theirs = torch_map.SequenceWrapper("abcdefgh").shuffle()
    set_graph_random_seed(pipe, 0)
    a, b = list(pipe), list(pipe)
    assert sorted(a) == sorted(b) == sorted(theirs) and a != b
    set_graph_random_seed(pipe, 0)
    assert list(pipe) == a
    assert list(SequenceWrapper("abc").shuffle(indices=[2, 0]).set_shuffle(False)) == ["c", "a"]
    assert len(pipe) == 8
    assert_resumes_identically(lambda: set_graph_random_seed(SequenceWrapper("abcdefg").shuffle(), 1))


def test_converters_match_torchdata() -> None:
    td = torchdata_map()
    pairs = [("a", 1), ("b", 2), ("a", 3)]
    ours = IterableWrapper(pairs).to_map_datapipe()
    assert isinstance(ours, IterToMapConverter)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchdata warns on the duplicate key
        theirs = td.IterToMapConverter(td.SequenceWrapper(pairs).to_iter_datapipe())
        assert (ours["a"], ours["b"], len(ours)) == (theirs["a"], theirs["b"], len(theirs))
    with pytest.raises(IndexError, match="Index z is invalid for IterToMapConverter"):
        ours["z"]
    with pytest.raises(ValueError, match="to_map_datapipe: each element must be a"):
        IterableWrapper([1]).to_map_datapipe()[0]
    keyed = IterableWrapper(["x", "yy"]).to_map_datapipe(lambda s: (len(s), s))
    assert keyed[2] == "yy"
    back = SequenceWrapper("abcd").to_iter_datapipe(indices=[3, 1])
    assert isinstance(back, MapToIterConverter) and list(back) == ["d", "b"] and len(back) == 2
    assert list(SequenceWrapper("abc").to_iter_datapipe()) == list(
        td.SequenceWrapper("abc").to_iter_datapipe()
    )
    with pytest.raises(TypeError, match="to_iter_datapipe: the source must be a MapDataPipe"):
        MapToIterConverter(IterableWrapper([1]))
    assert_resumes_identically(lambda: SequenceWrapper("abcdef").to_iter_datapipe().map(str.upper))
