"""Source pipes that do no I/O: IterableWrapper, MapToIterConverter."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator, Sized
from itertools import islice
from operator import itemgetter
from typing import Any

from loom.data._datapipe import IterDataPipe

__all__ = ["IterableWrapper", "MapToIterConverter"]

_ATOMIC = frozenset({int, float, complex, str, bytes, bool, type(None)})
# Iterators of these types report their position (__length_hint__) and can be moved (__setstate__).
_POSITIONAL = (list, tuple, range, str, bytes)
_second = itemgetter(1)


def snapshot(iterable: Any, deepcopy: bool, call: str) -> Any:
    """A copy of ``iterable`` for one epoch, so downstream in-place changes cannot leak into the next."""
    if not deepcopy or isinstance(iterable, (range, str, bytes)):
        return iterable
    if isinstance(iterable, (list, tuple)) and set(map(type, iterable)) <= _ATOMIC:
        return list(iterable) if isinstance(iterable, list) else iterable  # immutable elements
    try:
        return copy.deepcopy(iterable)
    except TypeError:
        warnings.warn(
            f"{call}: the input iterable can not be deepcopied, so in-place modification would "
            "affect the source data",
            UserWarning,
            stacklevel=4,
        )
        return iterable


class _SourceState:
    __slots__ = ("counted", "data", "it")

    def __init__(self, data: Any) -> None:
        self.data = data
        self.counted: Any = None  # the enumerate object when position is counted
        if isinstance(data, _POSITIONAL):
            self.it: Iterator[Any] = iter(data)
        else:
            self.counted = enumerate(data)
            self.it = map(_second, self.counted)

    def position(self) -> int:
        if self.counted is None:
            return int(len(self.data) - self.it.__length_hint__())  # type: ignore[attr-defined]
        return int(self.counted.__reduce__()[1][1])


class IterableWrapper(IterDataPipe):
    """Wraps an iterable as an IterDataPipe (torchdata's ``IterableWrapper``).

    Args:
        iterable: any iterable; lists, tuples, ranges and strings resume by position, other
            re-iterable objects by skipping the elements already produced; a one-shot iterator
            (a generator) iterates once and is not resumable.
        deepcopy: copy the iterable at the start of each epoch, so that in-place changes made
            downstream do not leak into the next epoch (lists of numbers and strings are copied
            shallowly, which is equivalent).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(3)))
        [0, 1, 2]
    """

    _data_attrs = ("iterable",)

    def __init__(self, iterable: Iterable[Any], deepcopy: bool = True) -> None:
        if not hasattr(iterable, "__iter__") and not hasattr(iterable, "__getitem__"):
            raise TypeError(f"IterableWrapper: iterable must be iterable, got {type(iterable).__name__}")
        self.iterable = iterable
        self.deepcopy = deepcopy

    def _init_state(self, ctx: Any) -> _SourceState:
        return _SourceState(snapshot(self.iterable, self.deepcopy, "IterableWrapper"))

    def _iterate(self, srcs: list[Iterator[Any]], state: _SourceState) -> Iterator[Any]:
        return state.it

    def _one_shot(self) -> bool:
        return iter(self.iterable) is self.iterable

    def _save_state(self, state: _SourceState) -> dict[str, Any]:
        if self._one_shot():
            raise RuntimeError(
                "state_dict: IterableWrapper over a one-shot iterator "
                f"({type(self.iterable).__name__}) is not resumable; wrap a list or a re-iterable object"
            )
        return {"index": state.position()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _SourceState:
        index = data.get("index")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise RuntimeError(
                f"load_state_dict: IterableWrapper expects a non-negative 'index', got {index!r}"
            )
        if isinstance(self.iterable, Sized) and index > len(self.iterable):
            raise RuntimeError(
                f"load_state_dict: IterableWrapper state is at element {index} but the iterable has "
                f"only {len(self.iterable)}: the state comes from a different pipeline"
            )
        state = self._init_state(ctx)
        if state.counted is None:
            state.it.__setstate__(index)  # type: ignore[attr-defined]
        else:
            next(islice(state.it, index, index), None)  # a re-iterable without positions: skip
        return state

    def __len__(self) -> int:
        if isinstance(self.iterable, Sized):
            return len(self.iterable)
        raise TypeError(
            f"IterableWrapper instance doesn't have valid length: {type(self.iterable).__name__} has none"
        )


class MapToIterConverter(IterDataPipe):
    """Iterates a MapDataPipe over ``indices`` (functional name: ``to_iter_datapipe`` on map pipes).

    Args:
        datapipe: the MapDataPipe.
        indices: the indices to read, in order (default ``range(len(datapipe))``).

    Example:
        >>> from loom.data.map import SequenceWrapper
        >>> list(SequenceWrapper("abc").to_iter_datapipe())
        ['a', 'b', 'c']
    """

    _data_attrs = ("indices",)

    def __init__(self, datapipe: Any, indices: list[Any] | None = None) -> None:
        from loom.data._datapipe import MapDataPipe

        if not isinstance(datapipe, MapDataPipe):
            raise TypeError(
                f"to_iter_datapipe: the source must be a MapDataPipe, got {type(datapipe).__name__}"
            )
        self.datapipe = datapipe
        self.indices = list(indices) if indices else range(len(datapipe))

    def _sources(self) -> tuple[Any, ...]:
        return ()

    def _init_state(self, ctx: Any) -> Iterator[Any]:
        return iter(self.indices)

    def _iterate(self, srcs: list[Iterator[Any]], state: Iterator[Any]) -> Iterator[Any]:
        return map(self.datapipe.__getitem__, state)

    def _save_state(self, state: Iterator[Any]) -> dict[str, Any]:
        return {"index": len(self.indices) - state.__length_hint__()}  # type: ignore[attr-defined]

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Iterator[Any]:
        index = data.get("index")
        if not isinstance(index, int) or not 0 <= index <= len(self.indices):
            raise RuntimeError(
                f"load_state_dict: MapToIterConverter expects an 'index' in [0, {len(self.indices)}], got {index!r}"
            )
        it = iter(self.indices)
        it.__setstate__(index)  # type: ignore[attr-defined]
        return it

    def __len__(self) -> int:
        return len(self.indices)


def _register() -> None:
    from loom.data._datapipe import MapDataPipe, register_as

    register_as(MapDataPipe, "to_iter_datapipe", MapToIterConverter)


_register()
