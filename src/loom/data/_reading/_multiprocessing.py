"""MultiProcessingReadingService: persistent worker processes, round-robin order, exact mid-epoch state.

# NOTE [multiprocessing order and state]
# Workers are started once (at initialize) and serve every epoch; see NOTE [worker protocol] in
# _worker.py. The main process yields element j of the epoch from worker j mod k, skipping workers
# that have ended; which worker ends when depends only on the data, so the order is fixed by the
# seed and the worker count. Elements a worker has sent but main has not yielded are "pending".
# ``state_dict()`` asks every live worker for its iterator state; the reply comes after all chunks
# sent before it, which main adds to the pending elements. The saved state is then: the round-robin
# cursor, per worker its pending elements, whether it ended, and its iterator state. Restoring starts
# each worker from its state and puts the pending elements back in front: nothing is lost or repeated.
# A trailing FullSync (added by DistributedReadingService) and the prefix before a round-robin
# dispatcher run in the main process; their states are saved alongside.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import signal
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from loom.data._reading._base import ReadingServiceInterface
from loom.data._reading._worker import (
    CREDIT,
    DATA,
    END,
    ERROR,
    EXIT,
    FEED,
    NEED,
    START,
    STATE,
    STATED,
    STOP,
    rebuild_error,
    worker_main,
)

__all__ = ["MultiProcessingReadingService"]

_FEED_CHUNK = 64
_MP_STATE_VERSION = "loom.multiprocessing/1"


class _Slot:
    """Main's view of one worker: its process, pipe, buffered elements, and whether it ended."""

    __slots__ = ("buf", "conn", "done", "error", "index", "last", "proc")

    def __init__(self, index: int, proc: Any, conn: Any) -> None:
        self.index = index
        self.proc = proc
        self.conn = conn
        self.buf: deque[Any] = deque()
        self.done = False
        self.error: BaseException | None = None
        self.last = 1  # size of the last chunk received


def _shutdown(slots: list[_Slot]) -> None:
    for slot in slots:
        with contextlib.suppress(OSError, ValueError):
            slot.conn.send((EXIT,))
    deadline = time.monotonic() + 5.0
    for slot in slots:
        slot.proc.join(max(0.0, deadline - time.monotonic()))
        if slot.proc.is_alive():
            slot.proc.terminate()
            slot.proc.join(1.0)
        if slot.proc.is_alive():
            slot.proc.kill()
            slot.proc.join(1.0)
        slot.conn.close()
    slots.clear()


def _died(slot: _Slot) -> RuntimeError:
    slot.proc.join(0.5)
    code = slot.proc.exitcode
    how = f"exit code {code}"
    if code is not None and code < 0:
        try:
            how = f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    return RuntimeError(
        f"DataLoader2: worker {slot.index} (pid {slot.proc.pid}) exited unexpectedly ({how}); "
        "the epoch cannot continue. A new epoch restarts the worker."
    )


