from __future__ import annotations

import random

import numpy as np
import pytest

from loom.data import set_graph_random_seed
from loom.data.iter import Concater, Demultiplexer, IterableWrapper, MultiplexerLongest, ZipperLongest

from ._checks import assert_resumes_identically, until_buffer_error
from ._oracle import torch_iter
from ._split_checks import assert_children_resume_in_lockstep, assert_children_resume_interleaved


def mod3(x: int) -> int:
    return x % 3


def none_for_zero(x: int) -> int | None:
    return None if x % 4 == 0 else x % 2


@pytest.mark.parametrize("n", [0, 1, 10])
@pytest.mark.parametrize(("k", "fn", "drop_none"), [(3, mod3, False), (2, none_for_zero, True)])
def test_matches_torch(n, k, fn, drop_none) -> None:
    ours = IterableWrapper(range(n)).demux(k, fn, drop_none=drop_none)
    theirs = torch_iter.IterableWrapper(range(n)).demux(k, fn, drop_none=drop_none)
    assert [list(c) for c in ours] == [list(c) for c in theirs]
    ours = IterableWrapper(range(n)).demux(k, fn, drop_none=drop_none)
    theirs = torch_iter.IterableWrapper(range(n)).demux(k, fn, drop_none=drop_none)
    # interleaved reading (one element from each child in turn) gives the same as torch
    assert list(MultiplexerLongest(*ours)) == [x for row in _zip_longest(theirs) for x in row]


def _zip_longest(children):  # type: ignore[no-untyped-def]
    its = [iter(c) for c in children]
    out = []
    alive = list(range(len(its)))
    while alive:
        row = []
        for i in list(alive):
            try:
                row.append(next(its[i]))
            except StopIteration:
                alive.remove(i)
        out.append(row)
    return out


@pytest.mark.parametrize("buffer_size", [1, 4])
def test_buffer_overflow_as_torch(buffer_size) -> None:
    a, _ = IterableWrapper(range(30)).demux(2, lambda x: int(x >= 3), buffer_size=buffer_size)
    ta, _ = torch_iter.IterableWrapper(range(30)).demux(2, lambda x: int(x >= 3), buffer_size=buffer_size)
    assert until_buffer_error(iter(a)) == until_buffer_error(iter(ta))
    a, _ = IterableWrapper(range(30)).demux(2, lambda x: x % 2, buffer_size=buffer_size)
    with pytest.raises(
        BufferError, match=r"demux: buffer overflow: child 0 .* wait for the other children \(child 1 holds"
    ):
        list(a)


def test_bad_classification() -> None:
    a, _ = IterableWrapper(range(5)).demux(2, lambda x: x)
    with pytest.raises(ValueError, match=r"demux: classifier_fn must return an int in \[0, 1\], got 2 for 2"):
        list(a)
    a, _ = IterableWrapper(range(5)).demux(2, lambda x: None)
    with pytest.raises(ValueError, match=r"got None for 0 .*drop_none=True"):
        list(a)
    a, _ = IterableWrapper(range(5)).demux(2, lambda x: "0")
    with pytest.raises(ValueError, match="got '0' for 0"):
        list(a)


def test_numpy_and_bool_indices_accepted() -> None:
    a, b = IterableWrapper(range(4)).demux(2, lambda x: np.int64(x % 2))
    assert list(a) == [0, 2] and list(b) == [1, 3]
    ours = [list(c) for c in IterableWrapper(range(6)).demux(2, lambda x: x > 3)]
    assert ours == [list(c) for c in torch_iter.IterableWrapper(range(6)).demux(2, lambda x: x > 3)]


@pytest.mark.parametrize(
    ("args", "err", "match"),
    [
        ((0, mod3), ValueError, "demux: num_instances must be >= 1"),
        ((2, "f"), TypeError, "demux: classifier_fn must be callable"),
        ((2, mod3, False, 0), ValueError, "demux: buffer_size must be >= 1, or -1"),
    ],
)
def test_bad_arguments(args, err, match) -> None:
    with pytest.raises(err, match=match):
        IterableWrapper([1]).demux(*args)
    with pytest.raises(TypeError, match="demux: the source must be an IterDataPipe"):
        Demultiplexer(range(3), 2, mod3)


def test_no_len() -> None:
    a, _ = IterableWrapper(range(3)).demux(2, mod3)
    with pytest.raises(TypeError, match="demux child 0 doesn't have valid length"):
        len(a)


def test_resumes() -> None:
    assert_resumes_identically(lambda: Concater(*IterableWrapper(range(14)).demux(3, mod3)))
    assert_resumes_identically(
        lambda: ZipperLongest(*IterableWrapper(range(17)).demux(2, none_for_zero, True))
    )
    assert_resumes_identically(
        lambda: set_graph_random_seed(
            MultiplexerLongest(*IterableWrapper(range(15)).shuffle().demux(3, mod3)), 2
        )
    )


def test_resumes_in_lockstep() -> None:
    assert_children_resume_in_lockstep(
        lambda: IterableWrapper(range(20)).demux(2, none_for_zero, drop_none=True)
    )
    assert_children_resume_in_lockstep(lambda: IterableWrapper(range(12)).demux(3, mod3, buffer_size=2))


def test_state_of_another_pipeline_is_an_error() -> None:
    a, _ = IterableWrapper(range(4)).fork(2)
    state = iter(a).state_dict()
    d, _ = IterableWrapper(range(4)).demux(2, mod3)
    with pytest.raises(RuntimeError, match="different pipeline: expected demux child 0, got 'fork' child 0"):
        iter(d).load_state_dict(state)
    _, d1 = IterableWrapper(range(4)).demux(2, mod3)
    d0, _ = IterableWrapper(range(4)).demux(2, mod3)
    with pytest.raises(RuntimeError, match="expected demux child 1, got 'demux' child 0"):
        iter(d1).load_state_dict(iter(d0).state_dict())
    assert_children_resume_in_lockstep(lambda: IterableWrapper(range(9)).demux(3, mod3))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resumes_with_children_at_different_positions(seed) -> None:
    rng = random.Random(seed)
    schedule = [rng.choice([0, 0, 1, 2]) for _ in range(30)]
    assert_children_resume_interleaved(
        lambda: IterableWrapper(range(20)).demux(3, mod3, buffer_size=-1), schedule
    )
