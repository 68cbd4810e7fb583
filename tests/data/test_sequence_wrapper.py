from __future__ import annotations

import pytest

from loom.data.map import SequenceWrapper

from ._oracle import torch_map


@pytest.mark.parametrize("data", [[], [1, 2, 3], range(5), "abc", {"a": 1, 0: 2}])
def test_matches_torch(data) -> None:
    ours, theirs = SequenceWrapper(data), torch_map.SequenceWrapper(data)
    assert len(ours) == len(theirs)
    keys = list(data.keys()) if isinstance(data, dict) else range(len(data))
    assert [ours[k] for k in keys] == [theirs[k] for k in keys]


def test_iteration_and_deepcopy() -> None:
    rows = [[1], [2]]
    dp = SequenceWrapper(rows)
    rows[0].append(9)
    assert list(dp) == [[1], [2]]
    assert SequenceWrapper(rows, deepcopy=False)[0] == [1, 9]


def test_index_errors_and_bad_input() -> None:
    with pytest.raises(IndexError):
        SequenceWrapper([1])[5]
    with pytest.raises(
        TypeError, match="SequenceWrapper: sequence must have __getitem__ and __len__, got int"
    ):
        SequenceWrapper(3)
