"""ParagraphAggregator and Sampler."""

from __future__ import annotations

import pytest
import torch

from loom.data.iter import IterableWrapper, Sampler

from ._checks import assert_resumes_identically
from ._oracle import torch_iter, torchdata_iter

LINES = [
    ("a", "x"),
    ("a", "y"),
    ("a", ""),
    ("a", ""),
    ("a", "z"),
    ("b", "1"),
    ("b", ""),
    ("c", "2"),
    ("c", "3"),
]


@pytest.mark.parametrize("lines", [LINES, [], [("a", "")], LINES[:5]])
def test_paragraphs_match_torchdata(lines) -> None:
    td = torchdata_iter()
    assert list(IterableWrapper(lines).lines_to_paragraphs()) == list(
        td.IterableWrapper(lines).lines_to_paragraphs()
    )
    joined = list(IterableWrapper(lines).lines_to_paragraphs(joiner=" | ".join))
    assert joined == list(td.IterableWrapper(lines).lines_to_paragraphs(joiner=" | ".join))


def test_paragraphs_resume_and_errors() -> None:
    assert_resumes_identically(lambda: IterableWrapper(LINES).lines_to_paragraphs())
    with pytest.raises(TypeError, match="lines_to_paragraphs: joiner must be callable"):
        IterableWrapper(LINES).lines_to_paragraphs(joiner="x")


def test_sampler_matches_torch() -> None:
    ours = Sampler(IterableWrapper("abcd"))
    theirs = torch_iter.Sampler(torch_iter.IterableWrapper("abcd"))
    assert list(ours) == list(theirs) and len(ours) == len(theirs)
    g = torch.Generator().manual_seed(0)
    ours_random = list(
        Sampler(IterableWrapper("abcd"), torch.utils.data.RandomSampler, sampler_kwargs={"generator": g})
    )
    assert sorted(ours_random) == [0, 1, 2, 3]


def test_sampler_errors_and_resume() -> None:
    with pytest.raises(TypeError, match="Sampler: the source must have a length, got IterableWrapper"):
        Sampler(IterableWrapper(iter([1])))

    def build():
        g = torch.Generator().manual_seed(1)
        return Sampler(
            IterableWrapper(range(9)), torch.utils.data.RandomSampler, sampler_kwargs={"generator": g}
        )

    assert_resumes_identically(build)
