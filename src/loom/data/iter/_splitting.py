"""Pipes with several outputs sharing one bounded buffer: Forker, UnZipper, Demultiplexer, RoundRobinDemultiplexer.

The children read one pass over the source through a container; see NOTE [children share one live
iteration] in ``_children.py``.
"""

from __future__ import annotations

import copy as copymodule
import functools
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from loom.data._columns import check_fn, check_int, unzip_columns
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._children import _ChildDataPipe, _Container, _DemuxLive

__all__ = ["Demultiplexer", "Forker", "RoundRobinDemultiplexer", "UnZipper"]


def _check_buffer_size(call: str, buffer_size: Any) -> None:
    check_int(call, "buffer_size", buffer_size, -1)
    if buffer_size == 0:
        raise ValueError(f"{call}: buffer_size must be >= 1, or -1 for no bound, got 0")


def _check_num_instances(call: str, num_instances: Any) -> None:
    check_int(call, "num_instances", num_instances, 1)


class _ForkContainer(_Container):
    def __init__(
        self, datapipe: IterDataPipe, num_instances: int, buffer_size: int, copy: str | None
    ) -> None:
        super().__init__(datapipe, num_instances, buffer_size)
        self.copy = copy

    def _picks(self) -> list[Callable[[Any], Any] | None]:
        fn = {None: None, "shallow": copymodule.copy, "deep": copymodule.deepcopy}[self.copy]
        return [fn] * self.num_instances


@functional_datapipe("fork")
class Forker(IterDataPipe):
    """Makes ``num_instances`` copies of a pipe that share one pass over it (functional name: ``fork``).

    Returns a list of child pipes (or ``datapipe`` itself when ``num_instances`` is 1). Elements a
    leading child has read wait in a shared buffer until the slowest child reads them. The children
    may be read by one iterator (``Zipper(*pipe.fork(2))``) or by one iterator each
    (``zip(*pipe.fork(2))``); each child iterator's state holds the shared buffer and positions, so
    restoring every child's iterator (in any order) continues exactly. A new iterator of a child that
    is already being read starts a new pass and invalidates the old pass's iterators, as in torchdata.

    Args:
        datapipe: the source pipe.
        num_instances: how many children, at least 1.
        buffer_size: how far (in elements) the leading child may run ahead of the slowest; -1: no bound.
        copy: ``None`` (every child gets the same object), ``"shallow"`` or ``"deep"`` copies.

    Raises:
        BufferError: (while iterating) a child ran more than ``buffer_size`` elements ahead.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> a, b = IterableWrapper(range(3)).fork(2)
        >>> list(zip(a, b))
        [(0, 0), (1, 1), (2, 2)]
    """

    def __new__(
        cls, datapipe: IterDataPipe, num_instances: int, buffer_size: int = 1000, copy: str | None = None
    ) -> Any:
        _check_source("fork", datapipe)
        _check_num_instances("fork", num_instances)
        _check_buffer_size("fork", buffer_size)
        if copy not in (None, "shallow", "deep"):
            raise ValueError(f"fork: copy must be None, 'shallow' or 'deep', got {copy!r}")
        if num_instances == 1:
            return datapipe
        container = _ForkContainer(datapipe, num_instances, buffer_size, copy)
        return [_ChildDataPipe(container, i) for i in range(num_instances)]


class _UnZipContainer(_Container):
    _op = "unzip"

    def __init__(self, datapipe: IterDataPipe, columns: list[int], buffer_size: int) -> None:
        super().__init__(datapipe, len(columns), buffer_size)
        self.columns = columns

    def _picks(self) -> list[Callable[[Any], Any] | None]:
        return [itemgetter(c) for c in self.columns]


@functional_datapipe("unzip")
class UnZipper(IterDataPipe):
    """Splits a pipe of sequences into one pipe per position (functional name: ``unzip``).

    Returns a list of child pipes sharing one pass, as ``fork`` (same buffer rules).

    Args:
        source_datapipe: a pipe of sequences of length ``sequence_length``.
        sequence_length: the length of every sequence, at least 1.
        buffer_size: how far the leading child may run ahead of the slowest; -1: no bound.
        columns_to_skip: positions that get no child.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> nums, letters = IterableWrapper([(0, "a"), (1, "b")]).unzip(sequence_length=2)
        >>> list(nums), list(letters)
        ([0, 1], ['a', 'b'])
    """

    def __new__(
        cls,
        source_datapipe: IterDataPipe,
        sequence_length: int,
        buffer_size: int = 1000,
        columns_to_skip: Any = None,
    ) -> Any:
        _check_source("unzip", source_datapipe)
        columns = unzip_columns(sequence_length, columns_to_skip)
        _check_buffer_size("unzip", buffer_size)
        container = _UnZipContainer(source_datapipe, columns, buffer_size)
        return [_ChildDataPipe(container, i) for i in range(len(columns))]


