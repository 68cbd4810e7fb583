from __future__ import annotations

import pytest

from loom.data import set_graph_random_seed
from loom.data.iter import IterableWrapper, SampleMultiplexer

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter


def _ours(weights, seed=None):  # type: ignore[no-untyped-def]
    return SampleMultiplexer(
        {IterableWrapper([10 * i + j for j in range(n)]): w for i, (n, w) in enumerate(weights)}, seed
    )


@pytest.mark.parametrize("weights", [[(5, 1.0), (5, 1.0)], [(8, 0.2), (3, 0.5), (6, 0.3)], [(0, 1), (4, 2)]])
@pytest.mark.parametrize("seed", [0, 11])
def test_matches_torchdata_draws(weights, seed) -> None:
    td = torchdata_iter()
    it = iter(_ours(weights, seed))
    version, internal, gauss = it.state_dict()["state"]["rng"]
    theirs = td.SampleMultiplexer(
        {td.IterableWrapper([10 * i + j for j in range(n)]): w for i, (n, w) in enumerate(weights)}
    )
    theirs.random.setstate((version, tuple(internal), gauss))  # the same generator state as ours
    assert list(it) == list(theirs)
    assert len(_ours(weights)) == len(theirs)


def test_epochs_differ_and_seed_reproduces() -> None:
    pipe = _ours([(20, 1.0), (20, 1.0)], seed=3)
    first, second = list(pipe), list(pipe)
    assert first != second and sorted(first) == sorted(second)
    assert list(_ours([(20, 1.0), (20, 1.0)], seed=3)) == first
    graph_seeded = set_graph_random_seed(_ours([(20, 1.0), (20, 1.0)]), 0)
    assert list(graph_seeded) == list(set_graph_random_seed(_ours([(20, 1.0), (20, 1.0)]), 0))


@pytest.mark.parametrize(
    ("arg", "err", "match"),
    [
        ({}, ValueError, "SampleMultiplexer: pipes_to_weights_dict must be a non-empty dict"),
        ({"a": 1.0}, TypeError, "SampleMultiplexer: every input must be an IterDataPipe, got str"),
        ({IterableWrapper([1]): 0}, ValueError, "SampleMultiplexer: weights must be positive numbers, got 0"),
    ],
)
def test_bad_arguments(arg, err, match) -> None:
    with pytest.raises(err, match=match):
        SampleMultiplexer(arg)
    with pytest.raises(TypeError, match="SampleMultiplexer: seed must be an int or None"):
        SampleMultiplexer({IterableWrapper([1]): 1.0}, seed="x")  # type: ignore[arg-type]


def test_resumes() -> None:
    assert_resumes_identically(lambda: _ours([(8, 0.2), (3, 0.5), (6, 0.3)], seed=5))
    assert_resumes_identically(lambda: set_graph_random_seed(_ours([(5, 1.0), (7, 2.0)]), 1))
