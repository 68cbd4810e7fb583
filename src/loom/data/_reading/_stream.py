"""One epoch read from MultiProcessingReadingService's workers: round-robin order, prefetch, state.

See NOTE [multiprocessing order and state] in _multiprocessing.py and NOTE [worker protocol] in _worker.py.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import signal
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from loom.data._reading._worker import (
    CREDIT,
    DATA,
    END,
    ERROR,
    FEED,
    NEED,
    START,
    STATE,
    STATED,
    STOP,
    rebuild_error,
)

_FEED_CHUNK = 64
MP_STATE_VERSION = "loom.multiprocessing/1"


class _Slot:
    """Main's view of one worker: its process, pipe, buffered elements, and whether it ended."""

    __slots__ = ("buf", "busy", "conn", "done", "error", "index", "last", "proc", "profile")

    def __init__(self, index: int, proc: Any, conn: Any) -> None:
        self.index = index
        self.proc = proc
        self.conn = conn
        self.buf: deque[Any] = deque()
        self.done = False
        self.error: BaseException | None = None
        self.last = 1  # size of the last chunk received
        self.profile: list[dict[str, Any]] = []  # per-stage counts, as of the last report
        self.busy = 0.0  # seconds the worker spent in the pipeline this epoch, as of the last report


def died(slot: _Slot) -> RuntimeError:
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


class _MPStream(Iterator[Any]):
    """One epoch read from the workers; see NOTE [multiprocessing order and state]."""

    def __init__(self, service: Any, epoch: int, seed: int, state: Any) -> None:
        from loom.data._iterator import PipeIterator, _decode, _profile_mode
        from loom.data._reading._base import seeded

        self.service = service
        self.slots = service._slots
        self.epoch = epoch
        self.cursor = 0
        self.finished = False
        self.cap = service.main_prefetch_cnt
        self.stats = service._stats
        n = len(self.slots)
        if state is not None:
            if not isinstance(state, dict) or state.get("version") != MP_STATE_VERSION:
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
            with seeded(seed):
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
            slot.profile = []
            slot.busy = 0.0
            worker_state = None
            if state is not None:
                w = state["workers"][i]
                slot.buf.extend(_decode(w["pending"]))
                slot.done = bool(w["done"])
                worker_state = w["state"]
            if not slot.done:
                start = (START, epoch, seed, worker_state, service.worker_prefetch_cnt, _profile_mode())
                self._send(slot, start)
        # A trailing FullSync runs here, over the workers' stream.
        self.tail_state: Any = None
        self.out: Iterator[Any] = self
        self.fast_next: Any = self.body_next
        tail = service._tail
        if tail is not None:
            if state is not None and state.get("tail") is not None:
                self.tail_state = tail._load_state(_decode(state["tail"]), None)
            else:
                self.tail_state = tail._init_state(None)
            self.out = tail._iterate([_BodyIterator(self)], self.tail_state)
            self.fast_next = self.out.__next__

    def _send(self, slot: _Slot, msg: tuple[Any, ...]) -> None:
        try:
            slot.conn.send(msg)
        except (OSError, ValueError) as err:
            raise died(slot) from err

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
                raise died(slot) from err
        raise died(slot)

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
            slot.profile = msg[3]["stages"]
            slot.busy = msg[3]["busy_s"]
        elif kind == ERROR:
            slot.buf.extend(msg[2])
            slot.done = True
            slot.error = rebuild_error(msg[3], msg[4], f"DataLoader2 worker {slot.index}")
        elif kind == STATED:
            if msg[3] is not None:
                raise RuntimeError(
                    f"DataLoader2.state_dict: worker {slot.index} could not save its state: {msg[3]}"
                )
            if msg[4] is not None:
                slot.profile = msg[4]["stages"]
                slot.busy = msg[4]["busy_s"]
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
                    raise died(slot) from err
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
            self._send(slot, (STATE, True))
        states: dict[int, Any] = {}
        for slot in live:
            states[slot.index] = self._pump(slot, want_state=True)
        out: dict[str, Any] = {
            "version": MP_STATE_VERSION,
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

    def profile(self) -> list[dict[str, Any]]:
        """Per worker and stage, elements produced (and seconds, with timing) so far, when loom.data.profiling is on."""
        live = [s for s in self.slots if not s.done and not self.finished]
        for slot in live:
            self._send(slot, (STATE, False))
        for slot in live:
            self._pump(slot, want_state=True)
        return [{"worker": slot.index, **row} for slot in self.slots for row in slot.profile]

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
