from __future__ import annotations

import warnings

import pytest
import torch.utils.data

from loom.data import SHARDING_PRIORITIES, IterDataPipe, apply_sharding, set_graph_random_seed
from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torch_iter


@pytest.mark.parametrize(("num", "index"), [(1, 0), (2, 0), (2, 1), (3, 2), (7, 6), (20, 13)])
def test_matches_torch(num, index) -> None:
    from torch.utils.data.graph_settings import apply_sharding as torch_apply

    ours = apply_sharding(IterableWrapper(range(17)).sharding_filter(), num, index)
    theirs = torch_apply(torch_iter.IterableWrapper(range(17)).sharding_filter(), num, index)
    assert list(ours) == list(theirs)
    assert len(ours) == len(theirs)


def test_groups_combine_like_torch() -> None:
    from torch.utils.data.datapipes.iter.sharding import SHARDING_PRIORITIES as TP

    ours = IterableWrapper(range(40)).sharding_filter()
    theirs = torch_iter.IterableWrapper(range(40)).sharding_filter()
    ours.apply_sharding(2, 1, SHARDING_PRIORITIES.DISTRIBUTED)
    ours.apply_sharding(3, 2, SHARDING_PRIORITIES.MULTIPROCESSING)
    theirs.apply_sharding(2, 1, TP.DISTRIBUTED)
    theirs.apply_sharding(3, 2, TP.MULTIPROCESSING)
    assert list(ours) == list(theirs)
    with pytest.raises(RuntimeError, match="cannot mix the DEFAULT sharding group"):
        ours.apply_sharding(2, 0)


def test_shards_partition_the_data() -> None:
    pipe = IterableWrapper(range(23)).map(lambda x: x * 2).sharding_filter()
    seen = []
    for i in range(4):
        seen += list(apply_sharding(pipe, 4, i))
    assert sorted(seen) == [x * 2 for x in range(23)]


def test_bad_arguments() -> None:
    pipe = IterableWrapper(range(3)).sharding_filter()
    with pytest.raises(ValueError, match="shard_index must be < num_shards, got shard_index=2, num_shards=2"):
        apply_sharding(pipe, 2, 2)
    with pytest.raises(ValueError, match="num_shards must be >= 1, got 0"):
        apply_sharding(pipe, 0, 0)
    with pytest.raises(RuntimeError, match="two sharding filters are on one path"):
        apply_sharding(pipe.sharding_filter(), 2, 0)


def test_state_of_another_shard_is_an_error() -> None:
    it = iter(apply_sharding(IterableWrapper(range(10)).sharding_filter(), 2, 0))
    next(it)
    other = iter(apply_sharding(IterableWrapper(range(10)).sharding_filter(), 2, 1))
    with pytest.raises(
        RuntimeError, match="state is for shard 0 of 2, but this ShardingFilter is shard 1 of 2"
    ):
        other.load_state_dict(it.state_dict())


@pytest.mark.parametrize(("num", "index"), [(1, 0), (3, 0), (3, 2), (5, 4)])
def test_resumes(num, index) -> None:
    assert_resumes_identically(
        lambda: apply_sharding(IterableWrapper(range(19)).sharding_filter(), num, index)
    )


def _loader_pipe(seed):
    pipe = IterableWrapper(range(100)).shuffle(buffer_size=30).sharding_filter().map(lambda x: x * 10)
    return pipe if seed is None else set_graph_random_seed(pipe, seed)


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("seed", [None, 7])
@pytest.mark.parametrize("workers", [2, 3])
def test_dataloader_workers_shard_automatically(workers, seed) -> None:
    loader = torch.utils.data.DataLoader(
        _loader_pipe(seed), batch_size=None, num_workers=workers, multiprocessing_context="fork", timeout=60
    )
    epoch0 = [int(x) for x in loader]
    epoch1 = [int(x) for x in loader]
    assert sorted(epoch0) == sorted(epoch1) == [x * 10 for x in range(100)]
    assert epoch0 != epoch1


