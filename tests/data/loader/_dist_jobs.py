"""Jobs run by test_distributed.py in 2 Gloo ranks (each rank a process started by the test)."""

from __future__ import annotations

import datetime
import os
import traceback
from typing import Any

N = 23  # uneven: shards of 12 and 11 elements


def build() -> Any:
    from loom.data.iter import IterableWrapper

    from ._pipes import times10

    return (
        IterableWrapper(range(N)).shuffle(buffer_size=8).sharding_filter().map(times10).shuffle(buffer_size=3)
    )


def _services(workers: int) -> Any:
    from loom.data import DistributedReadingService, MultiProcessingReadingService, SequentialReadingService

    if workers == 0:
        return DistributedReadingService(timeout=30)
    return SequentialReadingService(
        DistributedReadingService(timeout=30), MultiProcessingReadingService(num_workers=workers)
    )


def _job(rank: int, cut: int) -> dict[str, Any]:
    import torch

    from loom.data import DataLoader2

    torch.manual_seed(100 + rank)  # different on each rank: the loader seed must come from rank 0
    out: dict[str, Any] = {}
    with DataLoader2(build(), reading_service=_services(0)) as loader:
        out["alone"] = [list(loader) for _ in range(2)]
    with DataLoader2(build(), reading_service=_services(2)) as loader:
        loader.seed(5)
        out["workers"] = [list(loader) for _ in range(2)]
    with DataLoader2(build(), reading_service=_services(2)) as loader:
        loader.seed(5)
        it = iter(loader)
        out["taken"] = [next(it) for _ in range(cut)]
        state = loader.state_dict()
    with DataLoader2(build(), reading_service=_services(2)) as loader:
        loader.load_state_dict(state)
        out["rest"] = list(loader) + list(loader)
    return out


def rank_main(rank: int, world: int, port: int, cut: int, results: Any) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=30))
        try:
            results.put((rank, _job(rank, cut)))
        finally:
            dist.destroy_process_group()
    except BaseException:
        results.put((rank, traceback.format_exc()))
