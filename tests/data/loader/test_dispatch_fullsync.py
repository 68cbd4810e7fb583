"""ShardingRoundRobinDispatcher (prefix runs once, in main, dealt round-robin) and FullSync without ranks."""

from __future__ import annotations

import pytest

from loom.data import DataLoader2, MultiProcessingReadingService
from loom.data.iter import FullSync, IterableWrapper, ShardingRoundRobinDispatcher

from .._checks import assert_resumes_identically, roundtrip
from ._pipes import cut_points, epoch_seed, shard_run, times10


def _keep(x: int) -> bool:
    return x % 30 != 0


def _prefix():
    return IterableWrapper(range(50)).shuffle(buffer_size=20)


def _dispatched():
    return _prefix().sharding_round_robin_dispatch().map(times10)


def test_dispatcher_passes_through_in_process() -> None:
    assert list(IterableWrapper(range(5)).sharding_round_robin_dispatch()) == [0, 1, 2, 3, 4]
    assert len(IterableWrapper(range(5)).sharding_round_robin_dispatch()) == 5
    with pytest.raises(ValueError, match=r"only SHARDING_PRIORITIES\.MULTIPROCESSING is supported"):
        ShardingRoundRobinDispatcher(IterableWrapper([1]), sharding_group_filter=1)


@pytest.mark.multiprocess
@pytest.mark.timeout(60)
def test_dispatcher_runs_the_prefix_once_and_deals_round_robin() -> None:
    rs = MultiProcessingReadingService(num_workers=2)
    with DataLoader2(_dispatched(), reading_service=rs) as loader:
        loader.seed(6)
        epochs = [list(loader) for _ in range(2)]
    # Element k of the prefix goes to worker k % 2 and back in turn: the prefix's order, mapped.
    assert epochs == [[x * 10 for x in shard_run(_prefix(), 1, 0, epoch_seed(6, e))] for e in range(2)]
    assert epochs[0] != epochs[1]


@pytest.mark.multiprocess
@pytest.mark.timeout(60)
def test_dispatcher_resumes_at_random_cut_points() -> None:
    def make() -> DataLoader2:
        pipe = _prefix().sharding_round_robin_dispatch().filter(_keep).map(times10).shuffle(buffer_size=3)
        loader = DataLoader2(pipe, reading_service=MultiProcessingReadingService(num_workers=2))
        loader.seed(12)
        return loader

    with make() as ref:
        reference = list(ref) + list(ref)
    with make() as loader, make() as resumed:
        it = iter(loader)
        taken: list = []
        for cut in cut_points(len(reference) // 2, 3, 5):
            while len(taken) < cut:
                taken.append(next(it))
            resumed.load_state_dict(roundtrip(loader.state_dict()))
            assert taken + list(resumed) + list(resumed) == reference, f"cut at {cut}"
    assert sorted(reference[: len(reference) // 2]) == sorted(x * 10 for x in range(50) if _keep(x))


def test_fullsync_without_ranks_passes_through_and_resumes() -> None:
    assert list(IterableWrapper(range(7)).fullsync(chunk=3)) == list(range(7))
    assert_resumes_identically(lambda: IterableWrapper(range(10)).fullsync(chunk=4))
    with pytest.raises(ValueError, match="fullsync: timeout must be a positive number of seconds, got 0"):
        FullSync(IterableWrapper([1]), timeout=0)
    with pytest.raises(ValueError, match="fullsync: chunk must be >= 1, got 0"):
        FullSync(IterableWrapper([1]), chunk=0)


@pytest.mark.multiprocess
@pytest.mark.timeout(60)
def test_loader_pipes_inside_torch_dataloader() -> None:
    # In torch's DataLoader the dispatcher and fullsync pass through; the sharding_filter shards by worker.
    import torch.utils.data

    pipe = (
        IterableWrapper(range(20)).sharding_round_robin_dispatch().sharding_filter().map(times10).fullsync()
    )
    loader = torch.utils.data.DataLoader(
        pipe, batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=30
    )
    assert sorted(int(x) for x in loader) == [x * 10 for x in range(20)]


@pytest.mark.parametrize(
    ("backend", "expected"), [("gloo", "cpu"), ("cpu:gloo,cuda:nccl", "cpu"), ("nccl", "cuda")]
)
def test_fullsync_puts_its_count_where_the_group_can_carry_it(monkeypatch, backend, expected) -> None:
    # NCCL cannot all-reduce a CPU tensor: under a plain NCCL group the count must live on the current GPU.
    import torch
    import torch.distributed as dist

    from loom.data.iter._fullsync import collective_device

    monkeypatch.setattr(dist, "get_backend", lambda *a, **k: backend)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert collective_device().type == expected
