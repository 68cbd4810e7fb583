from __future__ import annotations

import pytest
import torch

from loom.data.iter import Collator, IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torch_iter


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_default_collate_matches_torch() -> None:
    data = [[1, 2], [3, 4], [5]]
    assert _same(list(IterableWrapper(data).collate()), list(torch_iter.IterableWrapper(data).collate()))


def test_custom_collate_fn() -> None:
    def fn(batch):
        return torch.tensor(batch, dtype=torch.float64).sum()

    ours = list(Collator(IterableWrapper([[1, 2], [3]]), collate_fn=fn))
    assert _same(ours, list(torch_iter.IterableWrapper([[1, 2], [3]]).collate(collate_fn=fn)))


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="collate: collate_fn must be callable"):
        IterableWrapper([1]).collate(collate_fn=3)
    with pytest.raises(NotImplementedError, match="DataFrame"):
        IterableWrapper([1]).collate({"a": str})


def test_resumes() -> None:
    assert_resumes_identically(lambda: IterableWrapper(range(10)).batch(3).collate())
