"""The worker process of MultiProcessingReadingService: its loop, its messages, and worker errors.

# NOTE [worker protocol]
# Each worker owns one duplex pipe (a socketpair) to the main process. Main sends commands, the
# worker sends results; every message is a tuple whose first item is its kind, and every result
# carries the epoch id of the iteration it belongs to, so results of an abandoned epoch are dropped.
#
#   main -> worker: (START, epoch, seed, state, credits, profile mode) start (or resume) an iteration
#                   (CREDIT, n)       n more result messages may be sent
#                   (STATE, full)     reply with the iterator state (if ``full``) and the per-stage
#                                     counts, after every result already sent
#                   (STOP,)           drop the iteration;  (EXIT,) leave the loop
#                   (FEED, items, ended)   input for the receiver after a round-robin dispatcher
#   worker -> main: (DATA, epoch, items) | (END, epoch, items) | (ERROR, epoch, items, type, text)
#                   (STATED, epoch, state or None, error text or None, report) | (NEED, epoch)
#                   END also carries the report of the finished iteration: {"stages": per-stage
#                   counts, "busy_s": seconds spent inside the pipeline this epoch}.
#
# Results are chunks: a list of consecutive elements (a whole batch is one element), so the cost of
# crossing the process boundary is paid per chunk. Chunks grow while producing one takes under
# _FAST seconds, and shrink when it takes over _SLOW, so slow pipelines still deliver promptly.
# Credits bound what is in flight: at most ``credits`` chunks sent but not yet received by main.
# Because the state reply follows every chunk sent before it on the same pipe, main knows exactly
# which elements precede the worker's state: it keeps them as "pending" in the loader state.
"""

from __future__ import annotations

import random
import sys
import time
import traceback
from collections import deque
from collections.abc import Iterator
from typing import Any

START, CREDIT, STATE, STOP, EXIT, FEED = "start", "credit", "state", "stop", "exit", "feed"
DATA, END, ERROR, STATED, NEED = "data", "end", "error", "stated", "need"

_MAX_CHUNK = 1024
_FAST = 0.002
_SLOW = 0.02


class WorkerError(Exception):
    """Rebuilt in the main process when an exception type cannot be constructed from a message."""


def rebuild_error(exc_type: Any, text: str, where: str) -> BaseException:
    """An exception of the worker's type whose message carries the worker's traceback text."""
    message = f"Caught {getattr(exc_type, '__name__', 'an exception')} in {where}.\nOriginal {text}"
    if isinstance(exc_type, type) and issubclass(exc_type, KeyError):
        message = _KeyErrorMessage(message)
    try:
        if isinstance(exc_type, type) and issubclass(exc_type, BaseException):
            return exc_type(message)
    except Exception:
        pass
    return RuntimeError(message)


class _KeyErrorMessage(str):
    """KeyError shows repr() of its message; this keeps the traceback readable."""

    def __repr__(self) -> str:
        return str(self)


def seed_globals(seed: int) -> None:
    """Seed Python's, torch's and (if imported) numpy's global generators in this process."""
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed % (2**32))


class _Feed:
    """The input of a worker's pipeline after a dispatcher: a buffer filled by FEED messages."""

    __slots__ = ("buffer", "conn", "ended", "epoch", "held")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.buffer: deque[Any] = deque()
        self.ended = False
        self.epoch = -1
        self.held: list[Any] = []  # commands that arrived while waiting for input

    def refill(self) -> bool:
        """Ask main for input and wait for it; False once main has no more."""
        if self.ended:
            return False
        self.conn.send((NEED, self.epoch))
        while True:
            msg = self.conn.recv()
            if msg[0] == FEED:
                self.buffer.extend(msg[1])
                self.ended = bool(msg[2])
                return bool(self.buffer) or not self.ended
            self.held.append(msg)


