"""Map-style pipes over several sources: Concater, Zipper; and UnZipper, one pipe per column."""

from __future__ import annotations

import operator
from typing import Any

from loom.data._columns import unzip_columns
from loom.data._datapipe import MapDataPipe, functional_datapipe

__all__ = ["Concater", "UnZipper", "Zipper"]


def _check_map_pipes(call: str, datapipes: tuple[Any, ...]) -> None:
    if not datapipes:
        raise ValueError(f"{call}: expected at least one MapDataPipe, got nothing")
    for i, dp in enumerate(datapipes):
        if not isinstance(dp, MapDataPipe):
            raise TypeError(
                f"{call}: every input must be a MapDataPipe, got {type(dp).__name__} at position {i}"
            )
        try:
            len(dp)
        except TypeError as err:
            raise TypeError(
                f"{call}: every input must have a length, {type(dp).__name__} at position {i} has none"
            ) from err


@functional_datapipe("concat")
class Concater(MapDataPipe):
    """The items of the first pipe, then of the next ones, indexed in one range (functional name: ``concat``).

    Args:
        *datapipes: MapDataPipes with lengths, at least one.

    Example:
        >>> from loom.data.map import SequenceWrapper
        >>> dp = SequenceWrapper(range(3)).concat(SequenceWrapper("ab"))
        >>> len(dp), dp[3], list(dp)
        (5, 'a', [0, 1, 2, 'a', 'b'])
    """

    def __init__(self, *datapipes: MapDataPipe) -> None:
        _check_map_pipes("concat", datapipes)
        self.datapipes = datapipes

    def __getitem__(self, index: Any) -> Any:
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(f"concat: index must be an int, got {index!r}") from None
        total = len(self)
        if i < 0:
            i += total
        if not 0 <= i < total:
            raise IndexError(f"concat: index {index} is out of range for length {total}")
        for dp in self.datapipes:
            n = len(dp)
            if i < n:
                return dp[i]
            i -= n
        raise IndexError(f"concat: index {index} is out of range for length {total}")  # pragma: no cover

    def __len__(self) -> int:
        return sum(len(dp) for dp in self.datapipes)


@functional_datapipe("zip")
class Zipper(MapDataPipe):
    """``dp[i]`` is the tuple of every source's item ``i``; as long as the shortest (functional name: ``zip``).

    Args:
        *datapipes: MapDataPipes with lengths, at least one.

    Example:
        >>> from loom.data.map import SequenceWrapper
        >>> dp = SequenceWrapper(range(3)).zip(SequenceWrapper("abcd"))
        >>> len(dp), dp[1]
        (3, (1, 'b'))
    """

    def __init__(self, *datapipes: MapDataPipe) -> None:
        _check_map_pipes("zip", datapipes)
        self.datapipes = datapipes

    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        out = []
        for k, dp in enumerate(self.datapipes):
            try:
                out.append(dp[index])
            except IndexError as err:
                raise IndexError(
                    f"zip: index {index!r} is out of range for input {k} ({type(dp).__name__})"
                ) from err
        return tuple(out)

    def __len__(self) -> int:
        return min(len(dp) for dp in self.datapipes)


class _Column(MapDataPipe):
    """One column of an ``unzip``: ``dp[i]`` is ``main_datapipe[i][column]``."""

    _repr_fields = ("column",)

    def __init__(self, main_datapipe: MapDataPipe, column: int) -> None:
        self.main_datapipe = main_datapipe
        self.column = column

    def __getitem__(self, index: Any) -> Any:
        return self.main_datapipe[index][self.column]

    def __len__(self) -> int:
        return len(self.main_datapipe)


@functional_datapipe("unzip")
class UnZipper(MapDataPipe):
    """Splits a pipe of sequences into one pipe per position (functional name: ``unzip``); returns a list.

    Args:
        source_datapipe: a MapDataPipe of sequences of length ``sequence_length``.
        sequence_length: the length of every sequence, at least 1.
        columns_to_skip: positions that get no pipe.

    Example:
        >>> from loom.data.map import SequenceWrapper
        >>> nums, letters = SequenceWrapper([(0, "a"), (1, "b")]).unzip(sequence_length=2)
        >>> nums[1], letters[0]
        (1, 'a')
    """

    def __new__(cls, source_datapipe: MapDataPipe, sequence_length: int, columns_to_skip: Any = None) -> Any:
        if not isinstance(source_datapipe, MapDataPipe):
            raise TypeError(f"unzip: the source must be a MapDataPipe, got {type(source_datapipe).__name__}")
        columns = unzip_columns(sequence_length, columns_to_skip)
        return [_Column(source_datapipe, c) for c in columns]
