"""Pipes that group elements into batches and back: Batcher, UnBatcher."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from loom.data._columns import check_int, check_source
from loom.data._datapipe import DataChunk, IterDataPipe, functional_datapipe

__all__ = ["Batcher", "UnBatcher"]


def _batches(src: Iterator[Any], size: int, drop_last: bool, wrap: Any) -> Iterator[Any]:
    # Each batch is taken whole inside one next() call, so no partial batch ever waits between
    # calls: the batcher needs no state of its own.
    while True:
        batch = list(islice(src, size))
        if len(batch) < size and (drop_last or not batch):
            return
        yield batch if wrap is list else wrap(batch)


@functional_datapipe("batch")
class Batcher(IterDataPipe):
    """Groups consecutive elements into batches of ``batch_size`` (functional name: ``batch``).

    Args:
        datapipe: the source pipe.
        batch_size: elements per batch, at least 1.
        drop_last: drop the last batch if it is short.
        wrapper_class: the batch type, built from a list (default ``DataChunk``, a list subclass).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(5)).batch(2))
        [[0, 1], [2, 3], [4]]
    """

    _repr_fields = ("batch_size", "drop_last")

    def __init__(
        self, datapipe: Any, batch_size: int, drop_last: bool = False, wrapper_class: Any = DataChunk
    ) -> None:
        check_source("batch", datapipe)
        check_int("batch", "batch_size", batch_size, 1)
        if not callable(wrapper_class):
            raise TypeError(f"batch: wrapper_class must be callable, got {wrapper_class!r}")
        self.source_datapipe = datapipe
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.wrapper_class = wrapper_class

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return _batches(srcs[0], self.batch_size, self.drop_last, self.wrapper_class)

    def __len__(self) -> int:
        n = self._source_len()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def _flatten(element: Any, level: int, out: list[Any], top_level: int) -> None:
    if level == 0:
        out.append(element)
    elif isinstance(element, list):
        for item in element:
            _flatten(item, level - 1 if level > 0 else -1, out, top_level)
    elif level == -1:
        out.append(element)
    else:
        raise IndexError(f"unbatch: unbatch_level {top_level} exceeds the depth of the element {element!r}")


class _UnBatchState:
    __slots__ = ("it", "items")

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.it = iter(items)

    def remaining(self) -> list[Any]:
        return self.items[len(self.items) - self.it.__length_hint__() :]  # type: ignore[attr-defined]


@functional_datapipe("unbatch")
class UnBatcher(IterDataPipe):
    """Undoes batching: yields the items of each batch (functional name: ``unbatch``).

    Args:
        datapipe: the source pipe.
        unbatch_level: how many levels of lists to open; ``-1`` opens all of them.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([[[0, 1], [2]], [[3]]]).unbatch(unbatch_level=2))
        [0, 1, 2, 3]
    """

    _repr_fields = ("unbatch_level",)

    def __init__(self, datapipe: Any, unbatch_level: int = 1) -> None:
        check_source("unbatch", datapipe)
        check_int("unbatch", "unbatch_level", unbatch_level, -1)
        self.source_datapipe = datapipe
        self.unbatch_level = unbatch_level

    def _init_state(self, ctx: Any) -> _UnBatchState:
        return _UnBatchState([])

    def _iterate(self, srcs: list[Iterator[Any]], state: _UnBatchState) -> Iterator[Any]:
        return self._run(srcs[0], state)

    def _run(self, src: Iterator[Any], state: _UnBatchState) -> Iterator[Any]:
        yield from state.it  # what a restored state still holds
        level = self.unbatch_level
        for element in src:
            items: list[Any] = []
            _flatten(element, level, items, level)
            state.items = items
            state.it = iter(items)
            yield from state.it

    def _save_state(self, state: _UnBatchState) -> dict[str, Any]:
        return {"pending": state.remaining()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _UnBatchState:
        pending = data.get("pending")
        if not isinstance(pending, list):
            raise RuntimeError(f"load_state_dict: UnBatcher expects a list 'pending', got {pending!r}")
        return _UnBatchState(list(pending))
