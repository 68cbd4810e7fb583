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
def _read_with_timing_in_workers(pipe: Any) -> tuple[list[Any], dict[str, Any]]:
    """All of ``pipe`` through DataLoader2 with 2 workers and timing on, and the loader's stats."""
    from loom.data import MultiProcessingReadingService

    with DataLoader2(pipe, reading_service=MultiProcessingReadingService(num_workers=2)) as loader:
        loader.enable_stats(timing=True)
        try:
            return list(loader), loader.stats()
        finally:
            loader.enable_stats(False)


def test_loader_stats_with_timing_in_workers() -> None:

    pipe = IterableWrapper(range(16)).sharding_filter().map(_slow).filter(lambda x: x % 2 == 0)
    out, stats = _read_with_timing_in_workers(pipe)
    assert sorted(out) == [x for x in range(16) if x % 2 == 0]
    for w in range(2):
        rows = [r for r in stats["stages"] if r["worker"] == w]
        assert [r["pipe"] for r in rows] == ["Filter", "Mapper", "ShardingFilter", "IterableWrapper"]
        assert rows[1]["produced"] == len(range(w, 16, 2))
        _assert_sums(rows)
        assert max(rows, key=lambda r: r["self_s"])["pipe"] == "Mapper"


# --- sampled timing (NOTE [per-stage timing] in src/loom/data/_profile.py) ---


class _FakeClock:
    """A clock that only the stages below move: each adds its known cost per element."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def spend(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> _FakeClock:
    from loom.data import _profile

    clock = _FakeClock()
    monkeypatch.setattr(_profile, "_clock", clock)
    monkeypatch.setattr(_profile, "_BIAS", 0.0)
    monkeypatch.setattr(_profile, "_jitter", __import__("random").Random(7).random)
    return clock


def _force_sampling(monkeypatch: pytest.MonkeyPatch, every: int) -> None:
    from loom.data import _profile

    monkeypatch.setattr(_profile, "_SAMPLE_EVERY", every)
    monkeypatch.setattr(_profile, "_TIME_ALL_ABOVE_S", 1e9)  # never time every element


def _by_pipe(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["path"]: r for r in rows}


def test_sampled_estimates_match_known_costs(fake_clock: _FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    _force_sampling(monkeypatch, 16)
    n = 3000

    def a(x: int) -> int:
        fake_clock.spend(200e-6)
        return x

    def b(x: int) -> int:
        fake_clock.spend(50e-6)
        return x

    out, rows = _profile(lambda: IterableWrapper(range(n)).map(a).map(b), timing=True)
    assert out == list(range(n))
    r = _by_pipe(rows)
    assert [r[p]["produced"] for p in ("root", "root.source", "root.source.source")] == [n, n, n]
    assert n / 40 < r["root"]["sampled"] < n / 8  # about one in 16 was timed
    assert r["root"]["time_s"] == pytest.approx(n * 250e-6, rel=0.01)
    assert r["root"]["self_s"] == pytest.approx(n * 50e-6, rel=0.02)
    assert r["root.source"]["time_s"] == pytest.approx(n * 200e-6, rel=0.01)
    assert r["root.source.source"]["time_s"] == pytest.approx(0.0, abs=1e-9)
    _assert_sums(rows)


def test_sampling_does_not_alias_with_periodic_costs(
    fake_clock: _FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _force_sampling(monkeypatch, 16)  # the same period as the data: a fixed interval would alias
    n = 16000

    def spiky(x: int) -> int:
        fake_clock.spend(1e-3 if x % 16 == 0 else 10e-6)
        return x

    _out, rows = _profile(lambda: IterableWrapper(range(n)).map(spiky), timing=True)
    truth = n // 16 * 1e-3 + (n - n // 16) * 10e-6
    assert rows[0]["sampled"] < n / 8
    assert rows[0]["time_s"] == pytest.approx(truth, rel=0.3)


class _Stalling:
    """1 µs per element, and once, in a timed ``next`` after the 5000th element, a 100 ms stall."""

    def __init__(self, clock: _FakeClock, n: int) -> None:
        self.clock = clock
        self.left = iter(range(n))
        self.stalled = False

    def __iter__(self) -> _Stalling:
        return self

    def __next__(self) -> int:
        x = next(self.left)
        timed = self.clock.reads % 2 == 1  # the sampler read the clock before this next
        if timed and x > 5000 and not self.stalled:
            self.stalled = True
            self.clock.spend(0.1)
        self.clock.spend(1e-6)
        return x


def test_a_rare_stall_counts_once(fake_clock: _FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from loom.data._profile import StageTimer, counted, timed

    _force_sampling(monkeypatch, 64)
    n = 20000
    stage = _Stalling(fake_clock, n)
    it, counter = counted(stage)
    timer = StageTimer(counter)
    assert list(timed(it, timer)) == list(range(n))
    assert stage.stalled
    truth = 0.1 + n * 1e-6
    assert timer.time_s() == pytest.approx(truth, rel=0.01)  # not ~64 x 100 ms: the stall counts once
    assert timer.sampled < n / 32


def _nap(seconds: float) -> float:
    began = time.perf_counter()
    time.sleep(seconds)  # sleeping, not spinning: other jobs on a loaded machine hardly stretch it
    return time.perf_counter() - began


def _napping_pipeline(n: int, truth: dict[str, float]) -> Any:
    def a(x: int) -> int:
        truth["a"] += _nap(1e-3)
        return x

    def b(x: int) -> int:
        truth["b"] += _nap(250e-6)
        return x

    return IterableWrapper(range(n)).map(b).map(a)


@pytest.mark.parametrize("sampled", [False, True])
def test_real_clock_estimates_track_sleeping_stages(sampled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stages that sleep ~250 µs then ~1 ms: self times within 25% of what the stages measured themselves.

    With the defaults such stages are timed at every element; ``sampled`` forces about one in 4. A loaded
    machine can still delay a timed element, so the check gets three tries.
    """
    if sampled:
        _force_sampling(monkeypatch, 4)
    n = 100
    errors = []
    for _attempt in range(3):
        truth = {"a": 0.0, "b": 0.0}
        _out, rows = _profile(lambda truth=truth: _napping_pipeline(n, truth), timing=True)
        r = _by_pipe(rows)
        _assert_sums(rows)
        assert [r[p]["produced"] for p in ("root", "root.source", "root.source.source")] == [n] * 3
        if sampled:
            assert r["root"]["sampled"] < n * 2 // 3
        else:
            assert r["root"]["sampled"] == r["root.source"]["sampled"] == n
        got = (r["root"]["self_s"] / truth["a"], r["root.source"]["self_s"] / truth["b"])
        ratio = (r["root"]["time_s"] / r["root.source"]["time_s"]) / ((truth["a"] + truth["b"]) / truth["b"])
        errors.append((got, ratio))
        if all(abs(g - 1.0) < 0.25 for g in got) and abs(ratio - 1.0) < 0.25:
            return
    raise AssertionError(f"estimate / truth (self of a, self of b), time ratio, per try: {errors}")


