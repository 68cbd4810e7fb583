"""Pipes that join by key: IterKeyZipper (with another IterDataPipe) and MapKeyZipper (with a MapDataPipe)."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from loom.data._columns import check_fn
from loom.data._datapipe import IterDataPipe, MapDataPipe, functional_datapipe
from loom.data.iter._common import load_list

__all__ = ["IterKeyZipper", "MapKeyZipper"]


class _KeyBuffer:
    __slots__ = ("buffer", "warned")

    def __init__(self, buffer: OrderedDict[Any, Any], warned: bool) -> None:
        self.buffer = buffer
        self.warned = warned


@functional_datapipe("zip_with_iter")
class IterKeyZipper(IterDataPipe):
    """Joins each element of ``source_datapipe`` with the element of ``ref_datapipe`` that has the same key (functional name: ``zip_with_iter``).

    Output follows ``source_datapipe``. Reference elements read while looking for a key wait in a
    buffer of at most ``buffer_size`` (+1) entries; when it is full the oldest is dropped with a
    warning, as in torchdata. The buffer is part of the iterator state.

    Args:
        source_datapipe: the pipe whose order the output follows.
        ref_datapipe: the pipe searched for matching keys (each key at most once).
        key_fn: the key of a ``source_datapipe`` element.
        ref_key_fn: the key of a ``ref_datapipe`` element (default ``key_fn``).
        keep_key: yield ``(key, merged)`` instead of ``merged``.
        buffer_size: the buffer bound, at least 1, or ``None`` for no bound.
        merge_fn: combines the two elements (default: a tuple).

    Raises:
        BufferError: (while iterating) ``ref_datapipe`` ended without the key of a source element.
        ValueError: (while iterating) ``ref_datapipe`` has a key twice.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> src = IterableWrapper([("a", 1), ("b", 2)])
        >>> ref = IterableWrapper([("b", 20), ("a", 10)])
        >>> list(src.zip_with_iter(ref, key_fn=lambda x: x[0], merge_fn=lambda s, r: s[1] + r[1]))
        [11, 22]
    """

    _repr_fields = ("key_fn", "buffer_size")

    def __init__(
        self,
        source_datapipe: IterDataPipe,
        ref_datapipe: IterDataPipe,
        key_fn: Callable[[Any], Any],
        ref_key_fn: Callable[[Any], Any] | None = None,
        keep_key: bool = False,
        buffer_size: int | None = 10000,
        merge_fn: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        for name, dp in (("source_datapipe", source_datapipe), ("ref_datapipe", ref_datapipe)):
            if not isinstance(dp, IterDataPipe):
                raise TypeError(f"zip_with_iter: {name} must be an IterDataPipe, got {type(dp).__name__}")
        check_fn("zip_with_iter", "key_fn", key_fn)
        if ref_key_fn is not None:
            check_fn("zip_with_iter", "ref_key_fn", ref_key_fn)
        if merge_fn is not None:
            check_fn("zip_with_iter", "merge_fn", merge_fn)
        if buffer_size is not None and (
            isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size <= 0
        ):
            raise ValueError(
                f"zip_with_iter: buffer_size must be None or a positive int, got {buffer_size!r}"
            )
        self.source_datapipe = source_datapipe
        self.ref_datapipe = ref_datapipe
        self.key_fn = key_fn
        self.ref_key_fn = key_fn if ref_key_fn is None else ref_key_fn
        self.keep_key = keep_key
        self.buffer_size = buffer_size
        self.merge_fn = merge_fn

    def _sources(self) -> tuple[Any, ...]:
        return (self.source_datapipe, self.ref_datapipe)

    def _init_state(self, ctx: Any) -> _KeyBuffer:
        return _KeyBuffer(OrderedDict(), False)

    def _iterate(self, srcs: list[Iterator[Any]], state: _KeyBuffer) -> Iterator[Any]:
        return self._run(srcs[0], srcs[1], state)

    def _run(self, src: Iterator[Any], ref: Iterator[Any], state: _KeyBuffer) -> Iterator[Any]:
        key_fn, ref_key_fn, merge_fn = self.key_fn, self.ref_key_fn, self.merge_fn
        keep_key, size = self.keep_key, self.buffer_size
        buffer = state.buffer
        for data in src:
            key = key_fn(data)
            while key not in buffer:
                try:
                    ref_data = next(ref)
                except StopIteration:
                    raise BufferError(
                        f"zip_with_iter: ref_datapipe ended without an element of key {key!r} (for {data!r}); "
                        f"{len(buffer)} reference elements are buffered (buffer_size={size}); if the key was "
                        "dropped from a full buffer, raise buffer_size"
                    ) from None
                ref_key = ref_key_fn(ref_data)
                if ref_key in buffer:
                    raise ValueError(f"zip_with_iter: ref_datapipe has the key {ref_key!r} twice")
                if size is not None and len(buffer) > size:
                    if not state.warned:
                        state.warned = True
                        warnings.warn(
                            f"zip_with_iter: the buffer is full (buffer_size={size}), so the oldest reference "
                            "elements are dropped; raise buffer_size",
                            UserWarning,
                            stacklevel=2,
                        )
                    buffer.popitem(last=False)
                buffer[ref_key] = ref_data
            ref_data = buffer.pop(key)
            res = merge_fn(data, ref_data) if merge_fn is not None else (data, ref_data)
            yield (key, res) if keep_key else res

    def _save_state(self, state: _KeyBuffer) -> dict[str, Any]:
        return {"buffer": [[k, v] for k, v in state.buffer.items()], "warned": state.warned}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _KeyBuffer:
        pairs = load_list("IterKeyZipper", data, "buffer")
        if any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in pairs):
            raise RuntimeError("load_state_dict: IterKeyZipper expects 'buffer' as [key, element] pairs")
        return _KeyBuffer(OrderedDict((k, v) for k, v in pairs), bool(data.get("warned")))

    def __len__(self) -> int:
        return self._source_len()


class _MapJoin:
    """``item -> merged item`` looking the key up in a MapDataPipe; a picklable callable."""

    __slots__ = ("keep_key", "key_fn", "map_datapipe", "merge_fn")

    def __init__(self, map_datapipe: Any, key_fn: Any, merge_fn: Any, keep_key: bool) -> None:
        self.map_datapipe = map_datapipe
        self.key_fn = key_fn
        self.merge_fn = merge_fn
        self.keep_key = keep_key

    def __call__(self, item: Any) -> Any:
        key = self.key_fn(item)
        try:
            value = self.map_datapipe[key]
        except (KeyError, IndexError):
            raise KeyError(
                f"zip_with_map: key_fn maps {item!r} to {key!r}, which is not a valid key of the MapDataPipe"
            ) from None
        res = self.merge_fn(item, value) if self.merge_fn is not None else (item, value)
        return (key, res) if self.keep_key else res


@functional_datapipe("zip_with_map")
class MapKeyZipper(IterDataPipe):
    """Joins each element with ``map_datapipe[key_fn(element)]`` (functional name: ``zip_with_map``).

    Args:
        source_iterdatapipe: the pipe whose elements are joined.
        map_datapipe: a MapDataPipe indexed by the keys.
        key_fn: the key of an element.
        merge_fn: combines the element and the looked-up item (default: a tuple).
        keep_key: yield ``(key, merged)`` instead of ``merged``.

    Raises:
        KeyError: (while iterating) a key is not in ``map_datapipe``.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> from loom.data.map import SequenceWrapper
        >>> list(IterableWrapper([0, 2]).zip_with_map(SequenceWrapper("abc"), key_fn=lambda i: i))
        [(0, 'a'), (2, 'c')]
    """

    _repr_fields = ("key_fn",)

    def __init__(
        self,
        source_iterdatapipe: IterDataPipe,
        map_datapipe: MapDataPipe,
        key_fn: Callable[[Any], Any],
        merge_fn: Callable[[Any, Any], Any] | None = None,
        keep_key: bool = False,
    ) -> None:
        if not isinstance(source_iterdatapipe, IterDataPipe):
            raise TypeError(
                f"zip_with_map: source_iterdatapipe must be an IterDataPipe, got {type(source_iterdatapipe).__name__}"
            )
        if not isinstance(map_datapipe, MapDataPipe):
            raise TypeError(
                f"zip_with_map: map_datapipe must be a MapDataPipe, got {type(map_datapipe).__name__}"
            )
        check_fn("zip_with_map", "key_fn", key_fn)
        if merge_fn is not None:
            check_fn("zip_with_map", "merge_fn", merge_fn)
        self.source_iterdatapipe = source_iterdatapipe
        self.map_datapipe = map_datapipe
        self.key_fn = key_fn
        self.merge_fn = merge_fn
        self.keep_key = keep_key

    def _sources(self) -> tuple[Any, ...]:
        return (self.source_iterdatapipe,)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(_MapJoin(self.map_datapipe, self.key_fn, self.merge_fn, self.keep_key), srcs[0])

    def __len__(self) -> int:
        try:
            return len(self.source_iterdatapipe)  # type: ignore[arg-type]
        except TypeError as err:
            raise TypeError(
                f"MapKeyZipper instance doesn't have valid length: its source "
                f"{type(self.source_iterdatapipe).__name__} has none"
            ) from err
