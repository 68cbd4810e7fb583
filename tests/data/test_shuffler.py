from __future__ import annotations

import pytest
import torch

from loom.data import set_graph_random_seed
from loom.data.iter import IterableWrapper, Shuffler

from ._checks import assert_resumes_identically
from ._oracle import torch_iter


@pytest.mark.parametrize("buffer_size", [1, 3, 10, 1000])
def test_is_a_permutation_like_torch(buffer_size) -> None:
    ours = list(IterableWrapper(range(50)).shuffle(buffer_size=buffer_size))
    theirs = list(torch_iter.IterableWrapper(range(50)).shuffle(buffer_size=buffer_size))
    assert sorted(ours) == sorted(theirs) == list(range(50))
    if buffer_size == 1:
        assert ours == theirs == list(range(50))


def test_buffer_bounds_displacement() -> None:
    # With a buffer of b, an element can come out at most b - 1 places before its input position.
    for seed in range(5):
        out = list(set_graph_random_seed(IterableWrapper(range(200)).shuffle(buffer_size=4), seed))
        assert all(pos >= x - 3 for pos, x in enumerate(out))


def test_seed_reproduces_and_epochs_differ() -> None:
    pipe = IterableWrapper(range(100)).shuffle()
    set_graph_random_seed(pipe, 3)
    epoch0, epoch1 = list(pipe), list(pipe)
    assert epoch0 != epoch1
    set_graph_random_seed(pipe, 3)
    assert list(pipe) == epoch0 and list(pipe) == epoch1
    set_graph_random_seed(pipe, 4)
    assert list(pipe) != epoch0


def test_unseeded_follows_torch_manual_seed() -> None:
    pipe = IterableWrapper(range(100)).shuffle()
    torch.manual_seed(0)
    a, b = list(pipe), list(pipe)
    torch.manual_seed(0)
    assert list(pipe) == a and a != b


def test_set_seed_and_set_shuffle() -> None:
    pipe = Shuffler(IterableWrapper(range(30)))
    assert list(pipe.set_seed(1)) == list(Shuffler(IterableWrapper(range(30))).set_seed(1))
    assert list(pipe.set_shuffle(False)) == list(range(30))


def test_unbatch_level() -> None:
    pipe = IterableWrapper([[0, 1], [2, 3]]).shuffle(unbatch_level=1)
    assert sorted(pipe) == [0, 1, 2, 3]


def test_bad_arguments_and_len() -> None:
    with pytest.raises(ValueError, match="shuffle: buffer_size must be >= 1, got 0"):
        IterableWrapper([1]).shuffle(buffer_size=0)
    with pytest.raises(TypeError, match="shuffle: buffer_size must be an int"):
        IterableWrapper([1]).shuffle(buffer_size=None)
    assert len(IterableWrapper(range(4)).shuffle()) == 4


def test_state_of_a_different_buffer_size_is_an_error() -> None:
    it = iter(set_graph_random_seed(IterableWrapper(range(20)).shuffle(buffer_size=8), 0))
    next(it)
    small = iter(IterableWrapper(range(20)).shuffle(buffer_size=2))
    with pytest.raises(RuntimeError, match="at most 2 elements"):
        small.load_state_dict(it.state_dict())


def test_restores_without_replaying_the_source() -> None:
    # torchdata fast-forwards a restored shuffle by replaying the source; here the buffer and the RNG
    # are in the state, so the restored pipeline reads only what comes after the snapshot.
    calls = []

    def build():
        return set_graph_random_seed(
            IterableWrapper(range(30)).map(lambda x: calls.append(x) or x).shuffle(buffer_size=5), 2
        )

    reference = list(build())
    it = iter(build())
    head = [next(it) for _ in range(10)]
    state = it.state_dict()
    assert len(state["state"]["buffer"]) == 5 and state["source"]["source"]["state"]["index"] == 15
    calls.clear()
    restored = iter(build())
    restored.load_state_dict(state)
    assert head + list(restored) == reference
    assert calls == list(range(15, 30))


@pytest.mark.parametrize("buffer_size", [1, 4, 100])
def test_resumes(buffer_size) -> None:
    assert_resumes_identically(
        lambda: set_graph_random_seed(IterableWrapper(range(25)).shuffle(buffer_size=buffer_size), 9)
    )


def test_disabled_resumes() -> None:
    assert_resumes_identically(lambda: IterableWrapper(range(7)).shuffle().set_shuffle(False))