def test_counts_are_exact_at_any_point() -> None:
    """Stop anywhere, mid-chunk included: counts against a plain-Python oracle."""
    profiling(True, timing=True)
    n = 20000
    it = iter(IterableWrapper(range(n)).map(lambda x: x * 3).filter(lambda x: x % 2 == 0).map(str))
    taken = 0
    for stop in (1, 7, 8, 9, 100, 1001, 4321, 9999):
        while taken < stop:
            next(it)
            taken += 1
        rows = it.profile()
        # the stop-th kept element is 3 * 2 * (stop - 1): the sources produced 2 * stop - 1 elements
        assert [r["produced"] for r in rows] == [stop, stop, 2 * stop - 1, 2 * stop - 1]
        assert all(r["sampled"] <= r["produced"] for r in rows)
    rest = list(it)
    assert len(rest) == n // 2 - taken
    rows = it.profile()
    assert [r["produced"] for r in rows] == [n // 2, n // 2, n, n]
    assert rows[-1]["sampled"] < n // 20  # the cheap stages were sampled
    _assert_sums(rows)


def test_graphs_with_several_readers_count_exactly() -> None:
    def build() -> Any:
        a, b = IterableWrapper(range(3000)).map(lambda x: x + 1).fork(2)
        evens = a.filter(lambda x: x % 2 == 0)
        mixed = evens.zip(b).mux(IterableWrapper(range(100)).map(lambda x: (x, x)))
        return mixed

    expected = list(build())
    out, rows = _profile(build, timing=True)
    assert out == expected
    profiling(False)
    _out_c, counted = _profile(build)
    assert [(r["path"], r["pipe"], r["produced"]) for r in rows] == [
        (r["path"], r["pipe"], r["produced"]) for r in counted
    ]
    assert rows[0]["produced"] == len(expected)
    assert all(r["time_s"] >= 0.0 for r in rows if "time_s" in r)


def test_errors_pass_through_and_iteration_goes_on() -> None:
    def fragile(x: int) -> int:
        if x % 7 == 3:  # often enough that some fall on timed next calls, some inside untimed chunks
            raise ValueError(f"bad {x}")
        return x

    def drain(it: Any) -> tuple[list[int], list[str]]:
        got: list[int] = []
        errors: list[str] = []
        while True:
            try:
                got.append(next(it))
            except StopIteration:
                return got, errors
            except ValueError as err:
                errors.append(str(err))

    plain = drain(iter(IterableWrapper(range(2000)).map(fragile)))
    profiling(True, timing=True)
    it = iter(IterableWrapper(range(2000)).map(fragile))
    assert drain(it) == plain
    assert plain[1][:2] == ["bad 3", "bad 10"] and len(plain[1]) == len(range(3, 2000, 7))
    assert it.profile()[0]["produced"] == 2000 - len(range(3, 2000, 7))


def test_sampled_iteration_resumes() -> None:
    profiling(True, timing=True)
    build = lambda: IterableWrapper(range(1500)).map(lambda x: x + 1).filter(lambda x: x % 3 != 0).batch(5)  # noqa: E731
    assert_resumes_identically(build, every=37)


@pytest.mark.multiprocess
@pytest.mark.timeout(60)
def test_sampled_timing_in_workers_counts_exactly() -> None:

    n = 20000
    pipe = IterableWrapper(range(n)).sharding_filter().map(lambda x: x * 2).filter(lambda x: x % 3 == 0)
    out, stats = _read_with_timing_in_workers(pipe)
    assert sorted(out) == [x * 2 for x in range(n) if x * 2 % 3 == 0]
    for w in range(2):
        rows = [r for r in stats["stages"] if r["worker"] == w]
        assert [r["produced"] for r in rows] == [
            len([x for x in range(w, n, 2) if x * 2 % 3 == 0]),
            len(range(w, n, 2)),
            len(range(w, n, 2)),
            n,
        ]
        assert rows[1]["sampled"] < rows[1]["produced"] // 10
        _assert_sums(rows)
