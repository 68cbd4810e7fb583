"""Map-style pipes: Mapper, Batcher, InMemoryCacheHolder, IterToMapConverter; and Shuffler, an iterable over a map."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from loom.data._columns import check_fn, check_int
from loom.data._datapipe import DataChunk, IterDataPipe, MapDataPipe, functional_datapipe, register_as
from loom.data.iter._combinatorics import Shuffler as _IterShuffler
from loom.data.iter._common import Pending, load_list

__all__ = ["Batcher", "InMemoryCacheHolder", "IterToMapConverter", "Mapper", "Shuffler"]


def _check_map_source(call: str, source: Any) -> None:
    if not isinstance(source, MapDataPipe):
        raise TypeError(f"{call}: the source must be a MapDataPipe, got {type(source).__name__}")


def _identity(x: Any) -> Any:
    return x


@functional_datapipe("map")
class Mapper(MapDataPipe):
    """``dp[i]`` is ``fn(source[i])`` (functional name: ``map``).

    Example:
        >>> from loom.data.map import SequenceWrapper
        >>> SequenceWrapper([1, 2]).map(lambda x: -x)[1]
        -2
    """

    _repr_fields = ("fn",)

    def __init__(self, datapipe: MapDataPipe, fn: Callable[[Any], Any] = _identity) -> None:
        _check_map_source("map", datapipe)
        check_fn("map", "fn", fn)
        self.datapipe = datapipe
        self.fn = fn

    def __getitem__(self, index: Any) -> Any:
        return self.fn(self.datapipe[index])

    def __len__(self) -> int:
        return len(self.datapipe)


@functional_datapipe("batch")
class Batcher(MapDataPipe):
    """``dp[i]`` is the ``i``-th batch of ``batch_size`` consecutive items (functional name: ``batch``).

    Example:
        >>> from loom.data.map import SequenceWrapper
        >>> dp = SequenceWrapper(range(5)).batch(2)
        >>> len(dp), dp[2]
        (3, [4])
    """

    _repr_fields = ("batch_size", "drop_last")

    def __init__(
        self, datapipe: MapDataPipe, batch_size: int, drop_last: bool = False, wrapper_class: Any = DataChunk
    ) -> None:
        _check_map_source("batch", datapipe)
        check_int("batch", "batch_size", batch_size, 1)
        self.datapipe = datapipe
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.wrapper_class = wrapper_class

    def __getitem__(self, index: int) -> Any:
        batch: list[Any] = []
        start = index * self.batch_size
        try:
            for i in range(start, start + self.batch_size):
                batch.append(self.datapipe[i])
        except IndexError as err:
            if self.drop_last or not batch:
                raise IndexError(f"Batcher: index {index} is out of range") from err
        return self.wrapper_class(batch)

    def __len__(self) -> int:
        n = len(self.datapipe)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


@functional_datapipe("in_memory_cache")
class InMemoryCacheHolder(MapDataPipe):
    """Caches each item the first time it is read (functional name: ``in_memory_cache``).

    Example:
        >>> from loom.data.map import SequenceWrapper
        >>> dp = SequenceWrapper([1, 2]).in_memory_cache()
        >>> dp[0], dp[0]
        (1, 1)
    """

    _data_attrs = ("cache",)

    def __init__(self, source_dp: MapDataPipe) -> None:
        _check_map_source("in_memory_cache", source_dp)
        self.source_dp = source_dp
        self.cache: dict[Any, Any] = {}

    def __getitem__(self, index: Any) -> Any:
        if index not in self.cache:
            self.cache[index] = self.source_dp[index]
        return self.cache[index]

    def __len__(self) -> int:
        return len(self.source_dp)


class IterToMapConverter(MapDataPipe):
    """A MapDataPipe over the ``(key, value)`` pairs of an IterDataPipe, loaded on first use (functional name: ``to_map_datapipe``).

    Args:
        datapipe: yields pairs, or elements that ``key_value_fn`` turns into pairs.
        key_value_fn: element -> ``(key, value)``.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> dp = IterableWrapper(["a", "bb"]).to_map_datapipe(lambda s: (len(s), s))
        >>> dp[2]
        'bb'
    """

    _data_attrs = ("_map",)

    def __init__(self, datapipe: IterDataPipe, key_value_fn: Callable[[Any], Any] | None = None) -> None:
        if not isinstance(datapipe, IterDataPipe):
            raise TypeError(
                f"to_map_datapipe: the source must be an IterDataPipe, got {type(datapipe).__name__}"
            )
        if key_value_fn is not None:
            check_fn("to_map_datapipe", "key_value_fn", key_value_fn)
        self.datapipe = datapipe
        self.key_value_fn = key_value_fn
        self._map: dict[Any, Any] | None = None

    def _load(self) -> dict[Any, Any]:
        if self._map is None:
            loaded: dict[Any, Any] = {}
            for d in self.datapipe:
                pair = d if self.key_value_fn is None else self.key_value_fn(d)
                try:
                    key, value = pair
                except (TypeError, ValueError) as err:
                    raise ValueError(
                        f"to_map_datapipe: each element must be a (key, value) pair, got {pair!r}"
                    ) from err
                loaded[key] = value
            self._map = loaded
        return self._map

    def __getitem__(self, index: Any) -> Any:
        try:
            return self._load()[index]
        except KeyError as err:
            raise IndexError(f"Index {index} is invalid for IterToMapConverter.") from err

    def __len__(self) -> int:
        return len(self._load())


register_as(IterDataPipe, "to_map_datapipe", IterToMapConverter)


class Shuffler(IterDataPipe):
    """Iterates a MapDataPipe in a random order of its indices (functional name: ``shuffle`` on map pipes).

    Seeded from the graph like the iterable ``Shuffler``; every epoch draws a new order. The order's
    remainder is the iterator state.

    Args:
        datapipe: the MapDataPipe.
        indices: the indices to visit (default ``range(len(datapipe))``).

    Example:
        >>> from loom.data import set_graph_random_seed
        >>> from loom.data.map import SequenceWrapper
        >>> sorted(set_graph_random_seed(SequenceWrapper("abc").shuffle(), 0))
        ['a', 'b', 'c']
    """

    _is_random = True
    _data_attrs = ("indices",)

    def __init__(self, datapipe: MapDataPipe, *, indices: list[Any] | None = None) -> None:
        _check_map_source("shuffle", datapipe)
        self.datapipe = datapipe
        self.indices = list(range(len(datapipe))) if indices is None else list(indices)
        self._enabled = True
        self._seed: int | None = None
        self._epoch = 0

    set_shuffle = _IterShuffler.set_shuffle
    set_seed = _IterShuffler.set_seed

    def _sources(self) -> tuple[Any, ...]:
        return ()

    def _init_state(self, ctx: Any) -> Pending:
        if not self._enabled:
            return Pending(list(self.indices))
        rng = random.Random(ctx.seed_for(self))
        return Pending(rng.sample(self.indices, len(self.indices)))

    def _iterate(self, srcs: list[Iterator[Any]], state: Pending) -> Iterator[Any]:
        return map(self.datapipe.__getitem__, state.it)

    def _save_state(self, state: Pending) -> dict[str, Any]:
        return {"pending_indices": state.remaining()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Pending:
        return Pending(load_list("Shuffler", data, "pending_indices"))

    def __len__(self) -> int:
        return len(self.indices)


register_as(MapDataPipe, "shuffle", Shuffler)
