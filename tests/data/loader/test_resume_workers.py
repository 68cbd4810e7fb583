"""Mid-epoch state with worker processes: random cut points, shuffling, several workers, later epochs."""

from __future__ import annotations

import pytest

from loom.data import DataLoader2, InProcessReadingService, MultiProcessingReadingService

from .._checks import roundtrip
from ._pipes import batched, cut_points, shuffled

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(90)]


@pytest.mark.parametrize(("workers", "build", "case"), [(2, shuffled, 0), (3, batched, 1)])
def test_resume_at_random_cut_points_with_workers(workers, build, case) -> None:
    def make() -> DataLoader2:
        rs = MultiProcessingReadingService(num_workers=workers, worker_prefetch_cnt=2, main_prefetch_cnt=1)
        loader = DataLoader2(build(), reading_service=rs)
        loader.seed(17 + case)
        return loader

    with make() as ref:
        epochs = [list(ref) for _ in range(3)]
    flat = [x for e in epochs for x in e]
    with make() as loader, make() as resumed:
        assert list(loader) == epochs[0]
        it = iter(loader)
        taken: list = []
        for cut in cut_points(len(epochs[1]), 3, case):
            while len(taken) < cut:
                taken.append(next(it))
            state = loader.state_dict()
            resumed.load_state_dict(roundtrip(state))  # the same worker processes take the new position
            rest = list(resumed) + list(resumed)
            assert epochs[0] + taken + rest == flat, f"cut at {cut}"
        assert taken + list(it) == epochs[1]  # taking states does not disturb the original


def test_state_needs_the_same_worker_count() -> None:
    rs = MultiProcessingReadingService(num_workers=2)
    with DataLoader2(shuffled(), reading_service=rs) as loader:
        it = iter(loader)
        next(it)
        state = loader.state_dict()
        rest = list(it)
    with DataLoader2.from_state(state, MultiProcessingReadingService(num_workers=2)) as again:
        assert list(again) == rest
    with DataLoader2(shuffled(), reading_service=MultiProcessingReadingService(num_workers=3)) as other:
        other.load_state_dict(state)
        with pytest.raises(RuntimeError, match="saved with 2 workers, this loader has 3"):
            iter(other)
    inproc = DataLoader2(shuffled(), reading_service=InProcessReadingService())
    inproc.load_state_dict(state)
    with pytest.raises(RuntimeError, match=r"not a loom\.data iterator state"):
        iter(inproc)
