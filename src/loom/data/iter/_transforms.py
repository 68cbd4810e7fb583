"""Element-wise pipes: Mapper, Filter, Collator, Header."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from torch.utils.data import default_collate

from loom.data._columns import (
    check_fn,
    check_input_col,
    check_int,
    check_source,
    column_applier,
    column_selector,
)
from loom.data._datapipe import IterDataPipe, functional_datapipe

__all__ = ["Collator", "Filter", "Header", "Mapper"]

_second = itemgetter(1)


@functional_datapipe("map")
class Mapper(IterDataPipe):
    """Applies ``fn`` to each element (functional name: ``map``), as torchdata's ``Mapper``.

    Args:
        datapipe: the source pipe.
        fn: the function.
        input_col: ``None`` to pass the whole element, or an index/key (or a list of them, passed as
            several arguments) selecting what ``fn`` receives.
        output_col: where the result goes: ``None`` replaces ``input_col`` (the first of several, the
            others are removed), ``-1`` appends, any other index/key sets it. Needs ``input_col``.
            The element itself is not modified; a changed copy is produced.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([(1, 2), (3, 4)]).map(lambda x: x * 10, input_col=1))
        [(1, 20), (3, 40)]
    """

    _repr_fields = ("fn", "input_col", "output_col")

    def __init__(
        self, datapipe: Any, fn: Callable[..., Any], input_col: Any = None, output_col: Any = None
    ) -> None:
        check_source("map", datapipe)
        check_fn("map", "fn", fn)
        if input_col is None and output_col is not None:
            raise ValueError(
                f"map: output_col must be None when input_col is None, got output_col={output_col!r}"
            )
        if isinstance(output_col, (list, tuple)):
            if len(output_col) != 1:
                raise ValueError(f"map: output_col must be a single index or key, got {output_col!r}")
            output_col = output_col[0]
        if input_col is not None:
            check_input_col("map", fn, input_col)
        self.source_datapipe = datapipe
        self.fn = fn
        self.input_col = input_col
        self.output_col = output_col

    def _apply(self) -> Callable[[Any], Any]:
        if self.input_col is None:
            return self.fn
        return column_applier(self.fn, self.input_col, self.output_col)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(self._apply(), srcs[0])

    def __len__(self) -> int:
        return self._source_len()


@functional_datapipe("collate")
class Collator(Mapper):
    """Collates each element (usually a batch) with ``collate_fn`` (functional name: ``collate``).

    Args:
        datapipe: the source pipe.
        conversion: a collate function (default ``torch.utils.data.default_collate``).
        collate_fn: if given, used instead of ``conversion``.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([1, 2, 3, 4]).batch(2).collate())
        [tensor([1, 2]), tensor([3, 4])]
    """

    _repr_fields = ("fn",)

    def __init__(
        self,
        datapipe: Any,
        conversion: Any = default_collate,
        collate_fn: Callable[..., Any] | None = None,
    ) -> None:
        fn = collate_fn if collate_fn is not None else conversion
        if isinstance(fn, dict):
            raise NotImplementedError(
                "collate: a dict conversion (the DataFrame API) is not supported; pass a function"
            )
        check_fn("collate", "collate_fn" if collate_fn is not None else "conversion", fn)
        super().__init__(datapipe, fn)


def _checked_filter(fn: Callable[[Any], Any], src: Iterator[Any]) -> Iterator[Any]:
    for x in src:
        keep = fn(x)
        if keep is True:
            yield x
        elif keep is not False:
            raise ValueError(
                f"filter: filter_fn must return a bool, got {type(keep).__name__} ({keep!r}) for {x!r}"
            )


@functional_datapipe("filter")
class Filter(IterDataPipe):
    """Keeps the elements for which ``filter_fn`` returns ``True`` (functional name: ``filter``).

    Args:
        datapipe: the source pipe.
        filter_fn: returns a ``bool`` (anything else is an error, as in torchdata).
        input_col: ``None`` to pass the whole element, or index/key(s) selecting the arguments.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(6)).filter(lambda x: x % 2 == 0))
        [0, 2, 4]
    """

    _repr_fields = ("filter_fn", "input_col")

    def __init__(self, datapipe: Any, filter_fn: Callable[..., bool], input_col: Any = None) -> None:
        check_source("filter", datapipe)
        check_fn("filter", "filter_fn", filter_fn)
        if input_col is not None:
            check_input_col("filter", filter_fn, input_col)
        self.source_datapipe = datapipe
        self.filter_fn = filter_fn
        self.input_col = input_col

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return _checked_filter(column_selector(self.filter_fn, self.input_col), srcs[0])


class _HeaderState:
    __slots__ = ("budget", "it")

    def __init__(self, remaining: int | None) -> None:
        self.budget = None if remaining is None else iter(range(remaining))


@functional_datapipe("header")
class Header(IterDataPipe):
    """Yields at most the first ``limit`` elements (functional name: ``header``).

    Args:
        source_datapipe: the source pipe.
        limit: how many elements; ``None`` for all. Unlike torchdata, no element past the limit is
            pulled from the source.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(10)).header(3))
        [0, 1, 2]
    """

    _repr_fields = ("limit",)

    def __init__(self, source_datapipe: Any, limit: int | None = 10) -> None:
        check_source("header", source_datapipe)
        if limit is not None:
            check_int("header", "limit", limit, 0)
        self.source_datapipe = source_datapipe
        self.limit = limit

    def _init_state(self, ctx: Any) -> _HeaderState:
        return _HeaderState(self.limit)

    def _iterate(self, srcs: list[Iterator[Any]], state: _HeaderState) -> Iterator[Any]:
        if state.budget is None:
            return srcs[0]
        # zip draws from the budget first, so the source is never asked past the limit.
        return map(_second, zip(state.budget, srcs[0]))

    def _save_state(self, state: _HeaderState) -> dict[str, Any]:
        return {"remaining": None if state.budget is None else state.budget.__length_hint__()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _HeaderState:
        remaining = data.get("remaining")
        if remaining is not None and (not isinstance(remaining, int) or remaining < 0):
            raise RuntimeError(
                f"load_state_dict: Header expects a non-negative 'remaining', got {remaining!r}"
            )
        if (remaining is None) != (self.limit is None):
            raise RuntimeError(f"load_state_dict: Header state {data!r} does not match limit={self.limit}")
        return _HeaderState(remaining)

    def __len__(self) -> int:
        # torchdata reports the limit with a warning when the source has no length; an unknown
        # length is a TypeError here, as everywhere else (list(pipe) then simply skips the hint).
        n = self._source_len()
        return n if self.limit is None else min(n, self.limit)
