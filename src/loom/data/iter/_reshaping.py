"""Pipes that reshape each element: Dropper, Slicer, Flattener, Rows2Columnar."""

from __future__ import annotations

import functools
import warnings
from collections import defaultdict
from collections.abc import Hashable, Iterator
from typing import Any

from loom.data._columns import check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe

__all__ = ["Dropper", "Flattener", "Rows2Columnar", "Slicer"]


def _as_index_set(indices: Any) -> set[Any]:
    return set(indices) if isinstance(indices, list) else {indices}


def _warn_missing(call: str, item: Any, indices: Any) -> None:
    try:
        for i in indices:
            item[i]
    except (IndexError, KeyError, TypeError):
        warnings.warn(
            f"{call}: index {i!r} is not present in the element, so expected columns/keys may be missing",
            UserWarning,
            stacklevel=4,
        )


def _not_a_container(call: str) -> None:
    warnings.warn(
        f"{call}: the element is not a list, tuple or dict, so it passes through unchanged",
        UserWarning,
        stacklevel=4,
    )


def _drop(indices: set[Any], item: Any) -> Any:
    if isinstance(item, tuple):
        out: Any = tuple(x for i, x in enumerate(item) if i not in indices)
    elif isinstance(item, list):
        out = [x for i, x in enumerate(item) if i not in indices]
    elif isinstance(item, dict):
        out = {k: v for k, v in item.items() if k not in indices}
    else:
        _not_a_container("drop")
        return item
    _warn_missing("drop", item, indices)
    return out


@functional_datapipe("drop")
class Dropper(IterDataPipe):
    """Removes the given positions (lists, tuples) or keys (dicts) from each element (functional name: ``drop``).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([(0, 1, 2), (3, 4, 5)]).drop([0, 2]))
        [(1,), (4,)]
    """

    _repr_fields = ("indices",)

    def __init__(self, datapipe: Any, indices: Hashable | list[Hashable]) -> None:
        check_source("drop", datapipe)
        self.source_datapipe = datapipe
        self.indices = _as_index_set(indices)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(functools.partial(_drop, self.indices), srcs[0])

    def __len__(self) -> int:
        return self._source_len()


def _slice(index: Any, stop: Any, step: Any, item: Any) -> Any:
    many = isinstance(index, list)
    if isinstance(item, (tuple, list)):
        if many:
            kept = [x for i, x in enumerate(item) if i in index]
            out: Any = tuple(kept) if isinstance(item, tuple) else kept
        else:
            out = item[index:stop:step]
    elif isinstance(item, dict):
        if many:
            out = {k: v for k, v in item.items() if k in index}
        elif index in item:
            out = {index: item[index]}
        else:
            warnings.warn(
                f"slice: dicts are sliced by key only and {index!r} is not a key, so the element passes "
                "through unchanged",
                UserWarning,
                stacklevel=3,
            )
            out = item
    else:
        _not_a_container("slice")
        return item
    if many:
        _warn_missing("slice", item, index)
    return out


@functional_datapipe("slice")
class Slicer(IterDataPipe):
    """Keeps a slice, or a list of positions/keys, of each element (functional name: ``slice``).

    Args:
        datapipe: the source pipe.
        index: the slice start, or a list of positions (lists, tuples) or keys (dicts) to keep.
        stop: the slice stop (with an int ``index``).
        step: the slice step (with an int ``index``).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([(0, 1, 2, 3)]).slice(1, 3))
        [(1, 2)]
    """

    _repr_fields = ("index", "stop", "step")

    def __init__(self, datapipe: Any, index: Any, stop: int | None = None, step: int | None = None) -> None:
        check_source("slice", datapipe)
        if isinstance(index, list) and (stop is not None or step is not None):
            raise ValueError(
                f"slice: a list of indices cannot be combined with stop/step, got index={index!r}, "
                f"stop={stop!r}, step={step!r}"
            )
        if step == 0:
            raise ValueError("slice: step must not be 0")
        self.source_datapipe = datapipe
        self.index = index
        self.stop = stop
        self.step = step

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(functools.partial(_slice, self.index, self.stop, self.step), srcs[0])

    def __len__(self) -> int:
        return self._source_len()


def _duplicate_key() -> None:
    warnings.warn(
        "flatten: the same key came twice into a dict element; the second key/value pair was dropped",
        UserWarning,
        stacklevel=4,
    )


def _flatten(indices: set[Any], item: Any) -> Any:
    every = not indices
    if isinstance(item, dict):
        out: dict[Any, Any] = {}
        for k, v in item.items():
            if (every or k in indices) and isinstance(v, dict):
                for k_sub, v_sub in v.items():
                    if k_sub not in item:
                        out[k_sub] = v_sub
                    else:
                        _duplicate_key()
            elif k not in out:
                out[k] = v
            else:
                _duplicate_key()
        result: Any = out
    else:
        flat: list[Any] = []
        for i, v in enumerate(item):
            if (every or i in indices) and isinstance(v, (list, tuple)):
                flat.extend(v)
            else:
                flat.append(v)
        result = tuple(flat) if isinstance(item, tuple) else flat
    if indices:
        _warn_missing("flatten", item, indices)
    return result


@functional_datapipe("flatten")
class Flattener(IterDataPipe):
    """Flattens nested lists/tuples (or nested dicts) inside each element, one level (functional name: ``flatten``).

    Args:
        datapipe: the source pipe.
        indices: positions or keys to flatten; ``None`` flattens every nested one.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([(0, (1, 2), [3])]).flatten())
        [(0, 1, 2, 3)]
    """

    _repr_fields = ("indices",)

    def __init__(self, datapipe: Any, indices: Hashable | list[Hashable] | None = None) -> None:
        check_source("flatten", datapipe)
        self.source_datapipe = datapipe
        self.indices: set[Any] = _as_index_set(indices) if indices else set()

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(functools.partial(_flatten, self.indices), srcs[0])

    def __len__(self) -> int:
        return self._source_len()


def _columnar(names: list[str], batch: Any) -> Any:
    columns: defaultdict[Any, list[Any]] = defaultdict(list)
    for row in batch:
        if isinstance(row, dict):
            for key in names or row.keys():
                columns[key].append(row[key])
        else:
            if len(row) > len(names):
                raise ValueError(
                    f"rows2columnar: a list row has {len(row)} values but column_names has {len(names)}: {names!r}"
                )
            for name, value in zip(names, row):
                columns[name].append(value)
    return columns


@functional_datapipe("rows2columnar")
class Rows2Columnar(IterDataPipe):
    """Turns each batch of rows (dicts or lists) into one dict of columns (functional name: ``rows2columnar``).

    Args:
        source_datapipe: yields batches (lists) of rows.
        column_names: the column names; needed for list rows, optional for dict rows (then only
            these columns are kept).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> dict(next(iter(IterableWrapper([[{"a": 1}, {"a": 2}]]).rows2columnar())))
        {'a': [1, 2]}
    """

    _repr_fields = ("column_names",)

    def __init__(self, source_datapipe: Any, column_names: list[str] | None = None) -> None:
        check_source("rows2columnar", source_datapipe)
        self.source_datapipe = source_datapipe
        self.column_names: list[str] = [] if column_names is None else list(column_names)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(functools.partial(_columnar, self.column_names), srcs[0])

    def __len__(self) -> int:
        return self._source_len()
