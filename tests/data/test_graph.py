from __future__ import annotations

import pytest

from loom.data import find_dps, list_dps, remove_dp, replace_dp, to_graph, traverse_dps
from loom.data.iter import Batcher, IterableWrapper, Mapper

from ._oracle import torch_iter


def _shape(graph):
    return {type(p).__name__: _shape(sub) for p, sub in graph.values()}


def test_traverse_matches_torch_shape() -> None:
    from torch.utils.data.graph import traverse_dps as torch_traverse

    ours = IterableWrapper(range(3)).map(str).batch(2)
    theirs = torch_iter.IterableWrapper(range(3)).map(str).batch(2)
    ours_shape = _shape(traverse_dps(ours))
    theirs_shape = _shape(torch_traverse(theirs))
    rename = {
        "BatcherIterDataPipe": "Batcher",
        "MapperIterDataPipe": "Mapper",
        "IterableWrapperIterDataPipe": "IterableWrapper",
    }

    def renamed(shape):
        return {rename[k]: renamed(v) for k, v in shape.items()}

    assert ours_shape == renamed(theirs_shape)


def test_list_and_find() -> None:
    src = IterableWrapper(range(3))
    out = src.map(str).map(len).batch(2)
    graph = traverse_dps(out)
    assert [type(p).__name__ for p in list_dps(graph)] == ["Batcher", "Mapper", "Mapper", "IterableWrapper"]
    assert find_dps(graph, Mapper) == [out.source_datapipe, out.source_datapipe.source_datapipe]
    assert find_dps(graph, Batcher) == [out]
    assert list_dps(graph, exclude_dps=out.source_datapipe) == [out]
    with pytest.raises(TypeError, match="find_dps: dp_type must be a class"):
        find_dps(graph, "Mapper")


def test_shared_source_listed_once() -> None:
    class Pair(IterableWrapper):
        def __init__(self, a, b):
            super().__init__([])
            self.parts = [a, b]

    src = IterableWrapper([1])
    pair = Pair(src.map(str), src)
    assert [type(p).__name__ for p in list_dps(traverse_dps(pair))] == ["Pair", "Mapper", "IterableWrapper"]


def test_replace_and_remove() -> None:
    out = IterableWrapper([1, 2, 3]).map(lambda x: x * 10).batch(2)
    replace_dp(traverse_dps(out), out.source_datapipe.source_datapipe, IterableWrapper([7]))
    assert list(out) == [[70]]
    graph = remove_dp(traverse_dps(out), out.source_datapipe)
    assert list(out) == [[7]]
    assert [type(p).__name__ for p in list_dps(graph)] == ["Batcher", "IterableWrapper"]
    with pytest.raises(RuntimeError, match="remove_dp: cannot remove IterableWrapper: it is a source"):
        remove_dp(graph, out.source_datapipe)
    new_graph = replace_dp(graph, out, IterableWrapper([0]))
    assert [type(p).__name__ for p in list_dps(new_graph)] == ["IterableWrapper"]


def test_to_graph_text_and_dot() -> None:
    out = IterableWrapper([1]).map(len).batch(2)
    assert to_graph(out).splitlines() == [
        "Batcher(batch_size=2, drop_last=False)",
        "└── Mapper(fn=len, input_col=None, output_col=None)",
        "    └── IterableWrapper",
    ]
    dot = to_graph(out, format="dot")
    assert dot.startswith("digraph") and "n2 -> n1;" in dot and "n1 -> n0;" in dot
    with pytest.raises(ValueError, match="to_graph: format must be 'text' or 'dot', got 'svg'"):
        to_graph(out, format="svg")
    with pytest.raises(TypeError, match="to_graph: expected an IterDataPipe"):
        to_graph([1])


def test_wrapped_data_is_not_walked() -> None:
    class Loud(list):
        def __iter__(self):
            raise AssertionError("the graph walk iterated the wrapped data")

    out = IterableWrapper(Loud([1, 2])).map(str)
    assert [type(p).__name__ for p in list_dps(traverse_dps(out))] == ["Mapper", "IterableWrapper"]
