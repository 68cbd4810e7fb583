from __future__ import annotations

import threading
import time

import pytest

from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter


def _slow_square(x):
    time.sleep(0.001 * (x % 3))
    return x * x


@pytest.mark.parametrize(("tasks", "workers"), [(1, 1), (3, 2), (128, None)])
def test_matches_torchdata_in_order(tasks, workers) -> None:
    td = torchdata_iter()
    ours = list(
        IterableWrapper(range(20)).threadpool_map(_slow_square, scheduled_tasks=tasks, max_workers=workers)
    )
    theirs = list(
        td.IterableWrapper(range(20)).threadpool_map(_slow_square, scheduled_tasks=tasks, max_workers=workers)
    )
    assert ours == theirs == [x * x for x in range(20)]


def test_columns_and_threads() -> None:
    names = set()

    def tag(x):
        names.add(threading.current_thread().name)
        return x + 1

    out = list(
        IterableWrapper([(1, 2), (3, 4)]).threadpool_map(tag, input_col=1, output_col=-1, max_workers=2)
    )
    assert out == [(1, 2, 3), (3, 4, 5)]
    assert threading.current_thread().name not in names


def test_errors() -> None:
    with pytest.raises(ValueError, match="threadpool_map: scheduled_tasks must be >= 1, got 0"):
        IterableWrapper([1]).threadpool_map(abs, scheduled_tasks=0)
    with pytest.raises(ValueError, match="threadpool_map: max_workers must be >= 1, got 0"):
        IterableWrapper([1]).threadpool_map(abs, max_workers=0)
    with pytest.raises(ValueError, match="output_col must be None when input_col is None"):
        IterableWrapper([1]).threadpool_map(abs, output_col=1)

    def boom(x):
        raise KeyError(x)

    with pytest.raises(KeyError):
        list(IterableWrapper([1]).threadpool_map(boom))


@pytest.mark.parametrize("tasks", [1, 4])
def test_resumes(tasks) -> None:
    assert_resumes_identically(
        lambda: IterableWrapper(range(12)).threadpool_map(_slow_square, scheduled_tasks=tasks)
    )
