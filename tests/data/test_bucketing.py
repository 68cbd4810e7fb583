"""BucketBatcher, MaxTokenBucketizer, InBatchShuffler."""

from __future__ import annotations

import pytest

from loom.data import set_graph_random_seed
from loom.data.iter import IterableWrapper

from ._checks import assert_resumes_identically
from ._oracle import torchdata_iter

WORDS = ["a" * n for n in [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]]


@pytest.mark.parametrize("max_tokens", [9, 12, 30])
@pytest.mark.parametrize("buffer_size", [1, 4, 1000])
@pytest.mark.parametrize("padding", [False, True])
def test_max_token_bucketize_matches_torchdata(max_tokens, buffer_size, padding) -> None:
    td = torchdata_iter()
    kwargs = {"buffer_size": buffer_size, "include_padding": padding, "min_len": 2}
    ours = list(IterableWrapper(WORDS).max_token_bucketize(max_tokens, **kwargs))
    theirs = list(td.IterableWrapper(WORDS).max_token_bucketize(max_tokens, **kwargs))
    assert ours == theirs


def test_max_token_bucketize_errors() -> None:
    with pytest.raises(
        ValueError, match=r"max_token_bucketize: max_len \(12\) must be <= max_token_count \(10\)"
    ):
        IterableWrapper(WORDS).max_token_bucketize(10, max_len=12)
    with pytest.raises(ValueError, match="max_token_bucketize: max_len must be >= 5, got 3"):
        IterableWrapper(WORDS).max_token_bucketize(10, min_len=5, max_len=3)
    with pytest.raises(ValueError, match="buffer_size must be >= 1"):
        IterableWrapper(WORDS).max_token_bucketize(10, buffer_size=0)


@pytest.mark.parametrize("padding", [False, True])
def test_max_token_bucketize_resumes(padding) -> None:
    assert_resumes_identically(
        lambda: IterableWrapper(WORDS).max_token_bucketize(12, buffer_size=5, include_padding=padding)
    )


def test_in_batch_shuffle() -> None:
    td = torchdata_iter()
    batches = [list(range(i, i + 5)) for i in range(0, 25, 5)]
    ours = list(set_graph_random_seed(IterableWrapper(batches).in_batch_shuffle(), 0))
    theirs = list(td.IterableWrapper(batches).in_batch_shuffle())
    assert [sorted(b) for b in ours] == [sorted(b) for b in theirs] == batches
    assert ours != batches
    assert list(IterableWrapper(batches).in_batch_shuffle().set_shuffle(False)) == batches


def test_in_batch_shuffle_resumes() -> None:
    batches = [list(range(i, i + 4)) for i in range(0, 24, 4)]
    assert_resumes_identically(lambda: set_graph_random_seed(IterableWrapper(batches).in_batch_shuffle(), 3))


@pytest.mark.parametrize("sort_key", [None, sorted])
@pytest.mark.parametrize("use_in_batch_shuffle", [True, False])
@pytest.mark.parametrize("bucket_num", [1, 2])
def test_bucketbatch_like_torchdata(sort_key, use_in_batch_shuffle, bucket_num) -> None:
    td = torchdata_iter()
    kwargs = {
        "batch_size": 3,
        "batch_num": 2,
        "bucket_num": bucket_num,
        "sort_key": sort_key,
        "use_in_batch_shuffle": use_in_batch_shuffle,
    }
    ours = list(set_graph_random_seed(IterableWrapper(range(40)).bucketbatch(**kwargs), 0))
    theirs = list(td.IterableWrapper(range(40)).bucketbatch(**kwargs))
    assert sorted(map(len, ours)) == sorted(map(len, theirs))
    assert sorted(x for b in ours for x in b) == list(range(40))
    if sort_key is not None and bucket_num == 1:
        # Each bucket of batch_size * batch_num = 6 is sorted before batching: batches are runs.
        assert all(b == sorted(b) for b in ours)


def test_bucketbatch_errors() -> None:
    with pytest.raises(ValueError, match="bucketbatch: batch_num must be >= 1, got 0"):
        IterableWrapper(range(3)).bucketbatch(2, batch_num=0)
    with pytest.raises(TypeError, match="bucketbatch: sort_key must be callable"):
        IterableWrapper(range(3)).bucketbatch(2, sort_key=3)


def test_bucketbatch_resumes() -> None:
    assert_resumes_identically(
        lambda: set_graph_random_seed(
            IterableWrapper(range(30)).bucketbatch(3, batch_num=2, bucket_num=2, sort_key=sorted), 5
        )
    )
