"""Pipes that count or group lines: Header, LengthSetter, Enumerator, IndexAdder, ParagraphAggregator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from loom.data._columns import check_fn, check_int, check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe

__all__ = ["Enumerator", "Header", "IndexAdder", "LengthSetter", "ParagraphAggregator"]

_second = itemgetter(1)


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
        return {"remaining": None if state.budget is None else state.budget.__length_hint__()}  # type: ignore[attr-defined]

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _HeaderState:
        remaining = data.get("remaining")
        if remaining is not None and (not isinstance(remaining, int) or remaining < 0):
            raise RuntimeError(
                f"load_state_dict: Header expects a non-negative 'remaining', got {remaining!r}"
            )
        if (remaining is None) != (self.limit is None) or (remaining or 0) > (self.limit or 0):
            raise RuntimeError(f"load_state_dict: Header state {data!r} does not match limit={self.limit}")
        return _HeaderState(remaining)

    def __len__(self) -> int:
        # torchdata reports the limit with a warning when the source has no length; an unknown
        # length is a TypeError here, as everywhere else (list(pipe) then simply skips the hint).
        n = self._source_len()
        return n if self.limit is None else min(n, self.limit)


@functional_datapipe("set_length")
class LengthSetter(IterDataPipe):
    """Passes elements through and reports ``length`` as ``len()`` (functional name: ``set_length``).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> len(IterableWrapper(iter(range(5))).set_length(5))
        5
    """

    _repr_fields = ("length",)

    def __init__(self, source_datapipe: Any, length: int) -> None:
        check_source("set_length", source_datapipe)
        check_int("set_length", "length", length, 0)
        self.source_datapipe = source_datapipe
        self.length = length

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return srcs[0]

    def __len__(self) -> int:
        return self.length


class _Counter:
    __slots__ = ("counted", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.counted: Any = None

    def position(self) -> int:
        return self.start if self.counted is None else int(self.counted.__reduce__()[1][1])


@functional_datapipe("enumerate")
class Enumerator(IterDataPipe):
    """Pairs each element with its index: ``(i, element)`` (functional name: ``enumerate``).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper("ab").enumerate(starting_index=1))
        [(1, 'a'), (2, 'b')]
    """

    _repr_fields = ("starting_index",)

    def __init__(self, source_datapipe: Any, starting_index: int = 0) -> None:
        check_source("enumerate", source_datapipe)
        check_int("enumerate", "starting_index", starting_index, -(2**63))
        self.source_datapipe = source_datapipe
        self.starting_index = starting_index

    def _init_state(self, ctx: Any) -> _Counter:
        return _Counter(self.starting_index)

    def _iterate(self, srcs: list[Iterator[Any]], state: _Counter) -> Iterator[Any]:
        state.counted = enumerate(srcs[0], state.start)
        return state.counted  # type: ignore[no-any-return]

    def _save_state(self, state: _Counter) -> dict[str, Any]:
        return {"next_index": state.position()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _Counter:
        index = data.get("next_index")
        if isinstance(index, bool) or not isinstance(index, int):
            raise RuntimeError(
                f"load_state_dict: {type(self).__name__} expects an int 'next_index', got {index!r}"
            )
        return _Counter(index)

    def __len__(self) -> int:
        return self._source_len()


def _add_index(name: str, pair: tuple[int, Any]) -> Any:
    i, row = pair
    if not isinstance(row, dict):
        raise NotImplementedError(f"add_index: only dict elements can get an index, got {type(row).__name__}")
    out = dict(row)
    out[name] = i
    return out


@functional_datapipe("add_index")
class IndexAdder(Enumerator):
    """Adds the element's index under ``index_name`` to each dict element (functional name: ``add_index``).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([{"a": 1}, {"a": 2}]).add_index("i"))
        [{'a': 1, 'i': 0}, {'a': 2, 'i': 1}]
    """

    _repr_fields = ("index_name",)

    def __init__(self, source_datapipe: Any, index_name: str = "index") -> None:
        super().__init__(source_datapipe, 0)
        self.index_name = index_name

    def _iterate(self, srcs: list[Iterator[Any]], state: _Counter) -> Iterator[Any]:
        import functools

        return map(functools.partial(_add_index, self.index_name), super()._iterate(srcs, state))


def _join_lines(lines: list[str]) -> str:
    return "\n".join(lines)


class _ParagraphState:
    __slots__ = ("lines", "name")

    def __init__(self, name: Any, lines: list[Any]) -> None:
        self.name = name
        self.lines = lines


@functional_datapipe("lines_to_paragraphs")
class ParagraphAggregator(IterDataPipe):
    """Joins consecutive non-empty lines of a file into paragraphs (functional name: ``lines_to_paragraphs``).

    Args:
        source_datapipe: yields ``(file_name, line)``; an empty line ends a paragraph, and so does a
            new file name.
        joiner: joins a paragraph's lines (default: with newlines).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> rows = [("f", "a"), ("f", "b"), ("f", ""), ("f", "c")]
        >>> list(IterableWrapper(rows).lines_to_paragraphs())
        [('f', 'a\\nb'), ('f', 'c')]
    """

    _repr_fields = ("joiner",)

    def __init__(self, source_datapipe: Any, joiner: Callable[[list[str]], Any] = _join_lines) -> None:
        check_source("lines_to_paragraphs", source_datapipe)
        check_fn("lines_to_paragraphs", "joiner", joiner)
        self.source_datapipe = source_datapipe
        self.joiner = joiner

    def _init_state(self, ctx: Any) -> _ParagraphState:
        return _ParagraphState(None, [])

    def _iterate(self, srcs: list[Iterator[Any]], state: _ParagraphState) -> Iterator[Any]:
        return self._run(srcs[0], state)

    def _run(self, src: Iterator[Any], state: _ParagraphState) -> Iterator[Any]:
        join = self.joiner
        for name, line in src:
            if state.name is None:
                state.name = name
            if line and state.name == name:
                state.lines.append(line)
                continue
            done_name, done = state.name, state.lines
            state.lines = [line] if line else []
            state.name = name
            if done:
                yield done_name, join(done)
        if state.lines:
            done_name, done = state.name, state.lines
            state.lines = []
            yield done_name, join(done)

    def _save_state(self, state: _ParagraphState) -> dict[str, Any]:
        return {"file": state.name, "lines": list(state.lines)}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _ParagraphState:
        from loom.data.iter._common import load_list

        return _ParagraphState(data.get("file"), load_list("ParagraphAggregator", data, "lines"))
