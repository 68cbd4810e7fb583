"""The shared benchmark harness: medians, ratios and records, checked with controlled timings."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import harness


def test_compare_ratio_tracks_the_slower_baseline(tmp_path) -> None:
    suite = harness.Suite("selftest", warmup=1, repeats=5)
    record = suite.compare(
        "sleep", loom=lambda: time.sleep(0.001), items_per_call=10, slow=lambda: time.sleep(0.004)
    )
    # A real sleep is at least as long as asked: the baseline is 4 ms against 1 ms plus overheads.
    assert record.median_s["loom"] >= 0.001
    assert record.median_s["slow"] >= 0.004
    assert record.ratio_vs_loom["slow"] == record.median_s["slow"] / record.median_s["loom"]
    assert record.ratio_vs_loom["slow"] > 1.5
    assert record.throughput("loom") == 10 / record.median_s["loom"]
    path = tmp_path / "out.json"
    suite.finish(str(path))
    data = json.loads(path.read_text())
    assert data["suite"] == "selftest" and data["records"][0]["name"] == "sleep"
    assert {"date", "torch", "gpu", "machine"} <= set(data["machine"])


def test_interleaved_calls_each_function_equally() -> None:
    calls = {"a": 0, "b": 0}

    def bump(k: str):
        return lambda: calls.__setitem__(k, calls[k] + 1)

    times = harness.interleaved({"a": bump("a"), "b": bump("b")}, warmup=2, repeats=7)
    assert calls == {"a": 9, "b": 9}
    assert len(times["a"]) == len(times["b"]) == 7


def test_after_effects_of_one_function_hit_the_others_evenly() -> None:
    # "loop" leaves a cost behind that the next call pays; a fixed order would always hand it to "a".
    followers: dict[str, int] = {"a": 0, "b": 0}
    previous = [""]

    def make(name: str):
        def run() -> None:
            if previous[0] == "loop" and name in followers:
                followers[name] += 1
            previous[0] = name

        return run

    harness.interleaved({n: make(n) for n in ("a", "b", "loop")}, warmup=0, repeats=60)
    assert min(followers.values()) >= 10, followers


def test_isolated_baselines_run_after_the_interleaved_ones() -> None:
    log: list[str] = []
    suite = harness.Suite("selftest", warmup=1, repeats=3)
    record = suite.compare(
        "iso",
        loom=lambda: log.append("loom"),
        isolate=("loop",),
        fast=lambda: log.append("fast"),
        loop=lambda: log.append("loop"),
    )
    first_loop = log.index("loop")
    assert set(log[:first_loop]) == {"loom", "fast"} and set(log[first_loop:]) == {"loop"}
    assert log.count("loop") == 4 and set(record.median_s) == {"loom", "fast", "loop"}
