"""The base classes: custom pipes (torchdata's tutorial style), the registry, len, repr, pickling."""

from __future__ import annotations

import pickle

import pytest
import torch.utils.data

import loom.data._datapipe as datapipe_module
from loom.data import IterDataPipe, MapDataPipe, functional_datapipe
from loom.data.iter import IterableWrapper, Mapper
from loom.data.map import SequenceWrapper


@functional_datapipe("test_repeat_each")
class RepeatEach(IterDataPipe):
    """As in torchdata's tutorial: a plain generator __iter__."""

    def __init__(self, source_dp, times=2):
        self.source_dp = source_dp
        self.times = times

    def __iter__(self):
        for x in self.source_dp:
            for _ in range(self.times):
                yield x

    def __len__(self):
        return len(self.source_dp) * self.times


def test_pipes_are_torch_datasets() -> None:
    assert isinstance(IterableWrapper([1]), torch.utils.data.IterableDataset)
    assert isinstance(SequenceWrapper([1]), torch.utils.data.Dataset)


def test_custom_pipe_chains_both_ways() -> None:
    src = IterableWrapper(range(3))
    assert list(src.test_repeat_each(times=2).map(lambda x: x * 10)) == [0, 0, 10, 10, 20, 20]
    assert list(RepeatEach(src.map(str), 1).batch(2)) == [["0", "1"], ["2"]]
    assert len(src.test_repeat_each(3)) == 9


def test_custom_pipe_state_is_a_clear_error() -> None:
    it = iter(IterableWrapper(range(3)).test_repeat_each().map(str))
    assert next(it) == "0"
    with pytest.raises(RuntimeError, match=r"RepeatEach \(at root.source\) is not resumable"):
        it.state_dict()


class CountUp(IterDataPipe):
    """A custom pipe whose iterator saves its own state: used as is."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return _CountIter(self.n)


class _CountIter:
    def __init__(self, n):
        self.i, self.n = 0, n

    def __iter__(self):
        return self

    def __next__(self):
        if self.i >= self.n:
            raise StopIteration
        self.i += 1
        return self.i - 1

    def state_dict(self):
        return {"i": self.i}

    def load_state_dict(self, state):
        self.i = state["i"]


def test_custom_iterator_with_state_is_resumable() -> None:
    from ._checks import assert_resumes_identically

    assert_resumes_identically(lambda: CountUp(7).map(lambda x: x * x).batch(2))


def test_pipe_without_iter() -> None:
    class Empty(IterDataPipe):
        pass

    with pytest.raises(NotImplementedError, match="Empty is an IterDataPipe without __iter__"):
        iter(Empty())


def test_registry_errors() -> None:
    with pytest.raises(ValueError, match="already taken by Mapper"):

        @functional_datapipe("map")
        class Other(IterDataPipe):
            pass

    with pytest.raises(TypeError, match="is not an IterDataPipe or MapDataPipe subclass"):
        functional_datapipe("x_not_a_pipe")(int)
    with pytest.raises(ValueError, match="name must be an identifier"):
        functional_datapipe("not valid")


def test_map_style_registry_is_separate() -> None:
    @functional_datapipe("test_negate_all")
    class Negate(MapDataPipe):
        def __init__(self, src):
            self.src = src

        def __getitem__(self, i):
            return -self.src[i]

        def __len__(self):
            return len(self.src)

    assert list(SequenceWrapper([1, 2]).test_negate_all()) == [-1, -2]
    assert not hasattr(IterableWrapper([1]), "test_negate_all")


def test_len_errors_name_the_pipe() -> None:
    with pytest.raises(
        TypeError, match="Mapper instance doesn't have valid length: its source IterableWrapper"
    ):
        len(IterableWrapper(iter([])).map(str))


def test_repr_and_str() -> None:
    pipe = IterableWrapper([1]).batch(4, drop_last=True)
    assert repr(pipe) == "Batcher(batch_size=4, drop_last=True)" == str(pipe)
    assert repr(IterableWrapper([1]).map(len)) == "Mapper(fn=len, input_col=None, output_col=None)"
    assert "<lambda>" in repr(IterableWrapper([1]).map(lambda x: x))


def _triple(x):
    return 3 * x


def test_pickle_roundtrip_plain_functions() -> None:
    pipe = IterableWrapper(range(5)).map(_triple).batch(2)
    assert list(pickle.loads(pickle.dumps(pipe))) == list(pipe)


def test_pickle_lambdas_with_dill() -> None:
    pytest.importorskip("dill")
    offset = 7
    pipe = IterableWrapper(range(5)).map(lambda x: x + offset).filter(lambda x: x % 2 == 0)
    assert list(pickle.loads(pickle.dumps(pipe))) == list(pipe)


def test_pickle_lambdas_without_dill(monkeypatch) -> None:
    monkeypatch.setattr(datapipe_module, "_dill", None)
    pipe = IterableWrapper(range(5)).map(lambda x: x + 1)
    with pytest.raises(
        pickle.PicklingError, match=r"cannot pickle Mapper: its fn=.*<lambda> .*install `dill`"
    ):
        pickle.dumps(pipe)
    assert isinstance(pickle.loads(pickle.dumps(IterableWrapper([1]).map(_triple))), Mapper)


def test_two_iterators_are_independent() -> None:
    pipe = IterableWrapper(range(4)).batch(2)
    a, b = iter(pipe), iter(pipe)
    assert next(a) == [0, 1]
    assert next(b) == [0, 1]
    assert next(a) == [2, 3]


def test_subscripted_bases_as_in_torchdata() -> None:
    class Ints(IterDataPipe[int]):
        def __iter__(self):
            yield from (1, 2)

    class Squares(MapDataPipe[int]):
        def __getitem__(self, i):
            return i * i

        def __len__(self):
            return 3

    assert list(Ints().map(str)) == ["1", "2"]
    assert list(Squares()) == [0, 1, 4]


def test_custom_reset_runs_before_each_iterator_as_in_torch() -> None:
    from torch.utils.data.datapipes.datapipe import IterDataPipe as TorchIterDataPipe

    def make(base):
        class Counting(base):
            def __init__(self):
                self.resets = 0

            def reset(self):
                self.resets += 1

            def __iter__(self):
                yield self.resets

        return Counting()

    ours, theirs = make(IterDataPipe), make(TorchIterDataPipe)
    assert [list(ours), list(ours)] == [list(theirs), list(theirs)] == [[1], [2]]
