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
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from loom.data._reading._base import ReadingServiceInterface
from loom.data._reading._stream import _MPStream, _Slot
from loom.data._reading._worker import EXIT, worker_main

__all__ = ["MultiProcessingReadingService"]


def _shutdown(slots: list[_Slot]) -> None:
    # EXIT reaches an idle worker; closing our end right away breaks the pipe under a worker blocked
    # sending a large chunk, so no worker waits for the join timeout.
    for slot in slots:
        with contextlib.suppress(OSError, ValueError):
            slot.conn.send((EXIT,))
        slot.conn.close()
    deadline = time.monotonic() + 5.0
    for slot in slots:
        slot.proc.join(max(0.0, deadline - time.monotonic()))
        if slot.proc.is_alive():
            slot.proc.terminate()
            slot.proc.join(1.0)
        if slot.proc.is_alive():
            slot.proc.kill()
            slot.proc.join(1.0)
    slots.clear()


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
        # A forked worker inherits main's ends of its own and earlier workers' pipes; it closes them,
        # so that main going away (or closing a pipe) is seen as a broken pipe at once.
        inherited = [parent, *(s.conn for s in self._slots)] if ctx.get_start_method() == "fork" else []
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
                inherited,
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
        busy = [slot.busy for slot in self._slots]
        return {"workers": self.num_workers, **self._stats, "worker_busy_s": busy}

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring)."""
        return [s.proc.pid for s in self._slots]