class _DemuxContainer(_Container):
    _op = "demux"
    _live_class = _DemuxLive

    def __init__(
        self,
        datapipe: IterDataPipe,
        num_instances: int,
        classifier_fn: Any,
        drop_none: bool,
        buffer_size: int,
    ) -> None:
        super().__init__(datapipe, num_instances, buffer_size)
        self.classifier_fn = classifier_fn
        self.drop_none = drop_none

    def child_len(self, i: int) -> int:
        raise TypeError(f"{self._op} child {i} doesn't have valid length: it depends on classifier_fn")


@functional_datapipe("demux")
class Demultiplexer(IterDataPipe):
    """Splits a pipe into ``num_instances`` children by ``classifier_fn`` (functional name: ``demux``).

    Returns a list of child pipes sharing one pass. Elements read while a child looks for its next
    one wait in per-child buffers, at most ``buffer_size`` in all.

    Args:
        datapipe: the source pipe.
        num_instances: how many children, at least 1.
        classifier_fn: an element's child index in ``[0, num_instances - 1]`` (or ``None``).
        drop_none: drop elements classified ``None`` (otherwise they are an error).
        buffer_size: the most elements waiting in all buffers; -1: no bound.

    Raises:
        BufferError: (while iterating) more than ``buffer_size`` elements wait.
        ValueError: (while iterating) ``classifier_fn`` returned something else than a valid index.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> even, odd = IterableWrapper(range(5)).demux(2, lambda x: x % 2)
        >>> list(even), list(odd)
        ([0, 2, 4], [1, 3])
    """

    def __new__(
        cls,
        datapipe: IterDataPipe,
        num_instances: int,
        classifier_fn: Callable[[Any], int | None],
        drop_none: bool = False,
        buffer_size: int = 1000,
    ) -> Any:
        _check_source("demux", datapipe)
        _check_num_instances("demux", num_instances)
        check_fn("demux", "classifier_fn", classifier_fn)
        _check_buffer_size("demux", buffer_size)
        container = _DemuxContainer(datapipe, num_instances, classifier_fn, drop_none, buffer_size)
        return [_ChildDataPipe(container, i) for i in range(num_instances)]


def _round_robin(num_instances: int, idx_data: tuple[int, Any]) -> int:
    return idx_data[0] % num_instances


def _drop_index(idx_data: tuple[int, Any]) -> Any:
    return idx_data[1]


class _RoundRobinContainer(_DemuxContainer):
    _op = "round_robin_demux"

    def child_len(self, i: int) -> int:
        n = super(_DemuxContainer, self).child_len(i)
        share = n // self.num_instances
        return share + 1 if n - share * self.num_instances > i else share


@functional_datapipe("round_robin_demux")
class RoundRobinDemultiplexer(IterDataPipe):
    """Deals the elements to ``num_instances`` children in turn (functional name: ``round_robin_demux``).

    Returns a list of child pipes sharing one pass (a ``demux`` on the element's index).

    Args:
        datapipe: the source pipe.
        num_instances: how many children, at least 1 (1 returns ``[datapipe]``).
        buffer_size: the most elements waiting in all buffers; -1: no bound.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> a, b = IterableWrapper(range(5)).round_robin_demux(2)
        >>> list(a), list(b), len(a)
        ([0, 2, 4], [1, 3], 3)
    """

    def __new__(cls, datapipe: IterDataPipe, num_instances: int, buffer_size: int = 1000) -> Any:
        _check_source("round_robin_demux", datapipe)
        _check_num_instances("round_robin_demux", num_instances)
        _check_buffer_size("round_robin_demux", buffer_size)
        if num_instances == 1:
            return [datapipe]
        classifier = functools.partial(_round_robin, num_instances)
        container = _RoundRobinContainer(datapipe.enumerate(), num_instances, classifier, False, buffer_size)  # type: ignore[attr-defined]
        return [_ChildDataPipe(container, i).map(_drop_index) for i in range(num_instances)]  # type: ignore[attr-defined]


def _check_source(call: str, datapipe: Any) -> None:
    if not isinstance(datapipe, IterDataPipe):
        raise TypeError(f"{call}: the source must be an IterDataPipe, got {type(datapipe).__name__}")
