"""A tiny shared benchmark harness: warm-up, repeats, medians, CUDA sync, same-process A/B ratios.

Every benchmark runs Loom and its anchor side by side in one process, interleaving the two so that
noise from this shared machine hits both alike, and reports medians and the anchor/Loom ratio
(above 1 means Loom is faster). Results print as a table and can be written as JSON records.

Example:
    from harness import Suite
    suite = Suite("data")
    suite.compare("sum", loom=lambda: sum(range(1000)), anchor=lambda: sum(list(range(1000))))
    suite.finish()
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


def _sync_all_cuda() -> None:
    try:
        import torch
    except ImportError:  # the harness itself does not need torch
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def time_once(fn: Callable[[], Any], sync: bool = True) -> float:
    """Seconds for one call of ``fn``, with CUDA synchronized before and after."""
    if sync:
        _sync_all_cuda()
    start = time.perf_counter()
    fn()
    if sync:
        _sync_all_cuda()
    return time.perf_counter() - start


def measure(fn: Callable[[], Any], *, warmup: int = 3, repeats: int = 20, sync: bool = True) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` timed calls; returns the seconds."""
    for _ in range(warmup):
        fn()
    return [time_once(fn, sync) for _ in range(repeats)]


def interleaved(
    fns: dict[str, Callable[[], Any]], *, warmup: int = 3, repeats: int = 20, sync: bool = True
) -> dict[str, list[float]]:
    """Time several functions in turn, in a new shuffled order each round.

    Taking turns makes drifting noise hit all of them; shuffling makes the after-effects of one function
    (a slow Python loop that leaves caches cold, a burst of allocations) land on each of the others equally
    often, instead of always on the one that follows it. The order is seeded: runs are repeatable.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    shuffle = random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)
        for name in order:
            times[name].append(time_once(fns[name], sync))
    return times


@dataclass
class Record:
    """One comparison: median seconds per call for Loom and each baseline, and ratios."""

    suite: str
    name: str
    median_s: dict[str, float]
    ratio_vs_loom: dict[str, float]  # baseline median / Loom median: > 1 means Loom is faster
    items_per_call: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def throughput(self, who: str) -> float | None:
        if not self.items_per_call:
            return None
        return self.items_per_call / self.median_s[who]


def format_rows(rows: list[tuple[str, ...]]) -> str:
    """Rows of cells as left-aligned fixed-width text, the first row a header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)


def machine_info() -> dict[str, Any]:
    """Machine, GPU, torch version and date, recorded with every result."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": _cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    return info


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class Suite:
    """A named group of comparisons that prints a table and writes JSON at the end."""

    def __init__(self, name: str, *, warmup: int = 3, repeats: int = 20) -> None:
        self.name = name
        self.warmup = warmup
        self.repeats = repeats
        self.records: list[Record] = []

    def compare(
        self,
        name: str,
        loom: Callable[[], Any],
        items_per_call: int | None = None,
        sync: bool = True,
        isolate: tuple[str, ...] = (),
        **baselines: Callable[[], Any],
    ) -> Record:
        """Time ``loom`` against each named baseline, interleaved, and keep the record.

        Baselines named in ``isolate`` are timed on their own, after the others: a slow Python loop taking
        turns with two sub-millisecond GPU calls left each call that followed it slower (H100, BENCHMARKS.md),
        which measures the loop's after-effects rather than the calls.
        """
        fns = {"loom": loom, **{k: v for k, v in baselines.items() if k not in isolate}}
        times = interleaved(fns, warmup=self.warmup, repeats=self.repeats, sync=sync)
        for who in isolate:
            times[who] = measure(baselines[who], warmup=self.warmup, repeats=self.repeats, sync=sync)
        medians = {who: statistics.median(ts) for who, ts in times.items()}
        ratios = {who: medians[who] / medians["loom"] for who in baselines}
        record = Record(self.name, name, medians, ratios, items_per_call)
        self.records.append(record)
        return record

    def table(self) -> str:
        """The records as a fixed-width text table."""
        rows = [("benchmark", "who", "median ms", "items/s", "baseline/loom")]
        for r in self.records:
            for who, median in r.median_s.items():
                tput = r.throughput(who)
                ratio = "" if who == "loom" else f"{r.ratio_vs_loom[who]:.2f}x"
                rows.append((r.name, who, f"{median * 1e3:.3f}", f"{tput:,.0f}" if tput else "", ratio))
        return format_rows(rows)

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.name, "machine": machine_info(), "records": [asdict(r) for r in self.records]}

    def finish(self, json_path: str | None = None) -> None:
        """Print the table and, if asked, write the JSON record."""
        print(f"== {self.name} ==")
        print(self.table())
        if json_path:
            with open(json_path, "w") as f:
                json.dump(self.to_json(), f, indent=2)


def cli_args(description: str) -> argparse.Namespace:
    """Common flags for benchmark scripts: ``--json PATH``, ``--quick``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", default=None, help="write results as JSON to this file")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (a smoke run)")
    return parser.parse_args()
