"""Per-stage timing (NOTE [per-stage timing]): off by default, consistent sums, counts as without it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from loom.data import DataLoader2, profiling
from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically


@pytest.fixture(autouse=True)
def _profiling_off() -> Iterator[None]:
    assert profiling() is False
    yield
    profiling(False)


def _slow(x: int) -> int:
    time.sleep(0.002)
    return x


def _chain() -> Any:
    return IterableWrapper(range(40)).map(lambda x: x + 1).filter(lambda x: x % 2 == 0).batch(3)


def _profile(build: Any, **switch: bool) -> tuple[list[Any], list[dict[str, Any]]]:
    profiling(True, **switch)
    it = iter(build())
    out = list(it)
    return out, it.profile()


def _assert_sums(rows: list[dict[str, Any]]) -> None:
    assert all(r["time_s"] >= 0.0 for r in rows)
    assert sum(r["self_s"] for r in rows) == pytest.approx(rows[0]["time_s"], rel=1e-9, abs=1e-12)
    for r in rows:  # a stage's time holds its direct sources' times
        prefix = r["path"] + "."
        direct = [s for s in rows if s["path"].startswith(prefix) and "." not in s["path"][len(prefix) :]]
        assert r["time_s"] - sum(s["time_s"] for s in direct) == pytest.approx(r["self_s"], abs=1e-12)


def test_timing_is_off_by_default_and_with_counting_only() -> None:
    it = iter(_chain())
    list(it)
    assert all("time_s" not in r and r["produced"] is None for r in it.profile())
    _out, rows = _profile(_chain)
    assert all("time_s" not in r and "self_s" not in r for r in rows)


def test_switches() -> None:
    assert profiling(timing=True) is True  # timing turns profiling on
    assert profiling(False) is False
    _out, rows = _profile(_chain)  # and profiling(False) turned timing off
    assert all("time_s" not in r for r in rows)


def test_counts_match_counting_mode_and_output_is_unchanged() -> None:
    out_c, counted = _profile(_chain)
    profiling(False)
    out_t, timed = _profile(_chain, timing=True)
    assert out_t == out_c == list(_chain())
    assert [(r["path"], r["pipe"], r["produced"]) for r in timed] == [
        (r["path"], r["pipe"], r["produced"]) for r in counted
    ]
    _assert_sums(timed)


def test_several_sources_add_up() -> None:
    def build() -> Any:
        left = IterableWrapper(range(30)).map(lambda x: x * 2)
        right = IterableWrapper(range(30)).filter(lambda x: x % 3 == 0)
        return left.zip(right).concat(IterableWrapper(range(5)))

    out, rows = _profile(build, timing=True)
    assert out == list(build())
    assert len(rows) == 7
    _assert_sums(rows)


def test_a_sleeping_stage_dominates() -> None:
    def build() -> Any:
        return IterableWrapper(range(25)).map(lambda x: x + 1).map(_slow).filter(lambda x: x % 2 == 0)

    _out, rows = _profile(build, timing=True)
    _assert_sums(rows)
    slow = max(rows, key=lambda r: r["self_s"])
    assert slow["path"] == "root.source"  # the map(_slow) stage
    assert slow["self_s"] >= 25 * 0.002  # it slept that long at least; the others did not sleep
    assert slow["self_s"] > sum(r["self_s"] for r in rows if r is not slow)


def test_timed_iteration_state_and_for_loop() -> None:
    profiling(True, timing=True)
    assert_resumes_identically(_chain)
    it = iter(_chain())
    for i, _x in enumerate(it):
        if i == 3:
            break
    rows = it.profile()
    assert rows[0]["produced"] == 4
    _assert_sums(rows)


def test_loader_stats_with_timing() -> None:
    loader = DataLoader2(IterableWrapper(range(20)).map(_slow).filter(lambda x: x % 2 == 0))
    loader.enable_stats(timing=True)
    with loader:
        out = list(loader)
        stats = loader.stats()
    loader.enable_stats(False)
    assert out == [x for x in range(20) if x % 2 == 0]
    rows = stats["stages"]
    assert [(r["pipe"], r["produced"]) for r in rows] == [
        ("Filter", 10),
        ("Mapper", 20),
        ("IterableWrapper", 20),
    ]
    _assert_sums(rows)
    assert max(rows, key=lambda r: r["self_s"])["pipe"] == "Mapper"
    loader.enable_stats()
    assert profiling() is True
    assert profiling(timing=None) is True
    again = DataLoader2(IterableWrapper(range(3)))
    again.enable_stats()
    list(again)
    assert all("time_s" not in r for r in again.stats()["stages"])
    again.enable_stats(False)
    loader.enable_stats(False)


@pytest.mark.multiprocess
@pytest.mark.timeout(60)
def test_loader_stats_with_timing_in_workers() -> None:
    from loom.data import MultiProcessingReadingService

    pipe = IterableWrapper(range(16)).sharding_filter().map(_slow).filter(lambda x: x % 2 == 0)
    rs = MultiProcessingReadingService(num_workers=2)
    with DataLoader2(pipe, reading_service=rs) as loader:
        loader.enable_stats(timing=True)
        try:
            out = list(loader)
            stats = loader.stats()
        finally:
            loader.enable_stats(False)
    assert sorted(out) == [x for x in range(16) if x % 2 == 0]
    for w in range(2):
        rows = [r for r in stats["stages"] if r["worker"] == w]
        assert [r["pipe"] for r in rows] == ["Filter", "Mapper", "ShardingFilter", "IterableWrapper"]
        assert rows[1]["produced"] == len(range(w, 16, 2))
        _assert_sums(rows)
        assert max(rows, key=lambda r: r["self_s"])["pipe"] == "Mapper"
