"""plan_buckets is pure: checked against a plain-Python re-statement of its rules, without processes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loom.parallel import BucketSpec, plan_buckets

MIB = 1024 * 1024


def _meta(numel: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(numel, dtype=dtype, device="meta")


def test_reverse_registration_order_and_offsets() -> None:
    params = [_meta(5), _meta(7), _meta(3)]
    (spec,) = plan_buckets(params)
    assert spec.indices == (2, 1, 0)
    assert spec.offsets == (0, 3, 10)
    assert spec.numel == 15
    assert spec.nbytes == 60
    assert spec.dtype == torch.float32


def test_first_bucket_is_small_then_cap() -> None:
    quarter = MIB // 4 // 4  # float32 elements in a quarter MiB
    params = [_meta(quarter) for _ in range(12)]
    specs = plan_buckets(params, bucket_cap_mb=2.0)
    # first bucket closes at 1 MiB (4 params), later ones at 2 MiB (8 params)
    assert [len(s.indices) for s in specs] == [4, 8]
    assert specs[0].indices == (11, 10, 9, 8)


def test_split_by_dtype() -> None:
    params = [_meta(4), _meta(4, torch.float16), _meta(4), _meta(4, torch.float16)]
    specs = plan_buckets(params)
    assert [s.indices for s in specs] == [(3, 1), (2, 0)]
    assert [s.dtype for s in specs] == [torch.float16, torch.float32]


def test_custom_order_and_validation() -> None:
    params = [_meta(4) for _ in range(3)]
    assert plan_buckets(params, order=[1, 2, 0])[0].indices == (1, 2, 0)
    with pytest.raises(ValueError, match=r"plan_buckets: order must be a permutation of range\(3\)"):
        plan_buckets(params, order=[0, 0, 1])
    with pytest.raises(ValueError, match="plan_buckets: bucket_cap_mb must be > 0, got 0"):
        plan_buckets(params, bucket_cap_mb=0)
    with pytest.raises(ValueError, match="plan_buckets: first_bucket_cap_mb must be > 0, got -1"):
        plan_buckets(params, first_bucket_cap_mb=-1)


def _reference(sizes: list[tuple[int, int]], cap: int, first: int) -> list[tuple[int, ...]]:
    """Plain restatement: per dtype key, fill in reverse order, close at >= limit."""
    buckets: list[list[int]] = []
    current: dict[int, list[int]] = {}
    used: dict[int, int] = {}
    seen_first: set[int] = set()
    for i in reversed(range(len(sizes))):
        numel, key = sizes[i]
        current.setdefault(key, []).append(i)
        used[key] = used.get(key, 0) + numel * (4 if key == 0 else 2)
        limit = cap if key in seen_first else first
        if used[key] >= limit:
            buckets.append(current.pop(key))
            used[key] = 0
            seen_first.add(key)
    buckets += [b for b in current.values() if b]
    buckets.sort(key=lambda b: len(sizes) - 1 - b[0])
    return [tuple(b) for b in buckets]


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 3000), st.integers(0, 1)), min_size=1, max_size=25),
    cap=st.integers(100, 20_000),
    first=st.integers(100, 20_000),
)
def test_matches_plain_reference(sizes: list[tuple[int, int]], cap: int, first: int) -> None:
    dtypes = {0: torch.float32, 1: torch.bfloat16}
    params = [_meta(n, dtypes[k]) for n, k in sizes]
    specs = plan_buckets(params, bucket_cap_mb=cap / MIB, first_bucket_cap_mb=first / MIB)
    assert [s.indices for s in specs] == _reference(sizes, int(cap / MIB * MIB), int(first / MIB * MIB))
    # every parameter exactly once, offsets contiguous, one dtype per bucket
    assert sorted(i for s in specs for i in s.indices) == list(range(len(params)))
    for s in specs:
        assert isinstance(s, BucketSpec)
        assert all(params[i].dtype == s.dtype for i in s.indices)
        ends = [o + params[i].numel() for o, i in zip(s.offsets, s.indices)]
        assert list(s.offsets[1:]) == ends[:-1] and ends[-1] == s.numel
