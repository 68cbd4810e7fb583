"""MultiProcessingReadingService: order against a per-shard reference, persistent workers, seeds, empty shards."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from loom.data import DataLoader2, MultiProcessingReadingService
from loom.data.iter import IterableWrapper

from ._pipes import batched, epoch_seed, round_robin, shard_run, shuffled

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(60)]


def _loader(pipe, workers, seed=None, **kw):
    loader = DataLoader2(pipe, reading_service=MultiProcessingReadingService(num_workers=workers, **kw))
    if seed is not None:
        loader.seed(seed)
    return loader


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_order_is_round_robin_over_shards_and_new_every_epoch(workers: int) -> None:
    for build in (shuffled, batched):
        with _loader(build(), workers, seed=21) as loader:
            epochs = [list(loader) for _ in range(2)]
        expected = [
            round_robin([shard_run(build(), workers, i, epoch_seed(21, e)) for i in range(workers)])
            for e in range(2)
        ]
        assert epochs == expected
        assert epochs[0] != epochs[1]


def test_same_seed_same_order_and_workers_are_reused() -> None:
    with _loader(shuffled(), 2, seed=3) as a, _loader(shuffled(), 2, seed=3) as b:
        first = [list(a)]
        pids = a.reading_service.worker_pids
        first += [list(a) for _ in range(2)]
        assert a.reading_service.worker_pids == pids  # the same processes every epoch
        assert os.getpid() not in pids
        assert [list(b) for _ in range(3)] == first
        assert sorted(first[2]) == [x * 10 for x in range(60)]


def test_worker_with_an_empty_shard() -> None:
    # torchdata 0.9's multiprocessing reading service crashes when a worker yields nothing.
    with _loader(IterableWrapper(range(2)).sharding_filter(), 3) as loader:
        assert list(loader) == [0, 1]
        assert list(loader) == [0, 1]
    with _loader(IterableWrapper([]).sharding_filter(), 2) as loader:
        assert list(loader) == []


def _draw(x: int) -> tuple[int, float, float, float]:
    return x, random.random(), torch.rand(()).item(), float(np.random.rand())


def test_global_generators_are_seeded_per_worker_and_epoch() -> None:
    def run(seed: int) -> list[list[tuple[int, float, float, float]]]:
        with _loader(IterableWrapper(range(4)).sharding_filter().map(_draw), 2, seed=seed) as loader:
            return [list(loader) for _ in range(2)]

    a, b, c = run(1), run(1), run(2)
    assert a == b
    assert a != c
    for epoch in a:
        assert [x[0] for x in epoch] == [0, 1, 2, 3]
        assert epoch[0][1:] != epoch[1][1:]  # workers 0 and 1 draw differently
    assert a[0][0][1:] != a[1][0][1:]  # and differently in each epoch


def _tag_init(dp, info):
    return dp.map(lambda x: (info.worker_id, x))


def _reset(dp, info, seed):
    return dp


def test_worker_init_fn_and_many_epochs() -> None:
    pipe = IterableWrapper(range(6)).sharding_filter()
    with _loader(pipe, 2, worker_init_fn=_tag_init, worker_reset_fn=_reset) as loader:
        for _ in range(3):
            assert list(loader) == [(0, 0), (1, 1), (0, 2), (1, 3), (0, 4), (1, 5)]


def test_abandoned_epoch_then_a_full_one() -> None:
    with _loader(shuffled(), 2, seed=8) as loader:
        it = iter(loader)
        [next(it) for _ in range(5)]
        second = list(loader)
    assert second == round_robin([shard_run(shuffled(), 2, i, epoch_seed(8, 1)) for i in range(2)])


@pytest.mark.timeout(90)
def test_spawn_context_with_a_lambda() -> None:
    pytest.importorskip("dill")
    pipe = IterableWrapper(range(8)).sharding_filter().map(lambda x: x + 100)
    with _loader(pipe, 1, multiprocessing_context="spawn") as loader:
        assert list(loader) == [x + 100 for x in range(8)]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_workers must be an int >= 0, got -1"):
        MultiProcessingReadingService(num_workers=-1)
    with pytest.raises(ValueError, match="worker_prefetch_cnt must be an int >= 1, got 0"):
        MultiProcessingReadingService(num_workers=1, worker_prefetch_cnt=0)
    with pytest.raises(ValueError, match="multiprocessing_context must be one of"):
        MultiProcessingReadingService(num_workers=1, multiprocessing_context="telepathy")
    with (
        pytest.warns(RuntimeWarning, match="no sharding_filter"),
        _loader(IterableWrapper(range(2)), 2) as loader,
    ):
        assert sorted(loader) == [0, 0, 1, 1]


def test_zero_workers_runs_in_process() -> None:
    with _loader(shuffled(), 0, seed=2) as loader:
        assert list(loader) == shard_run(shuffled(), 1, 0, epoch_seed(2, 0))


def test_stats_with_workers_count_stages_per_worker() -> None:
    pipe = IterableWrapper(range(10)).sharding_filter().filter(lambda x: x % 3 != 0)
    with _loader(pipe, 2) as loader:
        loader.enable_stats()
        try:
            it = iter(loader)
            out = [next(it), next(it)]
            middle = loader.stats()  # asks the live workers
            out += list(it)
            stats = loader.stats()
        finally:
            loader.enable_stats(False)
    assert {r["worker"] for r in middle["stages"]} == {0, 1}
    assert all(isinstance(r["produced"], int) for r in middle["stages"])
    assert stats["elements"] == len(out) == 6
    assert stats["workers"] == 2
    assert len(stats["worker_busy_s"]) == 2 and all(t > 0 for t in stats["worker_busy_s"])
    rows = {(r["worker"], r["pipe"]): r["produced"] for r in stats["stages"]}
    # The oracle: the same pipeline run per shard in process.
    for w in range(2):
        shard = [x for x in range(w, 10, 2)]
        assert rows[(w, "IterableWrapper")] == 10
        assert rows[(w, "ShardingFilter")] == len(shard)
        assert rows[(w, "Filter")] == len([x for x in shard if x % 3 != 0])
