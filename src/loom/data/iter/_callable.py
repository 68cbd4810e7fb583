"""Pipes that apply user functions: Mapper, Collator, Filter, FlatMapper, BatchMapper."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
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
from loom.data.iter._common import Pending

__all__ = ["BatchMapper", "Collator", "Filter", "FlatMapper", "Mapper"]


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

    _repr_fields: tuple[str, ...] = ("fn", "input_col", "output_col")

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

    _repr_fields: tuple[str, ...] = ("fn",)

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


def _no_op(*args: Any) -> Any:
    return args[0] if len(args) == 1 else args


def _flatmap(src: Iterator[Any], fn: Callable[[Any], Any], state: Pending) -> Iterator[Any]:
    yield from state.it
    for x in src:
        yield from state.reset(list(fn(x)))


@functional_datapipe("flatmap")
class FlatMapper(IterDataPipe):
    """Applies ``fn`` to each element and yields the items of the iterable it returns (functional name: ``flatmap``).

    Args:
        datapipe: the source pipe.
        fn: returns an iterable for each element; ``None`` uses the element itself.
        input_col: index/key(s) selecting ``fn``'s arguments, as in ``Mapper``.

    The iterable ``fn`` returns is read whole before its first item is yielded (so that its rest can
    be saved in the iterator state).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([1, 2]).flatmap(lambda x: [x] * x))
        [1, 2, 2]
    """

    _repr_fields = ("fn", "input_col")

    def __init__(self, datapipe: Any, fn: Callable[..., Any] | None = None, input_col: Any = None) -> None:
        check_source("flatmap", datapipe)
        fn = _no_op if fn is None else fn
        check_fn("flatmap", "fn", fn)
        if input_col is not None:
            check_input_col("flatmap", fn, input_col)
        self.source_datapipe = datapipe
        self.fn = fn
        self.input_col = input_col

    def _init_state(self, ctx: Any) -> Pending:
        return Pending([])

    def _iterate(self, srcs: list[Iterator[Any]], state: Pending) -> Iterator[Any]:
        return _flatmap(srcs[0], column_selector(self.fn, self.input_col), state)

    def _save_state(self, state: Pending) -> dict[str, Any]:
        return {"pending": state.remaining()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Pending:
        from loom.data.iter._common import load_list

        return Pending(load_list("FlatMapper", data, "pending"))

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__}'s length relies on the output of its function")


@functional_datapipe("map_batches")
class BatchMapper(IterDataPipe):
    """Applies ``fn`` to batches of ``batch_size`` elements and yields the items it returns (functional name: ``map_batches``).

    Args:
        datapipe: the source pipe.
        fn: takes a list (of elements, or of the selected columns) and returns an iterable.
        batch_size: elements per call, at least 1.
        input_col: an index/key, or a list of them, selecting what goes into the list.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(5)).map_batches(lambda b: [sum(b)] * len(b), batch_size=2))
        [1, 1, 5, 5, 4]
    """

    _repr_fields = ("fn", "batch_size", "input_col")

    def __init__(
        self, datapipe: Any, fn: Callable[[list[Any]], Any], batch_size: int, input_col: Any = None
    ) -> None:
        check_source("map_batches", datapipe)
        check_fn("map_batches", "fn", fn)
        check_int("map_batches", "batch_size", batch_size, 1)
        self.source_datapipe = datapipe
        self.fn = fn
        self.batch_size = batch_size
        self.input_col = input_col

    def _init_state(self, ctx: Any) -> Pending:
        return Pending([])

    def _iterate(self, srcs: list[Iterator[Any]], state: Pending) -> Iterator[Any]:
        return self._run(srcs[0], state)

    def _args(self, batch: list[Any]) -> list[Any]:
        col = self.input_col
        if col is None:
            return batch
        if isinstance(col, (list, tuple)):
            return [[row[c] for c in col] for row in batch]
        return [row[col] for row in batch]

    def _run(self, src: Iterator[Any], state: Pending) -> Iterator[Any]:
        yield from state.it
        size = self.batch_size
        while True:
            batch = list(islice(src, size))
            if not batch:
                return
            yield from state.reset(list(self.fn(self._args(batch))))

    def _save_state(self, state: Pending) -> dict[str, Any]:
        return {"pending": state.remaining()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Pending:
        from loom.data.iter._common import load_list

        return Pending(load_list("BatchMapper", data, "pending"))

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__}'s length relies on the output of its function")