def test_worker_without_sharding_filter_warns(monkeypatch) -> None:
    import loom.data._random as random_module

    class FakeWorker:
        id, num_workers, seed = 1, 2, 5

    monkeypatch.setattr(random_module, "worker_info", lambda: FakeWorker())
    with pytest.warns(RuntimeWarning, match="worker 1 of 2 but the pipeline has no sharding_filter"):
        iter(IterableWrapper(range(4)))
    assert list(IterableWrapper(range(6)).sharding_filter()) == [1, 3, 5]


class _DoubleWithAGenerator(IterDataPipe):
    """A user pipe written as in torchdata's tutorial: a plain generator ``__iter__``."""

    def __init__(self, source) -> None:  # type: ignore[no-untyped-def]
        self.source = source

    def __iter__(self):  # type: ignore[no-untyped-def]
        for x in self.source:
            yield 2 * x


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("where", ["upstream", "downstream"])
def test_sharding_filter_around_a_user_pipe_shards_without_a_warning(where) -> None:
    # The missing-sharding_filter warning looks through user pipes (it walks the pipe graph), and the user
    # pipe's own iteration of its source is covered by the enclosing sharded pipeline.
    if where == "upstream":
        pipe = _DoubleWithAGenerator(IterableWrapper(range(8)).sharding_filter()).map(_plus_one)
    else:
        pipe = _DoubleWithAGenerator(IterableWrapper(range(8))).sharding_filter().map(_plus_one)
    loader = torch.utils.data.DataLoader(
        pipe, batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=60
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = sorted(int(x) for x in loader)
    assert out == sorted(2 * x + 1 for x in range(8))


def _plus_one(x):  # type: ignore[no-untyped-def]
    return x + 1


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [None, 3])
def test_dataloader_persistent_workers_reshuffle(seed) -> None:
    loader = torch.utils.data.DataLoader(
        _loader_pipe(seed),
        batch_size=None,
        num_workers=2,
        persistent_workers=True,
        multiprocessing_context="fork",
        timeout=60,
    )
    epochs = [[int(x) for x in loader] for _ in range(3)]
    assert all(sorted(e) == [x * 10 for x in range(100)] for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
def test_dataloader_worker_with_nothing_to_do() -> None:
    # torchdata's multiprocessing reading service crashes when a worker yields nothing.
    loader = torch.utils.data.DataLoader(
        IterableWrapper([5]).sharding_filter(),
        batch_size=None,
        num_workers=2,
        multiprocessing_context="fork",
        timeout=60,
    )
    assert [int(x) for x in loader] == [5]


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_dataloader_spawn_pickles_lambdas_with_dill() -> None:
    pytest.importorskip("dill")
    k = 3
    pipe = IterableWrapper(range(20)).shuffle().sharding_filter().map(lambda x: x * k)
    loader = torch.utils.data.DataLoader(
        pipe, batch_size=None, num_workers=2, multiprocessing_context="spawn", timeout=90
    )
    assert sorted(int(x) for x in loader) == [x * 3 for x in range(20)]


def test_ranks_and_workers_partition_together(monkeypatch) -> None:
    import loom.data._random as random_module

    for epoch_seed in (100, 200):  # per-epoch seeds, as a distributed run sets them
        seen = []
        for rank in range(2):
            for worker in range(3):

                class FakeWorker:  # each rank's loader draws its own base seed
                    id, num_workers, seed = worker, 3, 1000 * rank + worker

                monkeypatch.setattr(random_module, "worker_info", lambda w=FakeWorker: w())
                pipe = IterableWrapper(range(40)).shuffle().sharding_filter().shuffle(buffer_size=3)
                apply_sharding(pipe, 2, rank, SHARDING_PRIORITIES.DISTRIBUTED)
                seen += list(set_graph_random_seed(pipe, epoch_seed))
        assert sorted(seen) == list(range(40))


def test_unseeded_shuffle_before_a_rank_sharding_warns() -> None:
    pipe = IterableWrapper(range(10)).shuffle().sharding_filter()
    apply_sharding(pipe, 2, 0, SHARDING_PRIORITIES.DISTRIBUTED)
    with pytest.warns(RuntimeWarning, match="ranks duplicate and lose elements"):
        iter(pipe)
    assert len(list(set_graph_random_seed(pipe, 0))) == 5
