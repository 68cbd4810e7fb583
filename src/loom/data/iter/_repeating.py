"""Pipes that yield their source more than once: Cycler, Repeater, InMemoryCacheHolder."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from loom.data._columns import check_int, check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._common import Pending, load_list

__all__ = ["Cycler", "InMemoryCacheHolder", "Repeater"]


class _CycleState:
    __slots__ = ("done", "produced")

    def __init__(self, done: int, produced: bool) -> None:
        self.done = done
        self.produced = produced


@functional_datapipe("cycle")
class Cycler(IterDataPipe):
    """Yields the source ``count`` times, or forever if ``count`` is None (functional name: ``cycle``).

    Each pass is a new epoch of the source (random pipes in it reshuffle). An empty source ends the
    cycle instead of looping forever.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([1, 2]).cycle(2))
        [1, 2, 1, 2]
    """

    _restarts_sources = True
    _repr_fields = ("count",)

    def __init__(self, source_datapipe: Any, count: int | None = None) -> None:
        check_source("cycle", source_datapipe)
        if count is not None:
            check_int("cycle", "count", count, 0)
        self.source_datapipe = source_datapipe
        self.count = count

    def _init_state(self, ctx: Any) -> _CycleState:
        return _CycleState(0, False)

    def _iterate(self, srcs: list[Any], state: _CycleState) -> Iterator[Any]:
        return self._run(srcs[0], state)

    def _run(self, handle: Any, state: _CycleState) -> Iterator[Any]:
        count = self.count
        it = handle.it
        while count is None or state.done < count:
            for x in it:
                state.produced = True
                yield x
            if not state.produced:  # an empty pass: stop rather than spin forever
                state.done = count if count is not None else state.done
                return
            state.done += 1
            state.produced = False
            if count is not None and state.done >= count:
                return
            it = handle.restart()

    def _save_state(self, state: _CycleState) -> dict[str, Any]:
        return {"cycles_done": state.done, "produced_this_cycle": state.produced}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _CycleState:
        done = data.get("cycles_done")
        if not isinstance(done, int) or done < 0:
            raise RuntimeError(f"load_state_dict: Cycler expects a non-negative 'cycles_done', got {done!r}")
        return _CycleState(done, bool(data.get("produced_this_cycle")))

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError("Cycler instance cycles forever, and therefore doesn't have valid length")
        return self.count * self._source_len()


@functional_datapipe("repeat")
class Repeater(IterDataPipe):
    """Yields each element ``times`` times in a row (functional name: ``repeat``).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([1, 2]).repeat(2))
        [1, 1, 2, 2]
    """

    _repr_fields = ("times",)

    def __init__(self, source_datapipe: Any, times: int) -> None:
        check_source("repeat", source_datapipe)
        check_int("repeat", "times", times, 2)
        self.source_datapipe = source_datapipe
        self.times = times

    def _init_state(self, ctx: Any) -> Pending:
        return Pending([])

    def _iterate(self, srcs: list[Iterator[Any]], state: Pending) -> Iterator[Any]:
        return self._run(srcs[0], state)

    def _run(self, src: Iterator[Any], state: Pending) -> Iterator[Any]:
        yield from state.it
        times = self.times
        for x in src:
            yield from state.reset([x] * times)

    def _save_state(self, state: Pending) -> dict[str, Any]:
        return {"pending": state.remaining()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Pending:
        return Pending(load_list("Repeater", data, "pending"))

    def __len__(self) -> int:
        return self.times * self._source_len()


class _FillState:
    __slots__ = ("bytes", "cache", "caching")

    def __init__(self, caching: bool) -> None:
        self.cache: list[Any] = []
        self.caching = caching
        self.bytes = 0


@functional_datapipe("in_memory_cache")
class InMemoryCacheHolder(IterDataPipe):
    """Caches the source's elements in memory during the first epoch and replays them afterwards (functional name: ``in_memory_cache``).

    Args:
        source_dp: the source pipe.
        size: a bound in megabytes (measured with ``sys.getsizeof`` per element). If the source
            outgrows it, nothing is cached and every epoch reads the source, so memory stays bounded.

    An epoch restored from a state taken while the cache was filling does not fill it (its first
    part is missing); the next epoch does. A state taken while replaying holds the rest of the replay.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> pipe = IterableWrapper(range(3)).in_memory_cache()
        >>> list(pipe), list(pipe)
        ([0, 1, 2], [0, 1, 2])
    """

    _repr_fields = ("size",)
    _data_attrs = ("_cache",)

    def __init__(self, source_dp: Any, size: int | None = None) -> None:
        check_source("in_memory_cache", source_dp)
        if size is not None:
            check_int("in_memory_cache", "size", size, 1)
        self.source_datapipe = source_dp
        self.size = size
        self._cache: list[Any] | None = None

    def _init_state(self, ctx: Any) -> Any:
        return _FillState(True) if self._cache is None else Pending(self._cache)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        if isinstance(state, Pending):
            return state.it
        return self._fill(srcs[0], state)

    def _fill(self, src: Iterator[Any], state: _FillState) -> Iterator[Any]:
        limit = None if self.size is None else self.size * 1024 * 1024
        cache = state.cache
        for x in src:
            if state.caching:
                cache.append(x)
                if limit is not None:
                    state.bytes += sys.getsizeof(x)
                    if state.bytes > limit:
                        state.caching = False
                        cache.clear()
            yield x
        if state.caching:
            self._cache = cache

    def _save_state(self, state: Any) -> dict[str, Any]:
        if isinstance(state, Pending):
            return {"replaying": True, "pending": state.remaining()}
        return {"replaying": False}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Any:
        if data.get("replaying"):
            return Pending(load_list("InMemoryCacheHolder", data, "pending"))
        return _FillState(False)

    def __len__(self) -> int:
        try:
            return self._source_len()
        except TypeError:
            if self._cache is not None:
                return len(self._cache)
            raise
