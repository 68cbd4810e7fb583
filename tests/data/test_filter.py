from __future__ import annotations

import numpy as np
import pytest

from loom.data.iter import Filter, IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torch_iter


@pytest.mark.parametrize(
    ("data", "fn", "input_col"),
    [
        (list(range(20)), lambda x: x % 3 == 0, None),
        ([(1, "a"), (2, "b"), (3, "c")], lambda x: x > 1, 0),
        ([(1, 2), (2, 2), (3, 1)], lambda a, b: a == b, [0, 1]),
        ([{"k": 1}, {"k": 0}], lambda v: v == 1, "k"),
        ([], lambda x: True, None),
        (list(range(5)), lambda x: False, None),
    ],
)
def test_matches_torch(data, fn, input_col) -> None:
    ours = list(IterableWrapper(data).filter(fn, input_col=input_col))
    assert ours == list(torch_iter.IterableWrapper(data).filter(fn, input_col=input_col))
    assert isinstance(IterableWrapper(data).filter(fn), Filter)


@pytest.mark.parametrize("bad", [1, 0, None, "yes", np.bool_(True)])
def test_non_bool_result_is_an_error_as_in_torch(bad) -> None:
    with pytest.raises(ValueError, match="Boolean output is required"):
        list(torch_iter.IterableWrapper([1]).filter(lambda x: bad))
    with pytest.raises(ValueError, match="filter: filter_fn must return a bool"):
        list(IterableWrapper([1]).filter(lambda x: bad))


def test_bad_arguments_and_len() -> None:
    with pytest.raises(TypeError, match="filter: filter_fn must be callable"):
        IterableWrapper([1]).filter(None)
    with pytest.raises(ValueError, match="takes 1 positional"):
        IterableWrapper([1]).filter(lambda x: True, input_col=[0, 1])
    with pytest.raises(TypeError, match="object of type 'Filter' has no len"):
        len(IterableWrapper([1]).filter(lambda x: True))


def test_resumes() -> None:
    assert_resumes_identically(lambda: IterableWrapper(range(30)).filter(lambda x: x % 4 != 1))
