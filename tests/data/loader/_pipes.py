"""Small pipelines and reference runs shared by the loader tests."""

from __future__ import annotations

import copy
import random
from typing import Any

from loom.data import apply_sharding
from loom.data._random import loader_seed, mix
from loom.data.iter import IterableWrapper


def times10(x: int) -> int:
    return x * 10


def shuffled(n: int = 60) -> Any:
    """Shuffled before the sharding point and after it: both seeds matter."""
    return (
        IterableWrapper(range(n))
        .shuffle(buffer_size=16)
        .sharding_filter()
        .map(times10)
        .shuffle(buffer_size=4)
    )


def batched(n: int = 60) -> Any:
    return IterableWrapper(range(n)).shuffle(buffer_size=16).sharding_filter().map(times10).batch(4)


def epoch_seed(loader_seed_value: int, epoch: int) -> int:
    return mix(loader_seed_value, epoch)


def shard_run(pipe: Any, num_shards: int, index: int, seed: int) -> list[Any]:
    """One shard of one epoch, run in this process: what a worker should produce."""
    mine = copy.deepcopy(pipe)
    if num_shards > 1:
        apply_sharding(mine, num_shards, index)
    with loader_seed(seed):
        it = iter(mine)
    return list(it)


def round_robin(shards: list[list[Any]]) -> list[Any]:
    """Element j from shard j mod k, skipping shards that ended: the loader's documented order."""
    out: list[Any] = []
    iters = [iter(s) for s in shards]
    live = list(range(len(shards)))
    while live:
        still = []
        for i in live:
            try:
                out.append(next(iters[i]))
                still.append(i)
            except StopIteration:
                pass
        live = still
    return out


def cut_points(total: int, count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return sorted(rng.sample(range(total + 1), min(count, total + 1)))