class _Worker:
    def __init__(self, pipe: Any, conn: Any, worker_id: int, num_workers: int, rank: int) -> None:
        self.pipe = pipe
        self.conn = conn
        self.worker_id = worker_id
        self.num_workers = num_workers
        self.rank = rank
        self.it: Iterator[Any] | None = None
        self.epoch = -1
        self.credits = 0
        self.chunk = 1
        self.busy = 0.0
        self.feed = _Feed(conn)
        self.reset_fn: Any = None
        self.init_error: BaseException | None = None

    def run(self) -> None:
        conn = self.conn
        while True:
            if self.feed.held:
                msg = self.feed.held.pop(0)
            elif self.it is None or self.credits <= 0 or conn.poll():
                msg = conn.recv()
            else:
                self.produce()
                continue
            if not self.handle(msg):
                return

    def handle(self, msg: tuple[Any, ...]) -> bool:
        kind = msg[0]
        if kind == CREDIT:
            self.credits += msg[1]
        elif kind == START:
            self.start(*msg[1:])
        elif kind == STATE:
            self.reply_state(bool(msg[1]))
        elif kind == STOP:
            self.it = None
        elif kind == FEED:  # input for an abandoned epoch
            pass
        elif kind == EXIT:
            return False
        return True

    def start(self, epoch: int, seed: int, state: Any, credits: int, profile_mode: int) -> None:
        from loom.data._iterator import PipeIterator, _set_profile_mode
        from loom.data._random import mix
        from loom.data._reading._base import seeded

        self.it = None
        self.epoch = epoch
        self.credits = credits  # the chunk size carries over: the pipeline's speed rarely changes
        seed_globals(mix(seed, self.rank, self.worker_id))
        self.feed.buffer.clear()
        self.feed.ended = False
        self.feed.epoch = epoch
        _set_profile_mode(int(profile_mode))  # 0 off, 1 counts, 2 counts and per-stage time
        self.busy = 0.0
        try:
            if self.init_error is not None:
                raise self.init_error
            if self.reset_fn is not None:
                self.pipe = self.reset_fn(self.pipe, WorkerInfo(self.num_workers, self.worker_id), seed)
            with seeded(seed):
                it = PipeIterator(self.pipe)
                if state is not None:
                    it.load_state_dict(state)
        except Exception as err:
            self.send_error([], err)
            return
        self.it = it

    def reply_state(self, full: bool) -> None:
        if self.it is None:
            self.conn.send((STATED, self.epoch, None, None, None))
            return
        rows = self.report()
        if not full:
            self.conn.send((STATED, self.epoch, None, None, rows))
            return
        try:
            state = self.it.state_dict()  # type: ignore[attr-defined]
        except Exception as err:
            self.conn.send((STATED, self.epoch, None, f"{type(err).__name__}: {err}", rows))
            return
        self.conn.send((STATED, self.epoch, state, None, rows))

    def produce(self) -> None:
        assert self.it is not None
        items: list[Any] = []
        append = items.append
        nxt = self.it.__next__
        size = self.chunk
        began = time.perf_counter()
        try:
            for _ in range(size):
                append(nxt())
        except StopIteration:
            self.busy += time.perf_counter() - began
            rows = self.report()
            self.it = None
            self.conn.send((END, self.epoch, items, rows))
            return
        except Exception as err:
            self.send_error(items, err)
            return
        took = time.perf_counter() - began
        self.busy += took
        if took < _FAST and size < _MAX_CHUNK:
            self.chunk = size * 2
        elif took > _SLOW and size > 1:
            self.chunk = size // 2
        self.credits -= 1
        self.conn.send((DATA, self.epoch, items))

    def report(self) -> dict[str, Any]:
        return {"stages": self.it.profile(), "busy_s": self.busy}  # type: ignore[union-attr]

    def send_error(self, items: list[Any], err: BaseException) -> None:
        self.it = None
        text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        try:
            self.conn.send((ERROR, self.epoch, items, type(err), text))
        except Exception:  # the type does not pickle (a local class): send its text only
            self.conn.send((ERROR, self.epoch, items, None, text))


class WorkerInfo:
    """What ``worker_init_fn`` and ``worker_reset_fn`` are told about their worker."""

    def __init__(self, num_workers: int, worker_id: int) -> None:
        self.num_workers = num_workers
        self.worker_id = worker_id

    def __repr__(self) -> str:
        return f"WorkerInfo(num_workers={self.num_workers}, worker_id={self.worker_id})"


def prepare_worker_pipe(pipe: Any, feed: _Feed, worker_id: int, num_workers: int) -> Any:
    """The worker's part of the graph: after the dispatcher (fed by main), sharded for this worker."""
    from loom.data._graph import list_dps, replace_dp, traverse_dps
    from loom.data.iter._dispatch import ShardingRoundRobinDispatcher, _Receiver
    from loom.data.iter._sharding import SHARDING_PRIORITIES, apply_sharding

    dispatchers = [p for p in list_dps(traverse_dps(pipe)) if isinstance(p, ShardingRoundRobinDispatcher)]
    for d in dispatchers:
        receiver = _Receiver(feed, num_workers, worker_id)
        if d is pipe:
            pipe = receiver
        else:
            replace_dp(traverse_dps(pipe), d, receiver)
    if num_workers > 1 and not dispatchers:
        apply_sharding(pipe, num_workers, worker_id, SHARDING_PRIORITIES.MULTIPROCESSING)
    return pipe


def worker_main(
    pipe: Any,
    conn: Any,
    worker_id: int,
    num_workers: int,
    rank: int,
    worker_init_fn: Any,
    worker_reset_fn: Any,
    inherited: list[Any],
) -> None:
    """Entry point of one worker process: shard the pipe, then serve commands until EXIT."""
    import torch

    for other in inherited:
        other.close()

    torch.set_num_threads(1)
    try:
        worker = _Worker(pipe, conn, worker_id, num_workers, rank)
        worker.reset_fn = worker_reset_fn
        try:
            worker.pipe = prepare_worker_pipe(pipe, worker.feed, worker_id, num_workers)
            if worker_init_fn is not None:
                worker.pipe = worker_init_fn(worker.pipe, WorkerInfo(num_workers, worker_id))
        except Exception as err:
            worker.init_error = err  # reported when the first iteration starts
        worker.run()
    except (EOFError, BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass  # main went away or is shutting us down
    finally:
        conn.close()
