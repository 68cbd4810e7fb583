"""loom.data loader throughput: DataLoader2 with 0, 1 and 2 workers vs torch DataLoader and torchdata 0.9.

Two pipelines, built the same way for every contender (each with its own pipe classes):
1,000,000 ints through ``.sharding_filter().map x3 .filter .batch(64)``, and the lines of a
1,000,000-line text file through ``FileOpener .readlines .sharding_filter .map .batch(64)``.
Items/s counts ints or lines. Each loader is built, timed per epoch (one warm-up epoch, then the
median of 3) and shut down before the next contender starts, so that idle workers of one loader do
not compete with another's; worker start-up is not timed (Loom's workers are persistent; torch's
DataLoader gets ``persistent_workers=True``;
torchdata's DataLoader2 keeps its workers too, and runs with 2 workers only: at ~50,000 items/s an
epoch takes ~20 s). Each epoch is checked to deliver every item.
"""

from __future__ import annotations

import functools
import gc
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from harness import Record, Suite, cli_args, measure

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch

from loom.data import DataLoader2, MultiProcessingReadingService
from loom.data.iter import FileOpener, IterableWrapper


def f1(x: int) -> int:
    return x + 1


def f2(x: int) -> int:
    return x * 2


def f3(x: int) -> int:
    return x - 1


def keep(x: int) -> bool:
    return x % 3 != 0


def second(pair: Any) -> Any:
    return pair[1]


def int_pipe(ns: Any, data: list[int]) -> Any:
    return (
        ns.IterableWrapper(data, deepcopy=False)
        .sharding_filter()
        .map(f1)
        .map(f2)
        .map(f3)
        .filter(keep)
        .batch(64)
    )


def line_pipe(ns: Any, path: str) -> Any:
    return ns.FileOpener([path], mode="rt").readlines().sharding_filter().map(second).batch(64)


class _LoomNS:
    IterableWrapper = IterableWrapper
    FileOpener = FileOpener


def _torch_ns() -> Any:
    import torch.utils.data.datapipes.iter as ns

    return ns


def count(batches: Any) -> int:
    return sum(len(b) for b in batches)


def _have_torchdata() -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torchdata.dataloader2  # noqa: F401
    except ImportError:
        return False
    return True


def _torchdata_loader(pipe: Any, workers: int) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchdata.dataloader2 import DataLoader2 as TDLoader
        from torchdata.dataloader2 import MultiProcessingReadingService as TDMP
    return TDLoader(pipe, reading_service=TDMP(num_workers=workers) if workers else None)


def _loom_loader(pipe: Any, workers: int) -> Any:
    return DataLoader2(pipe, reading_service=MultiProcessingReadingService(workers))


def _torch_loader(pipe: Any, workers: int) -> Any:
    return torch.utils.data.DataLoader(
        pipe,
        batch_size=None,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=None if workers == 0 else 8,
    )


def _checked(loader: Any, expected: int) -> Any:
    def run() -> None:
        got = count(loader)
        if got != expected:
            raise AssertionError(f"an epoch delivered {got} items, expected {expected}")

    return run


def _timed(make: Any, expected: int, warmup: int, repeats: int) -> float:
    """Median seconds per epoch of a loader that exists only while it is timed."""
    loader = make()
    try:
        return statistics.median(
            measure(_checked(loader, expected), warmup=warmup, repeats=repeats, sync=False)
        )
    finally:
        if hasattr(loader, "shutdown"):
            loader.shutdown()
        del loader
        gc.collect()


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loom_cpu(pipe: Any, workers: int, expected: int) -> dict[str, Any]:
    """CPU seconds of one epoch, main and each worker (Linux): what the wall time would be on idle cores."""
    loader = _loom_loader(pipe, workers)
    try:
        _checked(loader, expected)()
        pids = loader.reading_service.worker_pids if workers else []
        before = [_proc_cpu(p) for p in pids]
        main0 = time.process_time()
        _checked(loader, expected)()
        main = time.process_time() - main0
        return {
            "main_cpu_s": round(main, 3),
            "worker_cpu_s": [round(_proc_cpu(p) - b, 3) for p, b in zip(pids, before)],
        }
    finally:
        loader.shutdown()


def main() -> None:
    args = cli_args(__doc__)
    n = 50_000 if args.quick else 1_000_000
    data = list(range(n))
    expected_ints = sum(1 for x in data if keep(f3(f2(f1(x)))))
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "lines.txt")
    with open(path, "w") as f:
        f.writelines(f"line {i}\n" for i in range(n))
    suite = Suite("loader")
    warmup, repeats = 1, 2 if args.quick else 3
    for name, build, source, expected in (
        ("1M ints: map x3, filter, batch(64)", int_pipe, data, expected_ints),
        ("1M lines: readlines, map, batch(64)", line_pipe, path, n),
    ):
        for workers in (0, 1, 2):
            makers: dict[str, Any] = {
                "loom": functools.partial(_loom_loader, build(_LoomNS, source), workers),
                "torch_DataLoader": functools.partial(_torch_loader, build(_LoomNS, source), workers),
            }
            # torchdata in process: see bench_data.py; with 1 worker: too slow to repeat.
            if _have_torchdata() and workers == 2:
                makers["torchdata_DataLoader2"] = functools.partial(
                    _torchdata_loader, build(_torch_ns(), source), workers
                )
            medians = {who: _timed(make, expected, warmup, repeats) for who, make in makers.items()}
            ratios = {who: medians[who] / medians["loom"] for who in medians if who != "loom"}
            record = Record(suite.name, f"{name}, {workers} workers", medians, ratios, n)
            if Path("/proc/self/stat").exists():
                record.extra = _loom_cpu(build(_LoomNS, source), workers, expected)
            suite.records.append(record)
    suite.finish(args.json)
    print("Loom CPU seconds per epoch (main; workers):")
    for r in suite.records:
        if r.extra:
            print(f"  {r.name}: {r.extra['main_cpu_s']}; {r.extra['worker_cpu_s']}")


if __name__ == "__main__":
    main()
