"""Text parsers over ``(path, stream)`` pairs: LineReader, CSVParser, CSVDictParser, JsonParser.

Line and CSV readers resume inside a file: their state is the file's reopen spec and the number of
lines (rows) already yielded from it; a restore reopens the file and skips them. See NOTE [streams are
not state; reopen specs are] in ``_streams.py``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from itertools import chain, islice, repeat
from operator import itemgetter
from typing import Any

from loom.data._columns import check_int, check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._streams import (
    Runs,
    StreamWrapper,
    check_pair,
    data_errors,
    reopen,
    require_spec,
    run_chain,
    unwrap,
)

__all__ = ["CSVDictParser", "CSVParser", "JsonParser", "LineReader"]

_second = itemgetter(1)


def check_on_error(call: str, on_error: str) -> str:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"{call}: on_error must be 'raise' or 'skip', got {on_error!r}")
    return on_error


def _named(call: str, path: str, state: Runs, it: Iterator[Any]) -> Iterator[Any]:
    """Pass ``it`` through; a data error while reading becomes a ValueError naming the file and line."""
    try:
        yield from it
    except data_errors() as err:
        raise ValueError(f"{call}: error reading {path!r} after line {state.position()}: {err}") from err


class _Reader(IterDataPipe):
    """Shared by the line and CSV readers: runs over streams, state = (path, spec, position)."""

    _call = ""

    def _init_state(self, ctx: Any) -> Runs:
        return Runs()

    def _rows(self, path: str, stream: Any, pos: int) -> Iterator[Any]:
        raise NotImplementedError

    def _reopened(self, path: str, spec: dict[str, Any]) -> StreamWrapper:
        return StreamWrapper(reopen(spec, type(self).__name__), name=path, spec=spec)

    def _iterate(self, srcs: list[Iterator[Any]], state: Runs) -> Iterator[Any]:
        def start(item: Any) -> Iterator[Any]:
            path, stream = check_pair(self._call, item)
            return self._run(state, path, stream, 0)

        def resume(key: Any, pos: int) -> Iterator[Any]:
            path, spec = key
            return self._run(state, path, self._reopened(path, spec), pos)

        return run_chain(srcs[0], state, start, resume)

    def _run(self, state: Runs, path: str, stream: Any, pos: int) -> Iterator[Any]:
        rows = map(_second, state.begin((path, stream), stream, self._rows(path, stream, pos), pos))
        return _named(self._call, path, state, rows)

    def _save_state(self, state: Runs) -> dict[str, Any]:
        if state.key is None:
            return {"path": None, "spec": None, "position": 0}
        path, stream = state.key
        return {
            "path": path,
            "spec": require_spec(type(self).__name__, path, stream),
            "position": state.position(),
        }

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Runs:
        state = Runs()
        path, spec, pos = data.get("path"), data.get("spec"), data.get("position")
        if not isinstance(pos, int) or pos < 0:
            raise RuntimeError(
                f"load_state_dict: {type(self).__name__} expects a 'position' >= 0, got {pos!r}"
            )
        if path is not None:
            if not isinstance(spec, dict):
                raise RuntimeError(
                    f"load_state_dict: {type(self).__name__} expects a reopen 'spec', got {spec!r}"
                )
            state.resume = ((path, spec), pos)
        return state


@functional_datapipe("readlines")
class LineReader(_Reader):
    """Yields ``(path, line)`` for each line of each ``(path, stream)`` (functional name: ``readlines``).

    The per-line path runs in C (file iteration, strip, decode, pairing), so reading costs close to a
    plain ``for line in file`` loop. Resumable mid-file when the stream can be reopened (files opened by
    FileOpener/FSSpecFileOpener, archive members): a restore reopens the file and skips the lines
    already yielded.

    Args:
        source_datapipe: yields ``(path, stream)``.
        skip_lines: lines to skip at the start of each file.
        strip_newline: strip ``"\\r\\n"`` from both ends of each line (as torchdata).
        decode: decode ``bytes`` lines with ``encoding``/``errors``.
        encoding: the text encoding for ``decode``.
        errors: the decoding error scheme.
        return_path: yield ``(path, line)``; else just lines.

    Raises:
        ValueError: while iterating, a stream that fails to decompress or decode (naming file and line).

    Example:
        >>> import io
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([("f", io.StringIO("a\\nb\\r\\n"))]).readlines())
        [('f', 'a'), ('f', 'b')]
    """

    _call = "readlines"
    _repr_fields = ("skip_lines", "decode")

    def __init__(
        self,
        source_datapipe: Any,
        *,
        skip_lines: int = 0,
        strip_newline: bool = True,
        decode: bool = False,
        encoding: str = "utf-8",
        errors: str = "ignore",
        return_path: bool = True,
    ) -> None:
        check_source("readlines", source_datapipe)
        check_int("readlines", "skip_lines", skip_lines, 0)
        self.source_datapipe = source_datapipe
        self.skip_lines = skip_lines
        self.strip_newline = strip_newline
        self.decode = decode
        self.encoding = encoding
        self.errors = errors
        self.return_path = return_path

    def _run(self, state: Runs, path: str, stream: Any, pos: int) -> Iterator[Any]:
        raw = unwrap(stream)
        lines: Iterator[Any] = iter(raw)
        start = max(pos, self.skip_lines)
        if start:
            next(islice(lines, start, start), None)
        kind = _line_type(raw)
        if kind is None:  # not an io object: look at the first line
            first = next(lines, None)
            if first is None:
                return state.begin((path, stream), stream, iter(()), start)
            kind = type(first)
            lines = chain((first,), lines)
        if not self.return_path:
            lines = map(_second, state.begin((path, stream), stream, lines, start))
        if self.strip_newline:
            lines = map(kind.strip, lines, repeat("\r\n" if kind is str else b"\r\n"))
        if self.decode and kind is bytes:
            lines = map(bytes.decode, lines, repeat(self.encoding), repeat(self.errors))
        if self.return_path:
            lines = zip(state.begin_repeat((path, stream), stream, path, start), lines)
        # NOTE: plain local files skip the error-naming wrapper, which costs about a quarter of the
        # per-line time; their read errors are OSErrors that already say what failed.
        spec = getattr(stream, "spec", None) or {}
        if spec.get("kind") == "file" and not (self.decode and self.errors == "strict"):
            return lines
        return _named(self._call, path, state, lines)


def _line_type(raw: Any) -> Any:
    """``str`` or ``bytes`` for io streams (their lines' type), ``None`` when only a line can tell."""
    if isinstance(raw, io.TextIOBase):
        return str
    if isinstance(raw, (io.BufferedIOBase, io.RawIOBase)):
        return bytes
    return None


def _decoded(lines: Iterator[Any], decode: bool, encoding: str, errors: str) -> Iterator[Any]:
    for line in lines:
        yield line.decode(encoding, errors) if decode and isinstance(line, bytes) else line


class _CSVBase(_Reader):
    _dict = False

    def __init__(
        self,
        source_datapipe: Any,
        *,
        skip_lines: int = 0,
        decode: bool = True,
        encoding: str = "utf-8",
        errors: str = "ignore",
        return_path: bool = False,
        as_tuple: bool = False,
        on_error: str = "raise",
        **fmtparams: Any,
    ) -> None:
        check_source(self._call, source_datapipe)
        check_int(self._call, "skip_lines", skip_lines, 0)
        check_on_error(self._call, on_error)
        try:
            csv.reader([], **fmtparams)
        except TypeError as err:
            raise TypeError(f"{self._call}: bad CSV format parameters {fmtparams!r}: {err}") from err
        self.source_datapipe = source_datapipe
        self.skip_lines = skip_lines
        self.decode = decode
        self.encoding = encoding
        self.errors = errors
        self.return_path = return_path
        self.as_tuple = as_tuple
        self.on_error = on_error
        self.fmtparams = fmtparams

    def _rows(self, path: str, stream: Any, pos: int) -> Iterator[Any]:
        lines = islice(iter(unwrap(stream)), self.skip_lines, None)
        text = _decoded(lines, self.decode, self.encoding, self.errors)
        reader: Any = (
            csv.DictReader(text, **self.fmtparams) if self._dict else csv.reader(text, **self.fmtparams)
        )
        done = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                line = reader.line_num + self.skip_lines
                if self.on_error == "raise":
                    raise ValueError(f"{self._call}: bad CSV row in {path!r} at line {line}: {err}") from err
                row = None
            done += 1
            if done <= pos:
                continue
            if row is None:
                yield _SKIPPED
                continue
            if self.as_tuple and isinstance(row, list):
                row = tuple(row)
            yield (path, row) if self.return_path else row

    def _run(self, state: Runs, path: str, stream: Any, pos: int) -> Iterator[Any]:
        rows = map(_second, state.begin((path, stream), stream, self._rows(path, stream, pos), pos))
        return filter(_not_skipped(state), _named(self._call, path, state, rows))


class _Skipped:
    def __repr__(self) -> str:
        return "<skipped>"


_SKIPPED = _Skipped()


def _not_skipped(state: Runs) -> Any:
    def keep(row: Any) -> bool:
        if row is _SKIPPED:
            state.skipped += 1
            return False
        return True

    return keep


@functional_datapipe("parse_csv")
class CSVParser(_CSVBase):
    """Yields the rows of CSV streams as lists (functional name: ``parse_csv``).

    Resumable mid-file (see LineReader). Unlike torchdata, a malformed row (``csv.Error``, e.g. with
    ``strict=True``) raises a ValueError naming the file and line, or with ``on_error="skip"`` is skipped.

    Args:
        source_datapipe: yields ``(path, stream)``.
        skip_lines: lines to skip at the start of each file.
        decode: decode ``bytes`` lines with ``encoding``/``errors``.
        encoding: the text encoding.
        errors: the decoding error scheme.
        return_path: yield ``(path, row)``.
        as_tuple: rows as tuples instead of lists.
        on_error: ``"raise"`` or ``"skip"`` malformed rows.
        **fmtparams: passed to ``csv.reader`` (``delimiter``, ``quotechar``, ``strict``...).

    Example:
        >>> import io
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([("f", io.StringIO("a,b\\n1,2\\n"))]).parse_csv())
        [['a', 'b'], ['1', '2']]
    """

    _call = "parse_csv"


@functional_datapipe("parse_csv_as_dict")
class CSVDictParser(_CSVBase):
    """Yields the rows of CSV streams as dicts keyed by the header row (functional name: ``parse_csv_as_dict``).

    Takes the arguments of CSVParser; ``**fmtparams`` go to ``csv.DictReader``.

    Example:
        >>> import io
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([("f", io.StringIO("a,b\\n1,2\\n"))]).parse_csv_as_dict())
        [{'a': '1', 'b': '2'}]
    """

    _call = "parse_csv_as_dict"
    _dict = True


@functional_datapipe("parse_json_files")
class JsonParser(IterDataPipe):
    """Reads each ``(path, stream)`` whole and yields ``(path, json.loads(data))`` (functional name: ``parse_json_files``).

    Stateless: a restore continues with the next file. Invalid JSON raises a ValueError naming the file,
    line and column, or with ``on_error="skip"`` the file is skipped and counted in ``num_skipped``.

    Args:
        source_datapipe: yields ``(path, stream)``.
        on_error: ``"raise"`` or ``"skip"``.
        **kwargs: passed to ``json.loads``.

    Example:
        >>> import io
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([("f", io.StringIO('{"a": [1, 2]}'))]).parse_json_files())
        [('f', {'a': [1, 2]})]
    """

    def __init__(self, source_datapipe: Any, on_error: str = "raise", **kwargs: Any) -> None:
        check_source("parse_json_files", source_datapipe)
        self.source_datapipe = source_datapipe
        self.on_error = check_on_error("parse_json_files", on_error)
        self.kwargs = kwargs
        self.num_skipped = 0

    def _parse(self, item: Any) -> Any:
        path, stream = check_pair("parse_json_files", item)
        try:
            data = stream.read()
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        try:
            return path, json.loads(data, **self.kwargs)
        except ValueError as err:
            if self.on_error == "skip":
                self.num_skipped += 1
                return _SKIPPED
            raise ValueError(f"parse_json_files: invalid JSON in {path!r}: {err}") from err

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        out = map(self._parse, srcs[0])
        return filter(_is_not_skipped, out) if self.on_error == "skip" else out

    def __len__(self) -> int:
        return self._source_len()


def _is_not_skipped(item: Any) -> bool:
    return item is not _SKIPPED
