"""Pipes that group elements into batches and back: Batcher, UnBatcher, BucketBatcher, MaxTokenBucketizer."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from itertools import islice
from typing import Any

from loom.data._columns import check_int, check_source
from loom.data._datapipe import DataChunk, IterDataPipe, functional_datapipe
from loom.data.iter._common import Pending, load_list

__all__ = ["Batcher", "BucketBatcher", "MaxTokenBucketizer", "UnBatcher"]


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

    def _init_state(self, ctx: Any) -> Pending:
        return Pending([])

    def _iterate(self, srcs: list[Iterator[Any]], state: Pending) -> Iterator[Any]:
        return self._run(srcs[0], state)

    def _run(self, src: Iterator[Any], state: Pending) -> Iterator[Any]:
        yield from state.it  # what a restored state still holds
        level = self.unbatch_level
        for element in src:
            items: list[Any] = []
            _flatten(element, level, items, level)
            yield from state.reset(items)

    def _save_state(self, state: Pending) -> dict[str, Any]:
        return {"pending": state.remaining()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Pending:
        pending = data.get("pending")
        if not isinstance(pending, list):
            raise RuntimeError(f"load_state_dict: UnBatcher expects a list 'pending', got {pending!r}")
        return Pending(list(pending))


@functional_datapipe("bucketbatch")
class BucketBatcher(IterDataPipe):
    """Batches from buckets of similar elements (functional name: ``bucketbatch``), as torchdata's.

    A pool of ``batch_size * batch_num * bucket_num`` elements is shuffled; each bucket of
    ``batch_size * batch_num`` elements is sorted with ``sort_key`` (a function from a list to the
    sorted list) and cut into batches, which are then shuffled within groups of ``bucket_num``.
    This builds and returns the composed pipeline, so its state is that of its parts.

    Args:
        datapipe: the source pipe.
        batch_size: elements per batch, at least 1.
        drop_last: drop a short last batch.
        batch_num: batches per bucket, at least 1.
        bucket_num: buckets per pool, at least 1.
        sort_key: sorts a bucket (a list); ``None`` leaves buckets unsorted.
        use_in_batch_shuffle: shuffle pools with ``in_batch_shuffle`` (else a ``shuffle`` buffer).

    Example:
        >>> from loom.data import set_graph_random_seed
        >>> from loom.data.iter import IterableWrapper
        >>> pipe = IterableWrapper(range(8)).bucketbatch(batch_size=2, batch_num=2, sort_key=sorted)
        >>> sorted(x for batch in set_graph_random_seed(pipe, 0) for x in batch)
        [0, 1, 2, 3, 4, 5, 6, 7]
    """

    def __new__(
        cls,
        datapipe: Any,
        batch_size: int,
        drop_last: bool = False,
        batch_num: int = 100,
        bucket_num: int = 1,
        sort_key: Any = None,
        use_in_batch_shuffle: bool = True,
    ) -> Any:
        check_source("bucketbatch", datapipe)
        check_int("bucketbatch", "batch_size", batch_size, 1)
        check_int("bucketbatch", "batch_num", batch_num, 1)
        check_int("bucketbatch", "bucket_num", bucket_num, 1)
        if sort_key is not None and not callable(sort_key):
            raise TypeError(f"bucketbatch: sort_key must be callable, got {sort_key!r}")
        bucket_size = batch_size * batch_num
        pool_size = bucket_size * bucket_num
        if bucket_num > 1 or sort_key is None:
            if use_in_batch_shuffle:
                datapipe = datapipe.batch(batch_size=pool_size).in_batch_shuffle().unbatch()
            else:
                datapipe = datapipe.shuffle(buffer_size=pool_size)
        if sort_key is not None:
            datapipe = datapipe.batch(bucket_size).map(fn=sort_key).unbatch()
        datapipe = datapipe.batch(batch_size, drop_last=drop_last)
        if sort_key is not None:
            if use_in_batch_shuffle:
                datapipe = datapipe.batch(batch_size=bucket_num).in_batch_shuffle().unbatch()
            else:
                datapipe = datapipe.shuffle(buffer_size=bucket_size)
        return datapipe


def _default_len(token: Any) -> int:
    return len(token)


class _TokenState:
    __slots__ = ("batch", "draining", "heap", "max_length", "tokens")

    def __init__(
        self, heap: list[Any], batch: list[Any], tokens: int, max_length: int, draining: bool
    ) -> None:
        self.heap = heap
        self.batch = batch
        self.tokens = tokens
        self.max_length = max_length
        self.draining = draining


class _Sized:
    """A heap entry ordered by length only (ties keep heap order, as in torchdata)."""

    __slots__ = ("data", "length")

    def __init__(self, length: int, data: Any) -> None:
        self.length = length
        self.data = data

    def __lt__(self, other: _Sized) -> bool:
        return self.length < other.length


@functional_datapipe("max_token_bucketize")
class MaxTokenBucketizer(IterDataPipe):
    """Batches whose total length stays within ``max_token_count``, from a length-sorted buffer (functional name: ``max_token_bucketize``).

    Args:
        datapipe: the source pipe.
        max_token_count: the most tokens per batch.
        len_fn: an element's length in tokens (default ``len``).
        min_len: shorter elements are dropped.
        max_len: longer elements are dropped (default ``max_token_count``).
        buffer_size: elements held in the length-ordered buffer, at least 1.
        include_padding: count a batch as ``len(batch) * its longest element``.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(["aaa", "b", "cc", "dddd"]).max_token_bucketize(5))
        [['b', 'cc'], ['aaa'], ['dddd']]
    """

    _repr_fields = ("max_token_count", "buffer_size")

    def __init__(
        self,
        datapipe: Any,
        max_token_count: int,
        len_fn: Any = _default_len,
        min_len: int = 0,
        max_len: int | None = None,
        buffer_size: int = 1000,
        include_padding: bool = False,
    ) -> None:
        check_source("max_token_bucketize", datapipe)
        check_int("max_token_bucketize", "max_token_count", max_token_count, 1)
        max_len = max_token_count if max_len is None else max_len
        check_int("max_token_bucketize", "min_len", min_len, 0)
        check_int("max_token_bucketize", "max_len", max_len, min_len)
        if max_len > max_token_count:
            raise ValueError(
                f"max_token_bucketize: max_len ({max_len}) must be <= max_token_count ({max_token_count})"
            )
        check_int("max_token_bucketize", "buffer_size", buffer_size, 1)
        if not callable(len_fn):
            raise TypeError(f"max_token_bucketize: len_fn must be callable, got {len_fn!r}")
        self.source_datapipe = datapipe
        self.max_token_count = max_token_count
        self.len_fn = len_fn
        self.min_len = min_len
        self.max_len = max_len
        self.buffer_size = buffer_size
        self.include_padding = include_padding

    def _init_state(self, ctx: Any) -> _TokenState:
        return _TokenState([], [], 0, 0, False)

    def _iterate(self, srcs: list[Iterator[Any]], state: _TokenState) -> Iterator[Any]:
        return self._run(srcs[0], state)

    def _pop(self, state: _TokenState) -> Any:
        item = heapq.heappop(state.heap)
        length = item.length
        if self.include_padding:
            longest = max(length, state.max_length)
            new_tokens = (len(state.batch) + 1) * longest
        else:
            longest = state.max_length
            new_tokens = state.tokens + length
        if new_tokens > self.max_token_count:
            done = state.batch
            state.batch = [item.data]
            state.tokens = length
            state.max_length = length
            return DataChunk(done)
        state.batch.append(item.data)
        state.tokens = new_tokens
        state.max_length = longest
        return None

    def _run(self, src: Iterator[Any], state: _TokenState) -> Iterator[Any]:
        len_fn, lo, hi = self.len_fn, self.min_len, self.max_len
        if not state.draining:
            for x in src:
                length = len_fn(x)
                if not lo <= length <= hi:
                    continue
                heapq.heappush(state.heap, _Sized(length, x))
                if len(state.heap) == self.buffer_size:
                    chunk = self._pop(state)
                    if chunk is not None:
                        yield chunk
            state.draining = True
        while state.heap:
            chunk = self._pop(state)
            if chunk is not None:
                yield chunk
        if state.batch:
            done = state.batch
            state.batch = []
            yield DataChunk(done)

    def _save_state(self, state: _TokenState) -> dict[str, Any]:
        return {
            "heap": [[item.length, item.data] for item in state.heap],
            "batch": list(state.batch),
            "tokens": state.tokens,
            "max_length": state.max_length,
            "draining": state.draining,
        }

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _TokenState:
        heap = load_list("MaxTokenBucketizer", data, "heap")
        if len(heap) > self.buffer_size:
            raise RuntimeError(
                f"load_state_dict: MaxTokenBucketizer expects at most {self.buffer_size} buffered"
            )
        return _TokenState(
            [_Sized(int(length), item) for length, item in heap],
            load_list("MaxTokenBucketizer", data, "batch"),
            int(data.get("tokens", 0)),
            int(data.get("max_length", 0)),
            bool(data.get("draining")),
        )
