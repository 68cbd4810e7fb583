"""DataLoader2 in process: seeds and epochs, exact resume at random cut points, from_state, stats, errors."""

from __future__ import annotations

import pickle

import pytest
import torch

from loom.data import DataLoader2, InProcessReadingService, SequentialReadingService
from loom.data.iter import IterableWrapper
from loom.data.map import SequenceWrapper

from .._checks import assert_plain, roundtrip
from ._pipes import cut_points, epoch_seed, shard_run, shuffled


def _epochs(loader: DataLoader2, n: int) -> list[list[int]]:
    return [list(loader) for _ in range(n)]


def test_seeded_loader_matches_reference_and_reshuffles_every_epoch() -> None:
    loader = DataLoader2(shuffled())
    loader.seed(5)
    epochs = _epochs(loader, 3)
    # The oracle: each epoch is the pipeline run once with the documented epoch seed.
    assert epochs == [shard_run(shuffled(), 1, 0, epoch_seed(5, e)) for e in range(3)]
    assert all(sorted(e) == [x * 10 for x in range(60)] for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]  # torchdata 0.9 repeats one order every epoch
    again = DataLoader2(shuffled())
    again.seed(5)
    assert _epochs(again, 3) == epochs


def test_unseeded_loader_follows_torch_manual_seed() -> None:
    torch.manual_seed(1)
    a = _epochs(DataLoader2(shuffled()), 2)
    torch.manual_seed(1)
    b = _epochs(DataLoader2(shuffled()), 2)
    torch.manual_seed(2)
    c = _epochs(DataLoader2(shuffled()), 2)
    assert a == b
    assert a != c
    assert a[0] != a[1]


def test_seed_call_restarts_the_sequence() -> None:
    loader = DataLoader2(shuffled())
    loader.seed(3)
    first = _epochs(loader, 2)
    loader.seed(3)
    assert _epochs(loader, 2) == first


@pytest.mark.parametrize("case", range(3))
def test_resume_at_random_cut_points_in_process(case: int) -> None:
    def make() -> DataLoader2:
        loader = DataLoader2(shuffled(40))
        loader.seed(11 + case)
        return loader

    reference = _epochs(make(), 3)
    flat = [x for e in reference for x in e]
    for cut in cut_points(len(reference[0]), 4, case):
        loader = make()
        list(loader)  # epoch 0 complete
        it = iter(loader)
        taken = [next(it) for _ in range(cut)]
        state = loader.state_dict()
        assert_plain({k: v for k, v in state.items() if k != "serialized_datapipe"})
        for candidate in (state, roundtrip(state)):
            resumed = make()
            resumed.load_state_dict(candidate)
            rest = list(resumed) + list(resumed)  # the rest of epoch 1, then epoch 2
            assert reference[0] + taken + rest == flat, f"cut at {cut}"
        assert list(it) == reference[1][cut:]  # the original is unaffected


def test_state_between_epochs_and_before_first() -> None:
    loader = DataLoader2(shuffled(20))
    loader.seed(4)
    reference = _epochs(loader, 3)
    fresh = DataLoader2(shuffled(20))
    fresh.seed(4)
    state0 = fresh.state_dict()
    assert list(fresh) == reference[0]
    state1 = fresh.state_dict()
    other = DataLoader2(shuffled(20))
    other.load_state_dict(state1)
    assert _epochs(other, 2) == reference[1:]
    other.load_state_dict(state0)
    assert _epochs(other, 1) == reference[:1]


def test_from_state_rebuilds_the_pipeline() -> None:
    loader = DataLoader2(shuffled(30))
    loader.seed(9)
    it = iter(loader)
    head = [next(it) for _ in range(7)]
    state = loader.state_dict()
    tail = list(it)
    restored = DataLoader2.from_state(pickle.loads(pickle.dumps(state)), InProcessReadingService())
    assert list(restored) == tail
    assert sorted(head + tail) == [x * 10 for x in range(30)]


def test_new_epoch_abandons_the_old_iterator() -> None:
    loader = DataLoader2(IterableWrapper(range(5)))
    old = iter(loader)
    next(old)
    assert list(loader) == [0, 1, 2, 3, 4]
    assert list(old) == []


def test_map_datapipe_adapter_and_sequential_service() -> None:
    loader = DataLoader2(
        SequenceWrapper([1, 2, 3]),
        datapipe_adapter_fn=lambda dp: dp.map(lambda x: x + 1),
        reading_service=SequentialReadingService(
            InProcessReadingService(), InProcessReadingService(prefetch_cnt=2)
        ),
    )
    with loader:
        assert list(loader) == [2, 3, 4]


def test_stats_count_elements_and_stages() -> None:
    loader = DataLoader2(IterableWrapper(range(12)).filter(lambda x: x % 3 == 0))
    loader.enable_stats()
    try:
        out = list(loader)
        stats = loader.stats()
    finally:
        loader.enable_stats(False)
    assert stats["elements"] == len(out) == 4
    assert stats["epochs"] == 1
    assert [(s["pipe"], s["produced"]) for s in stats["stages"]] == [("Filter", 4), ("IterableWrapper", 12)]
    assert stats["next_s"] >= 0.0


def test_progress_bar_counts_a_sized_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    loader = DataLoader2(IterableWrapper(range(7)).map(str), progress=True)
    assert list(loader) == [str(i) for i in range(7)]
    err = capsys.readouterr().err
    assert "7/7" in err


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match="DataLoader2: datapipe must be an IterDataPipe"):
        DataLoader2([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reading_service must be a ReadingServiceInterface"):
        DataLoader2(IterableWrapper([1]), reading_service=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"DataLoader2\.seed: seed must be an int, got 1\.5"):
        DataLoader2(IterableWrapper([1])).seed(1.5)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not a DataLoader2 state"):
        DataLoader2(IterableWrapper([1])).load_state_dict({"version": 99})
    with pytest.raises(ValueError, match="prefetch_cnt must be an int >= 0, got -1"):
        InProcessReadingService(prefetch_cnt=-1)
    with pytest.raises(ValueError, match="SequentialReadingService: give at least one"):
        SequentialReadingService()
    loader = DataLoader2(IterableWrapper([1]))
    loader.shutdown()
    with pytest.raises(RuntimeError, match="used after shutdown"):
        iter(loader)
