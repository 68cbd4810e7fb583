from __future__ import annotations

import threading
import time

import pytest
import torch

from loom.data.iter import IterableWrapper, PinMemory

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [1, 3, 50])
def test_prefetch_matches_torchdata(size) -> None:
    td = torchdata_iter()
    assert list(IterableWrapper(range(30)).prefetch(size)) == list(
        td.IterableWrapper(range(30)).prefetch(size)
    )


@pytest.mark.timeout(60)
def test_prefetch_reads_ahead_in_a_thread_and_stays_bounded() -> None:
    names, pulled = set(), []

    def tag(x):
        names.add(threading.current_thread().name)
        pulled.append(x)
        return x

    it = iter(IterableWrapper(range(100)).map(tag).prefetch(4))
    assert next(it) == 0
    time.sleep(0.2)
    assert names == {"loom-prefetch"}
    assert len(pulled) <= 1 + 4 + 1  # the yielded one, a full buffer, one in hand


@pytest.mark.timeout(60)
def test_prefetch_errors() -> None:
    with pytest.raises(ValueError, match="prefetch: buffer_size must be >= 1, got 0"):
        IterableWrapper([1]).prefetch(0)

    def boom(x):
        if x == 2:
            raise KeyError("two")
        return x

    it = iter(IterableWrapper(range(5)).map(boom).prefetch(2))
    assert [next(it), next(it)] == [0, 1]
    with pytest.raises(KeyError, match="two"):
        next(it)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("size", [1, 4])
def test_prefetch_resumes(size) -> None:
    assert_resumes_identically(
        lambda: IterableWrapper(range(15)).map(lambda x: x * 3).prefetch(size).batch(2)
    )


def test_pin_memory_needs_cuda() -> None:
    if torch.cuda.is_available():
        out = list(IterableWrapper([torch.ones(2), torch.zeros(3)]).pin_memory())
        assert all(t.is_pinned() for t in out)
    else:
        with pytest.raises(RuntimeError, match="pin_memory: needs CUDA"):
            PinMemory(IterableWrapper([torch.ones(2)]))
