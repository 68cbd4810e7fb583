"""Worker errors surface with their type and traceback; dead workers are detected; no process outlives the loader."""

from __future__ import annotations

import ctypes
import faulthandler
import gc
import os
import signal
import time

import pytest

from loom.data import DataLoader2, MultiProcessingReadingService
from loom.data.iter import IterableWrapper

from ._pipes import round_robin

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(60)]


class CustomError(Exception):
    pass


def _fail_at_7(x: int) -> int:
    if x == 7:
        raise CustomError(f"element {x} is cursed")
    return x * 10


def _fail_key(x: int) -> int:
    if x == 3:
        raise KeyError("missing-key")
    return x


def _segfault_at_5(x: int) -> int:
    if x == 5:
        faulthandler.disable()  # keep the crash quiet in the test log
        ctypes.string_at(0)  # reads address 0: SIGSEGV in the worker
    return x


def _loader(pipe, workers):
    return DataLoader2(pipe, reading_service=MultiProcessingReadingService(num_workers=workers))


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_worker_exception_keeps_type_traceback_and_order() -> None:
    pipe = IterableWrapper(range(20)).sharding_filter().map(_fail_at_7)
    # The elements before the failure, in the loader's order: worker 1 fails at its 4th element.
    shards = [[x * 10 for x in range(i, 20, 2)] for i in range(2)]
    expected = round_robin(shards)
    expected = expected[: expected.index(70)]
    with _loader(pipe, 2) as loader:
        got = []
        with pytest.raises(CustomError, match="element 7 is cursed") as info:
            for x in loader:
                got.append(x)
        assert got == expected
        text = str(info.value)
        assert "DataLoader2 worker 1" in text
        assert "Traceback (most recent call last)" in text
        assert "_fail_at_7" in text
        # The workers survive a failed epoch; the next one fails the same way.
        with pytest.raises(CustomError):
            list(loader)


def test_key_error_message_is_readable() -> None:
    with (
        _loader(IterableWrapper(range(5)).sharding_filter().map(_fail_key), 2) as loader,
        pytest.raises(KeyError) as info,
    ):
        list(loader)
    assert "missing-key" in str(info.value)
    assert "\\n" not in str(info.value)


def test_killed_worker_is_reported_within_seconds_and_revived() -> None:
    pipe = IterableWrapper(range(10**6)).sharding_filter()
    with _loader(pipe, 2) as loader:
        it = iter(loader)
        assert next(it) == 0
        victim = loader.reading_service.worker_pids[1]
        os.kill(victim, signal.SIGKILL)
        began = time.monotonic()
        with pytest.raises(
            RuntimeError, match=r"worker 1 \(pid \d+\) exited unexpectedly \(killed by signal SIGKILL\)"
        ):
            for _ in it:
                pass
        assert time.monotonic() - began < 10
        # A new epoch restarts the dead worker.
        small = _loader(IterableWrapper(range(10)).sharding_filter(), 2)
        with small:
            assert list(small) == list(range(10))
        assert list(loader)[:4] == [0, 1, 2, 3]
        assert loader.reading_service.worker_pids[1] != victim


def test_segfault_in_a_worker_is_an_error_not_a_hang() -> None:
    pipe = IterableWrapper(range(12)).sharding_filter().map(_segfault_at_5)
    with _loader(pipe, 2) as loader:
        began = time.monotonic()
        with pytest.raises(
            RuntimeError, match=r"worker 1 .* exited unexpectedly \(killed by signal SIGSEGV\)"
        ):
            list(loader)
        assert time.monotonic() - began < 10


def test_shutdown_and_garbage_collection_leave_no_processes() -> None:
    pipe = IterableWrapper(range(10**5)).sharding_filter().batch(8)
    loader = _loader(pipe, 2)
    it = iter(loader)
    next(it)  # mid-epoch, workers busy
    pids = loader.reading_service.worker_pids
    loader.shutdown()
    assert all(_gone(p) for p in pids)

    def abandoned() -> list[int]:
        other = _loader(pipe, 2)
        it = iter(other)
        next(it)
        return other.reading_service.worker_pids

    pids = abandoned()
    gc.collect()
    assert all(_gone(p) for p in pids)


def _big(x: int) -> bytes:
    return bytes(200_000)


def test_shutdown_is_prompt_with_large_chunks_in_flight() -> None:
    # Workers blocked sending chunks far larger than the pipe buffer still exit at once.
    loader = _loader(IterableWrapper(range(1000)).sharding_filter().map(_big), 2)
    it = iter(loader)
    next(it)
    time.sleep(0.3)  # let the workers fill their pipes
    pids = loader.reading_service.worker_pids
    began = time.monotonic()
    loader.shutdown()
    assert time.monotonic() - began < 4.5  # the join timeout a blocked worker would hit is 5 s
    assert all(_gone(p) for p in pids)
