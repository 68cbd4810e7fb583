"""loom.data throughput: 1,000,000 ints through .map x3, .filter, .batch(64), in-process.

Contenders, in one process, interleaved: Loom; a bare chain of Python generators (the floor);
torch's built-in ``torch.utils.data.datapipes`` (which torchdata 0.9's ``datapipes.iter`` re-exports);
torchdata 0.9's ``DataLoader2`` over the same torch pipes, when installed. Then Loom with its extras on:
a ``state_dict()`` snapshot after every batch, per-stage profiling (counts), and per-stage profiling with
timing (``profiling(True, timing=True)``), against plain Loom.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import Suite, cli_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from loom.data import profiling
from loom.data.iter import IterableWrapper


def f1(x: int) -> int:
    return x + 1


def f2(x: int) -> int:
    return x * 2


def f3(x: int) -> int:
    return x - 1


def keep(x: int) -> bool:
    return x % 3 != 0


def loom_pipe(data: list[int]) -> Any:
    return IterableWrapper(data, deepcopy=False).map(f1).map(f2).map(f3).filter(keep).batch(64)


def consume(batches: Any) -> int:
    n = 0
    for b in batches:
        n += len(b)
    return n


def loom_with_state(data: list[int]) -> int:
    it = iter(loom_pipe(data))
    n = 0
    for b in it:
        n += len(b)
        it.state_dict()
    return n


def loom_profiled(data: list[int]) -> int:
    profiling(True)
    try:
        return consume(loom_pipe(data))
    finally:
        profiling(False)


def loom_timed(data: list[int]) -> int:
    profiling(True, timing=True)
    try:
        return consume(loom_pipe(data))
    finally:
        profiling(False)


def bare_generators(data: list[int]) -> int:
    def mapped(it: Iterator[int], fn: Any) -> Iterator[int]:
        for x in it:
            yield fn(x)

    def filtered(it: Iterator[int], fn: Any) -> Iterator[int]:
        for x in it:
            if fn(x):
                yield x

    def batched(it: Iterator[int], size: int) -> Iterator[list[int]]:
        batch: list[int] = []
        for x in it:
            batch.append(x)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    return consume(batched(filtered(mapped(mapped(mapped(iter(data), f1), f2), f3), keep), 64))


def torch_pipe(data: list[int]) -> Any:
    import torch.utils.data.datapipes.iter as torch_iter

    return torch_iter.IterableWrapper(data, deepcopy=False).map(f1).map(f2).map(f3).filter(keep).batch(64)


def torchdata_loader(data: list[int]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchdata.dataloader2 import DataLoader2
    return consume(DataLoader2(torch_pipe(data)))


def _have_torchdata() -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torchdata.dataloader2  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    args = cli_args(__doc__)
    n = 20_000 if args.quick else 1_000_000
    data = list(range(n))
    expected = bare_generators(data)
    assert consume(loom_pipe(data)) == expected == consume(torch_pipe(data))
    suite = Suite("data", warmup=1, repeats=3 if not args.quick else 2)
    baselines: dict[str, Any] = {
        "bare_generators": lambda: bare_generators(data),
        "torch_datapipes": lambda: consume(torch_pipe(data)),
    }
    if _have_torchdata():
        baselines["torchdata_dataloader2"] = lambda: torchdata_loader(data)
    suite.compare(
        "map x3, filter, batch(64)", loom=lambda: consume(loom_pipe(data)), items_per_call=n, **baselines
    )
    extras = Suite("data", warmup=1, repeats=7 if not args.quick else 2)
    extras.compare(
        "same, state_dict() after every batch",
        loom=lambda: loom_with_state(data),
        items_per_call=n,
        loom_plain=lambda: consume(loom_pipe(data)),
        bare_generators=lambda: bare_generators(data),
    )
    extras.compare(
        "same, profiling on",
        loom=lambda: loom_profiled(data),
        items_per_call=n,
        loom_plain=lambda: consume(loom_pipe(data)),
    )
    extras.compare(
        "same, profiling with per-stage timing",
        loom=lambda: loom_timed(data),
        items_per_call=n,
        loom_plain=lambda: consume(loom_pipe(data)),
    )
    suite.records += extras.records
    suite.finish(args.json)


if __name__ == "__main__":
    main()
