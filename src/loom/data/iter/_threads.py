"""Pipes that use background threads: ThreadPoolMapper, Prefetcher, PinMemory."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from loom.data._columns import check_fn, check_input_col, check_int, check_source, column_applier
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._common import load_list

__all__ = ["PinMemory", "Prefetcher", "ThreadPoolMapper"]


class _PoolState:
    __slots__ = ("exhausted", "futures")

    def __init__(self, futures: deque[Future[Any]], exhausted: bool) -> None:
        self.futures = futures
        self.exhausted = exhausted


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


@functional_datapipe("threadpool_map")
class ThreadPoolMapper(IterDataPipe):
    """Applies ``fn`` in a thread pool, keeping the order (functional name: ``threadpool_map``).

    Args:
        source_datapipe: the source pipe.
        fn: the function (useful when it releases the GIL or waits on I/O).
        input_col: as in ``Mapper``.
        output_col: as in ``Mapper``.
        scheduled_tasks: how many elements are in flight at most, at least 1.
        max_workers: threads in the pool (default: ``ThreadPoolExecutor``'s).
        **threadpool_kwargs: more arguments for ``ThreadPoolExecutor``.

    ``state_dict()`` waits for the elements in flight and saves their results.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(5)).threadpool_map(lambda x: x * x, max_workers=2))
        [0, 1, 4, 9, 16]
    """

    _repr_fields = ("fn", "scheduled_tasks", "max_workers")

    def __init__(
        self,
        source_datapipe: Any,
        fn: Callable[..., Any],
        input_col: Any = None,
        output_col: Any = None,
        scheduled_tasks: int = 128,
        max_workers: int | None = None,
        **threadpool_kwargs: Any,
    ) -> None:
        check_source("threadpool_map", source_datapipe)
        check_fn("threadpool_map", "fn", fn)
        check_int("threadpool_map", "scheduled_tasks", scheduled_tasks, 1)
        if max_workers is not None:
            check_int("threadpool_map", "max_workers", max_workers, 1)
        if input_col is None and output_col is not None:
            raise ValueError(
                f"threadpool_map: output_col must be None when input_col is None, got {output_col!r}"
            )
        if isinstance(output_col, (list, tuple)):
            if len(output_col) != 1:
                raise ValueError(
                    f"threadpool_map: output_col must be a single index or key, got {output_col!r}"
                )
            output_col = output_col[0]
        if input_col is not None:
            check_input_col("threadpool_map", fn, input_col)
        self.source_datapipe = source_datapipe
        self.fn = fn
        self.input_col = input_col
        self.output_col = output_col
        self.scheduled_tasks = scheduled_tasks
        self.max_workers = max_workers
        self.threadpool_kwargs = threadpool_kwargs

    def _init_state(self, ctx: Any) -> _PoolState:
        return _PoolState(deque(), False)

    def _iterate(self, srcs: list[Iterator[Any]], state: _PoolState) -> Iterator[Any]:
        return self._run(srcs[0], state)

    def _run(self, src: Iterator[Any], state: _PoolState) -> Iterator[Any]:
        fn = self.fn if self.input_col is None else column_applier(self.fn, self.input_col, self.output_col)
        futures = state.futures
        with ThreadPoolExecutor(max_workers=self.max_workers, **self.threadpool_kwargs) as pool:
            while not state.exhausted and len(futures) < self.scheduled_tasks:
                self._submit(pool, fn, src, state)
            while futures:
                if not state.exhausted:
                    self._submit(pool, fn, src, state)
                yield futures.popleft().result()

    @staticmethod
    def _submit(pool: ThreadPoolExecutor, fn: Any, src: Iterator[Any], state: _PoolState) -> None:
        try:
            x = next(src)
        except StopIteration:
            state.exhausted = True
            return
        state.futures.append(pool.submit(fn, x))

    def _save_state(self, state: _PoolState) -> dict[str, Any]:
        return {"results": [f.result() for f in state.futures], "exhausted": state.exhausted}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _PoolState:
        results = load_list("ThreadPoolMapper", data, "results")
        return _PoolState(deque(_done(r) for r in results), bool(data.get("exhausted")))

    def __len__(self) -> int:
        return self._source_len()


class _PrefetchState:
    __slots__ = ("buffer", "cond", "done", "error", "source_lock", "stop", "thread")

    def __init__(self, buffer: list[Any]) -> None:
        self.buffer: deque[Any] = deque(buffer)
        self.source_lock = threading.Lock()  # held while the producer takes one element
        self.cond = threading.Condition()
        self.done = False
        self.error: BaseException | None = None
        self.stop = False
        self.thread: threading.Thread | None = None


@functional_datapipe("prefetch")
class Prefetcher(IterDataPipe):
    """Reads up to ``buffer_size`` elements ahead in a background thread (functional name: ``prefetch``).

    ``state_dict()`` pauses the thread between two elements, so the saved buffer and the saved
    source position agree. The thread stops when the iterator ends or is dropped.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(4)).prefetch(2))
        [0, 1, 2, 3]
    """

    _repr_fields = ("buffer_size",)

    def __init__(self, source_datapipe: Any, buffer_size: int = 10) -> None:
        check_source("prefetch", source_datapipe)
        check_int("prefetch", "buffer_size", buffer_size, 1)
        self.source_datapipe = source_datapipe
        self.buffer_size = buffer_size

    def _transform(self, x: Any) -> Any:
        return x

    def _init_state(self, ctx: Any) -> _PrefetchState:
        return _PrefetchState([])

    def _iterate(self, srcs: list[Iterator[Any]], state: _PrefetchState) -> Iterator[Any]:
        return self._consume(srcs[0], state)

    def _produce(self, src: Iterator[Any], state: _PrefetchState) -> None:
        cond = state.cond
        while True:
            with cond:
                while len(state.buffer) >= self.buffer_size and not state.stop:
                    cond.wait()
                if state.stop:
                    return
            with state.source_lock:
                try:
                    x = self._transform(next(src))
                except StopIteration:
                    x, state.done = None, True
                except BaseException as err:
                    x, state.done, state.error = None, True, err
                with cond:
                    if not state.done:
                        state.buffer.append(x)
                    cond.notify_all()
                    if state.done:
                        return

    def _consume(self, src: Iterator[Any], state: _PrefetchState) -> Iterator[Any]:
        cond = state.cond
        state.thread = threading.Thread(
            target=self._produce, args=(src, state), daemon=True, name="loom-prefetch"
        )
        state.thread.start()
        try:
            while True:
                with cond:
                    while not state.buffer and not state.done:
                        cond.wait()
                    if state.buffer:
                        x = state.buffer.popleft()
                        cond.notify_all()
                    elif state.error is not None:
                        raise state.error
                    else:
                        return
                yield x
        finally:
            with cond:
                state.stop = True
                cond.notify_all()

    def _snapshot_guard(self, state: _PrefetchState) -> Any:
        return state.source_lock

    def _save_state(self, state: _PrefetchState) -> dict[str, Any]:
        with state.cond:
            return {"buffer": list(state.buffer)}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _PrefetchState:
        buffer = load_list(type(self).__name__, data, "buffer")
        if len(buffer) > self.buffer_size:
            raise RuntimeError(
                f"load_state_dict: {type(self).__name__} expects at most {self.buffer_size} buffered elements"
            )
        return _PrefetchState(buffer)

    def __len__(self) -> int:
        return self._source_len()


def pin_memory_fn(data: Any, device: Any = None) -> Any:
    """Pins tensors in ``data`` (nested lists, tuples, dicts) for fast copies to ``device``."""
    from torch.utils.data._utils.pin_memory import pin_memory

    if hasattr(data, "pin_memory"):
        return data.pin_memory()
    return pin_memory(data, device)  # type: ignore[no-untyped-call]


@functional_datapipe("pin_memory")
class PinMemory(Prefetcher):
    """Prefetches two elements in a background thread and pins their tensors' memory (functional name: ``pin_memory``).

    Args:
        source_datapipe: the source pipe.
        device: the CUDA device to pin for (default: the current one).
        pin_memory_fn: ``(data, device) -> pinned data``.

    Raises:
        RuntimeError: CUDA is not available.

    Example:
        >>> import torch
        >>> from loom.data.iter import IterableWrapper
        >>> if torch.cuda.is_available():
        ...     assert next(iter(IterableWrapper([torch.ones(2)]).pin_memory())).is_pinned()
    """

    _repr_fields = ("device",)

    def __init__(
        self, source_datapipe: Any, device: Any = None, pin_memory_fn: Callable[..., Any] = pin_memory_fn
    ) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("pin_memory: needs CUDA, which is not available here")
        check_fn("pin_memory", "pin_memory_fn", pin_memory_fn)
        super().__init__(source_datapipe, buffer_size=2)
        self.device = torch.cuda.current_device() if device is None else device
        self.pin_memory_fn = pin_memory_fn

    def _transform(self, x: Any) -> Any:
        return self.pin_memory_fn(x, self.device)
