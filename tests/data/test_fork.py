from __future__ import annotations

import pickle
import random

import pytest
import torch

from loom.data import DataLoader2, MultiProcessingReadingService, set_graph_random_seed
from loom.data.iter import Concater, Forker, IterableWrapper, Zipper

from ._checks import assert_resumes_identically, until_buffer_error
from ._oracle import torch_iter
from ._split_checks import assert_children_resume_in_lockstep, assert_children_resume_interleaved


@pytest.mark.parametrize("n", [0, 1, 7])
@pytest.mark.parametrize("k", [2, 3])
def test_matches_torch(n, k) -> None:
    ours = IterableWrapper(range(n)).fork(k)
    theirs = torch_iter.IterableWrapper(range(n)).fork(k)
    assert list(zip(*ours)) == list(zip(*theirs))
    ours = IterableWrapper(range(n)).fork(k)
    theirs = torch_iter.IterableWrapper(range(n)).fork(k)
    assert [list(c) for c in ours] == [list(c) for c in theirs]
    assert [len(c) for c in ours] == [len(c) for c in theirs]
    assert isinstance(Forker(IterableWrapper([1]), 2), list)


def test_one_instance_is_the_source() -> None:
    src = IterableWrapper([1, 2])
    assert src.fork(1) is src
    assert torch_iter.IterableWrapper([1]).fork(1) is not None


@pytest.mark.parametrize("buffer_size", [1, 3, 5])
def test_buffer_overflow_as_torch(buffer_size) -> None:
    a, _ = IterableWrapper(range(20)).fork(2, buffer_size=buffer_size)
    ta, _ = torch_iter.IterableWrapper(range(20)).fork(2, buffer_size=buffer_size)
    assert until_buffer_error(iter(a)) == until_buffer_error(iter(ta))
    a, _ = IterableWrapper(range(20)).fork(2, buffer_size=buffer_size)
    with pytest.raises(
        BufferError,
        match=rf"fork: buffer overflow: child 0 .* ahead of child 1, more than buffer_size={buffer_size}",
    ):
        list(a)


def test_unbounded_and_sequential() -> None:
    a, b = IterableWrapper(range(3000)).fork(2, buffer_size=-1)
    assert list(a) == list(range(3000))
    assert list(b) == list(range(3000))


def test_copy() -> None:
    data = [[1], [2]]
    a, b = IterableWrapper(data, deepcopy=False).fork(2)
    assert all(x is y for x, y in zip(a, b))
    a, b = IterableWrapper(data, deepcopy=False).fork(2, copy="deep")
    pairs = list(zip(a, b))
    assert pairs == [([1], [1]), ([2], [2])]
    assert all(x is not y for x, y in pairs)


def test_new_iterator_restarts_and_invalidates() -> None:
    a, b = IterableWrapper(range(5)).fork(2)
    old = iter(a)
    assert next(old) == 0
    new = iter(a)  # a second iterator of a started child begins a new pass
    with pytest.raises(RuntimeError, match="fork: this iterator of child 0 was invalidated"):
        next(old)
    assert list(zip(new, b)) == [(i, i) for i in range(5)]
    assert list(zip(a, b)) == [(i, i) for i in range(5)]  # a later epoch


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"num_instances": 0}, ValueError, "fork: num_instances must be >= 1"),
        ({"num_instances": 2.0}, TypeError, "fork: num_instances must be an int"),
        ({"num_instances": 2, "buffer_size": 0}, ValueError, "fork: buffer_size must be >= 1, or -1"),
        ({"num_instances": 2, "buffer_size": -2}, ValueError, "fork: buffer_size must be >= -1"),
        ({"num_instances": 2, "copy": "wide"}, ValueError, "fork: copy must be None, 'shallow' or 'deep'"),
    ],
)
def test_bad_arguments(kwargs, err, match) -> None:
    with pytest.raises(err, match=match):
        IterableWrapper([1]).fork(**kwargs)
    with pytest.raises(TypeError, match="fork: the source must be an IterDataPipe, got list"):
        Forker([1, 2], 2)


def test_len_unknown() -> None:
    a, _ = IterableWrapper(iter([1, 2])).fork(2)
    with pytest.raises(TypeError, match="fork child 0 doesn't have valid length"):
        len(a)


def test_pickle_mid_iteration() -> None:
    a, _b = IterableWrapper(range(4)).fork(2)
    it = iter(a)
    next(it)
    a2 = pickle.loads(pickle.dumps(a))
    assert list(a2) == [0, 1, 2, 3]