class MultiProcessingReadingService(ReadingServiceInterface):
    """Runs the pipeline in worker processes, started once and reused for every epoch.

    Elements come from the workers in turn (round-robin), so the order depends only on the seed and
    ``num_workers``. Each worker takes its shard of every ``sharding_filter``; the part of a pipeline
    before a ``sharding_round_robin_dispatch`` runs once, in the main process. Elements cross the
    process boundary in chunks (batch in the pipeline for the best throughput). See NOTE
    [multiprocessing order and state].

    Args:
        num_workers: worker processes (0 runs in process).
        multiprocessing_context: ``"fork"``, ``"spawn"``, ``"forkserver"`` or None (the default).
        worker_prefetch_cnt: chunks each worker may have in flight ahead of main.
        main_prefetch_cnt: chunks per worker main receives ahead of what it yields.
        worker_init_fn: ``fn(datapipe, worker_info) -> datapipe``, once in each worker.
        worker_reset_fn: ``fn(datapipe, worker_info, seed) -> datapipe``, in each worker every epoch.

    Raises:
        ValueError: a count is negative or the context is unknown.

    Example:
        >>> from loom.data import DataLoader2, MultiProcessingReadingService
        >>> from loom.data.iter import IterableWrapper
        >>> pipe = IterableWrapper(range(8)).sharding_filter().batch(2)
        >>> with DataLoader2(pipe, reading_service=MultiProcessingReadingService(num_workers=2)) as dl:
        ...     sorted(x for batch in dl for x in batch)
        [0, 1, 2, 3, 4, 5, 6, 7]
    """

    def __init__(
        self,
        num_workers: int = 0,
        multiprocessing_context: str | None = None,
        worker_prefetch_cnt: int = 10,
        main_prefetch_cnt: int = 10,
        worker_init_fn: Callable[[Any, Any], Any] | None = None,
        worker_reset_fn: Callable[[Any, Any, int], Any] | None = None,
    ) -> None:
        for name, value, low in (
            ("num_workers", num_workers, 0),
            ("worker_prefetch_cnt", worker_prefetch_cnt, 1),
            ("main_prefetch_cnt", main_prefetch_cnt, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(
                    f"MultiProcessingReadingService: {name} must be an int >= {low}, got {value!r}"
                )
        if multiprocessing_context is not None and multiprocessing_context not in (
            multiprocessing.get_all_start_methods()
        ):
            raise ValueError(
                "MultiProcessingReadingService: multiprocessing_context must be one of "
                f"{multiprocessing.get_all_start_methods()}, got {multiprocessing_context!r}"
            )
        self.num_workers = num_workers
        self.multiprocessing_context = multiprocessing_context
        self.worker_prefetch_cnt = worker_prefetch_cnt
        self.main_prefetch_cnt = main_prefetch_cnt
        self.worker_init_fn = worker_init_fn
        self.worker_reset_fn = worker_reset_fn
        self._slots: list[_Slot] = []
        self._finalizer: Any = None
        self._body: Any = None
        self._tail: Any = None
        self._prefix: Any = None
        self._epoch = 0
        self._stream: _MPStream | None = None
        self._rank = 0
        self._stats: dict[str, float] = {"wait_s": 0.0, "chunks": 0, "elements": 0}

    # --- setup ---
    def initialize(self, datapipe: Any) -> Any:
        from loom.data._graph import list_dps, traverse_dps
        from loom.data.iter._dispatch import ShardingRoundRobinDispatcher
        from loom.data.iter._fullsync import FullSync

        if self.num_workers == 0:
            return super().initialize(datapipe)
        body, tail = datapipe, None
        if isinstance(datapipe, FullSync):
            body, tail = datapipe.source_datapipe, datapipe
        pipes = list_dps(traverse_dps(body))
        dispatchers = [p for p in pipes if isinstance(p, ShardingRoundRobinDispatcher)]
        if len(dispatchers) > 1:
            raise NotImplementedError(
                "MultiProcessingReadingService: a pipeline may have one sharding_round_robin_dispatch, "
                f"this one has {len(dispatchers)}"
            )
        if dispatchers:
            self._prefix = dispatchers[0].source_datapipe
        elif self.num_workers > 1 and not any(getattr(p, "_is_sharding", False) for p in pipes):
            warnings.warn(
                f"MultiProcessingReadingService: {self.num_workers} workers but the pipeline has no "
                "sharding_filter, so every worker yields every element; add .sharding_filter() after the source",
                RuntimeWarning,
                stacklevel=3,
            )
        self._body, self._tail = body, tail
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                self._rank = dist.get_rank()
        except ImportError:  # pragma: no cover
            pass
        self._start_workers()
        self._datapipe = datapipe
        return datapipe

    def _start_workers(self) -> None:
        ctx = multiprocessing.get_context(self.multiprocessing_context)
        for i in range(self.num_workers):
            self._slots.append(self._spawn(ctx, i))
        self._finalizer = weakref.finalize(self, _shutdown, self._slots)

    def _spawn(self, ctx: Any, i: int) -> _Slot:
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=worker_main,
            args=(
                self._body,
                child,
                i,
                self.num_workers,
                self._rank,
                self.worker_init_fn,
                self.worker_reset_fn,
            ),
            daemon=True,
            name=f"loom-data-worker-{i}",
        )
        proc.start()
        child.close()
        return _Slot(i, proc, parent)

    def _revive(self) -> None:
        ctx = multiprocessing.get_context(self.multiprocessing_context)
        for i, slot in enumerate(self._slots):
            if not slot.proc.is_alive():
                slot.conn.close()
                slot.proc.join(0)
                self._slots[i] = self._spawn(ctx, i)

    # --- iteration ---
    def initialize_iteration(self, seed: int, state: dict[str, Any] | None = None) -> Iterator[Any]:
        if self.num_workers == 0:
            return super().initialize_iteration(seed, state)
        if not self._slots:
            raise RuntimeError(
                "MultiProcessingReadingService: used after finalize(); create a new DataLoader2"
            )
        self.finalize_iteration()
        self._revive()
        self._epoch += 1
        self._stream = _MPStream(self, self._epoch, seed, state)
        return self._stream

    def finalize_iteration(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def finalize(self) -> None:
        self._stream = None
        if self._finalizer is not None:
            self._finalizer()

    def stats(self) -> dict[str, Any]:
        return {"workers": self.num_workers, **self._stats}

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring)."""
        return [s.proc.pid for s in self._slots]


class _MPStream(Iterator[Any]):
    """One epoch read from the workers; see NOTE [multiprocessing order and state]."""

    def __init__(self, service: MultiProcessingReadingService, epoch: int, seed: int, state: Any) -> None:
        from loom.data._iterator import PipeIterator, _decode
        from loom.data._random import loader_seed

        self.service = service
        self.slots = service._slots
        self.epoch = epoch
        self.cursor = 0
        self.finished = False
        self.cap = service.main_prefetch_cnt
        self.stats = service._stats
        n = len(self.slots)
        if state is not None:
            if not isinstance(state, dict) or state.get("version") != _MP_STATE_VERSION:
                raise RuntimeError("load_state_dict: not a MultiProcessingReadingService state")
            if len(state["workers"]) != n:
                raise RuntimeError(
                    f"load_state_dict: the state was saved with {len(state['workers'])} workers, this "
                    f"loader has {n}; resume with the same num_workers"
                )
            self.cursor = int(state["cursor"])
        # The prefix before a round-robin dispatcher runs here.
        self.prefix: Any = None
        self.dealt: list[deque[Any]] = [deque() for _ in range(n)]
        self.dealt_count = 0
        self.prefix_done = False
        if service._prefix is not None:
            with loader_seed(seed):
                self.prefix = PipeIterator(service._prefix)
            if state is not None:
                d = state["dispatch"]
                self.prefix.load_state_dict(d["prefix"])
                self.dealt = [deque(_decode(x)) for x in d["dealt"]]
                self.dealt_count = int(d["count"])
                self.prefix_done = bool(d["done"])
        for i, slot in enumerate(self.slots):
            slot.buf = deque()
            slot.done = False
            slot.error = None
            worker_state = None
            if state is not None:
                w = state["workers"][i]
                slot.buf.extend(_decode(w["pending"]))
                slot.done = bool(w["done"])
                worker_state = w["state"]
            if not slot.done:
                self._send(slot, (START, epoch, seed, worker_state, service.worker_prefetch_cnt))
        # A trailing FullSync runs here, over the workers' stream.
        self.tail_state: Any = None
        self.out: Iterator[Any] = self
        tail = service._tail
        if tail is not None:
            if state is not None and state.get("tail") is not None:
                self.tail_state = tail._load_state(_decode(state["tail"]), None)
            else:
                self.tail_state = tail._init_state(None)
            self.out = tail._iterate([_BodyIterator(self)], self.tail_state)

    def _send(self, slot: _Slot, msg: tuple[Any, ...]) -> None:
        try:
            slot.conn.send(msg)
        except (OSError, ValueError) as err:
            raise _died(slot) from err

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.out is self:
            return self.body_next()
        return next(self.out)

    def body_next(self) -> Any:
        slots = self.slots
        n = len(slots)
        skipped = 0
        while True:
            if self.finished:
                raise StopIteration
            slot = slots[self.cursor]
            if slot.buf:
                self.cursor = (self.cursor + 1) % n
                return slot.buf.popleft()
            if slot.done:
                if slot.error is not None:
                    err = slot.error
                    slot.error = None
                    self.finished = True
                    raise err
                skipped += 1
                if skipped >= n:
                    self.finished = True
                    raise StopIteration
                self.cursor = (self.cursor + 1) % n
                continue
            skipped = 0
            self._pump(slot, want_state=False)

    def _recv(self, slot: _Slot) -> Any:
        conn = slot.conn
        began = time.perf_counter()
        ready = multiprocessing.connection.wait([conn, slot.proc.sentinel])
        self.stats["wait_s"] += time.perf_counter() - began
        if conn in ready:
            try:
                return conn.recv()
            except (EOFError, OSError) as err:
                raise _died(slot) from err
        raise _died(slot)

    def _handle(self, slot: _Slot, msg: Any) -> Any:
        """Apply one message from a worker; returns the state payload for STATED, else None."""
        kind = msg[0]
        if kind == NEED:
            self._feed(slot, msg[1] == self.epoch)
            return None
        if msg[1] != self.epoch:
            return None  # from an abandoned epoch
        if kind == DATA:
            slot.buf.extend(msg[2])
            slot.last = len(msg[2])
            self.stats["chunks"] += 1
            self.stats["elements"] += len(msg[2])
            self._send(slot, (CREDIT, 1))
        elif kind == END:
            slot.buf.extend(msg[2])
            slot.done = True
        elif kind == ERROR:
            slot.buf.extend(msg[2])
            slot.done = True
            slot.error = rebuild_error(msg[3], msg[4], f"DataLoader2 worker {slot.index}")
        elif kind == STATED:
            if msg[3] is not None:
                raise RuntimeError(
                    f"DataLoader2.state_dict: worker {slot.index} could not save its state: {msg[3]}"
                )
            return (msg[2],)
        return None

    def _pump(self, slot: _Slot, want_state: bool) -> Any:
        while True:
            msg = self._recv(slot)
            kind = msg[0]
            current = kind != NEED and msg[1] == self.epoch
            got = self._handle(slot, msg)
            if want_state and got is not None:
                return got[0]
            if want_state and current and kind in (END, ERROR):
                continue  # the STATED reply still follows
            if not want_state and current and kind in (DATA, END, ERROR):
                self._prefetch_others(slot)
                return None

    def _prefetch_others(self, current: _Slot) -> None:
        if self.cap == 0:
            return
        for slot in self.slots:
            if slot is current or slot.done or len(slot.buf) >= self.cap * slot.last:
                continue
            if slot.conn.poll():
                try:
                    msg = slot.conn.recv()
                except (EOFError, OSError) as err:
                    raise _died(slot) from err
                self._handle(slot, msg)

    def _feed(self, slot: _Slot, current: bool) -> None:
        if not current or self.prefix is None:
            self._send(slot, (FEED, [], True))  # a worker still in an abandoned epoch: let it end
            return
        n = len(self.slots)
        out = self.dealt[slot.index]
        while len(out) < _FEED_CHUNK and not self.prefix_done:
            try:
                x = next(self.prefix)
            except StopIteration:
                self.prefix_done = True
                break
            self.dealt[self.dealt_count % n].append(x)
            self.dealt_count += 1
        items = list(out)
        out.clear()
        self._send(slot, (FEED, items, self.prefix_done))

    def state_dict(self) -> dict[str, Any]:
        from loom.data._iterator import _encode

        live = [s for s in self.slots if not s.done]
        for slot in live:
            self._send(slot, (STATE,))
        states: dict[int, Any] = {}
        for slot in live:
            states[slot.index] = self._pump(slot, want_state=True)
        out: dict[str, Any] = {
            "version": _MP_STATE_VERSION,
            "cursor": self.cursor,
            "workers": [
                {
                    "pending": _encode(list(slot.buf)),
                    "done": slot.done if slot.error is None else True,
                    "state": states.get(slot.index),
                }
                for slot in self.slots
            ],
            "dispatch": None,
            "tail": None,
        }
        if self.finished:
            out["workers"] = [{"pending": [], "done": True, "state": None} for _ in self.slots]
        if self.prefix is not None:
            out["dispatch"] = {
                "prefix": self.prefix.state_dict(),
                "dealt": [_encode(list(d)) for d in self.dealt],
                "count": self.dealt_count,
                "done": self.prefix_done,
            }
        if self.tail_state is not None:
            out["tail"] = _encode(self.service._tail._save_state(self.tail_state))
        return out

    def close(self) -> None:
        for slot in self.slots:
            if not slot.done and slot.proc.is_alive():
                with contextlib.suppress(OSError, ValueError):
                    slot.conn.send((STOP,))
        self.finished = True


class _BodyIterator(Iterator[Any]):
    """The workers' stream as a plain iterator, for a FullSync running in main."""

    __slots__ = ("stream",)

    def __init__(self, stream: _MPStream) -> None:
        self.stream = stream

    def __next__(self) -> Any:
        return self.stream.body_next()
