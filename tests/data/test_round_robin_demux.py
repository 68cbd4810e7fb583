from __future__ import annotations

import pytest

from loom.data.iter import IterableWrapper, RoundRobinDemultiplexer, Zipper, ZipperLongest

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter
from ._split_checks import assert_children_resume_in_lockstep


@pytest.mark.parametrize("n", [0, 1, 7, 9])
@pytest.mark.parametrize("k", [2, 3])
def test_matches_torchdata(n, k) -> None:
    td = torchdata_iter()
    ours = IterableWrapper(range(n)).round_robin_demux(k)
    theirs = td.IterableWrapper(range(n)).round_robin_demux(k)
    assert [len(c) for c in ours] == [len(c) for c in theirs]
    assert [list(c) for c in ours] == [list(c) for c in theirs]


def test_one_instance() -> None:
    src = IterableWrapper([1])
    assert src.round_robin_demux(1) == [src]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="round_robin_demux: num_instances must be >= 1"):
        IterableWrapper([1]).round_robin_demux(0)
    with pytest.raises(ValueError, match="round_robin_demux: buffer_size must be >= 1"):
        IterableWrapper([1]).round_robin_demux(2, buffer_size=0)
    with pytest.raises(TypeError, match="round_robin_demux: the source must be an IterDataPipe"):
        RoundRobinDemultiplexer([1], 2)


def test_buffer_bound() -> None:
    a, _ = IterableWrapper(range(10)).round_robin_demux(2, buffer_size=3)
    with pytest.raises(BufferError, match="round_robin_demux: buffer overflow"):
        list(a)


def test_resumes() -> None:
    assert_resumes_identically(lambda: ZipperLongest(*IterableWrapper(range(11)).round_robin_demux(3)))
    assert_children_resume_in_lockstep(lambda: IterableWrapper(range(10)).round_robin_demux(2))
    assert_resumes_identically(lambda: Zipper(*IterableWrapper(range(8)).round_robin_demux(2)))