def test_states_from_different_points_do_not_mix() -> None:
    a, b = IterableWrapper(range(6)).fork(2)
    ia, ib = iter(a), iter(b)
    next(ia), next(ib)
    early = ib.state_dict()
    next(ia), next(ib)
    late = ia.state_dict()
    a2, b2 = IterableWrapper(range(6)).fork(2)
    ja, jb = iter(a2), iter(b2)
    ja.load_state_dict(late)
    jb.load_state_dict(early)
    with pytest.raises(RuntimeError, match="invalidated"):
        next(ja)
    assert list(jb) == [1, 2, 3, 4, 5]


def test_epochs_reshuffle_and_children_agree() -> None:
    a, b = set_graph_random_seed(IterableWrapper(range(10)).shuffle(), 0).fork(2)
    first, second = list(zip(a, b)), list(zip(a, b))  # separate iterators per child
    assert all(x == y for x, y in first + second)
    assert [x for x, _ in first] != [x for x, _ in second]
    zipped = Zipper(*IterableWrapper(range(10)).shuffle().fork(2))
    first, second = list(zipped), list(zipped)
    assert all(x == y for x, y in first + second)
    assert sorted(x for x, _ in second) == list(range(10)) and first != second


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_dataloader_workers_shard_upstream_of_fork() -> None:
    a, b = IterableWrapper(range(40)).sharding_filter().fork(2)
    loader = torch.utils.data.DataLoader(
        Zipper(a, b), batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=60
    )
    out = [tuple(int(v) for v in pair) for pair in loader]
    assert sorted(out) == [(i, i) for i in range(40)]


def _seeded_fork():  # type: ignore[no-untyped-def]
    return set_graph_random_seed(IterableWrapper(range(8)).shuffle(), 0).fork(2)


def test_restore_each_child_right_after_creating_its_iterator() -> None:
    a, b = _seeded_fork()
    ia, ib = iter(a), iter(b)
    for _ in range(3):
        next(ia), next(ib)
    s0, s1 = ia.state_dict(), ib.state_dict()
    rest = list(zip(ia, ib))
    next_epoch = list(zip(a, b))
    a2, b2 = _seeded_fork()
    ja = iter(a2)
    ja.load_state_dict(s0)
    jb = iter(b2)  # a fresh iterator of b2 starts a new pass, which the restore below takes back
    jb.load_state_dict(s1)
    assert list(zip(ja, jb)) == rest
    assert list(zip(a2, b2)) == next_epoch
    a3, b3 = _seeded_fork()  # the other order
    jb = iter(b3)
    jb.load_state_dict(s1)
    ja = iter(a3)
    ja.load_state_dict(s0)
    assert list(zip(ja, jb)) == rest
    assert list(zip(a3, b3)) == next_epoch


def _times10(x: int) -> int:
    return 10 * x


def _loader_pipe():  # type: ignore[no-untyped-def]
    a, b = IterableWrapper(range(30)).shuffle().sharding_filter().fork(2)
    return Zipper(a, b.map(_times10))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader2_resumes_mid_epoch(workers) -> None:
    def loader():  # type: ignore[no-untyped-def]
        rs = MultiProcessingReadingService(num_workers=workers) if workers else None
        dl = DataLoader2(_loader_pipe(), reading_service=rs)
        dl.seed(1)
        return dl

    dl = loader()
    it = iter(dl)
    head = [next(it) for _ in range(7)]
    state = dl.state_dict()
    rest, next_epoch = list(it), list(dl)
    dl.shutdown()
    assert sorted(head + rest) == [(i, 10 * i) for i in range(30)]
    again = loader()
    again.load_state_dict(state)
    assert list(again) == rest
    assert list(again) == next_epoch
    again.shutdown()


def test_resumes_in_one_iterator() -> None:
    assert_resumes_identically(lambda: Zipper(*IterableWrapper(range(11)).fork(3)))
    assert_resumes_identically(lambda: Concater(*IterableWrapper(range(6)).fork(2)))
    out = assert_resumes_identically(
        lambda: set_graph_random_seed(Zipper(*IterableWrapper(range(12)).shuffle().fork(2)).map(list), 3)
    )
    assert all(x == y for x, y in out) and sorted(x for x, _ in out) == list(range(12))


def test_resumes_in_lockstep() -> None:
    assert_children_resume_in_lockstep(lambda: IterableWrapper(range(9)).map(lambda x: x * 3).fork(2))
    assert_children_resume_in_lockstep(
        lambda: set_graph_random_seed(IterableWrapper(range(10)).shuffle(buffer_size=4), 1).fork(3)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resumes_with_children_at_different_positions(seed) -> None:
    rng = random.Random(seed)
    schedule = [rng.choice([0, 0, 1, 2]) for _ in range(30)]
    assert_children_resume_interleaved(lambda: IterableWrapper(range(12)).fork(3, buffer_size=-1), schedule)
