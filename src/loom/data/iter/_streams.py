"""StreamWrapper (file handles that close deterministically) and the reopen specs that make readers resumable.

# NOTE [streams are not state; reopen specs are]
# Pipes that read files pass ``(path, StreamWrapper)`` pairs downstream. A live stream cannot go into
# a state dict, so each StreamWrapper made by a Loom opener carries ``spec``: plain data that says how
# to open the same stream again, e.g. ``{"kind": "file", "path": ..., "mode": "rb", "encoding": None}``
# or ``{"kind": "tar", "archive": <the archive's spec>, "member": "a/b.txt", "mode": "r:*"}``.
# A reader that is in the middle of a stream when ``state_dict()`` is called (LineReader at line k,
# TarArchiveLoader at member i) saves the spec and its position; ``load_state_dict()`` reopens the
# stream with ``reopen(spec)`` and skips to the position. Its source has already moved past that
# stream, so nothing is read twice. A stream without a spec (an HTTP response, a user's BytesIO)
# makes ``state_dict()`` fail with an error naming the reader and the path, never a silent misalignment.
# fsspec specs hold the storage options the opener was given (plain values only): keep credentials
# in the environment or fsspec's config rather than in pipe arguments if states are shared.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from itertools import chain, repeat
from typing import IO, Any

__all__ = ["StreamWrapper", "register_reopener", "reopen"]

_HUGE = 1 << 62
_REOPENERS: dict[str, Callable[[dict[str, Any]], IO[Any]]] = {}


class StreamWrapper:
    """A file-like object that closes its stream when consumed, on ``close()``, or when garbage collected.

    Attribute access goes to the wrapped stream (``read``, ``readline``, ``seek``...). Iterating it yields
    the stream's lines and closes the stream after the last one. torchdata's pipes produce
    ``StreamWrapper`` objects in the same places; Loom's also carry ``spec`` (see
    NOTE [streams are not state; reopen specs are]).

    Args:
        file_obj: the stream to wrap.
        name: a name for messages, usually the path.
        spec: plain data describing how to open the same stream again, or ``None``.

    Example:
        >>> import io
        >>> s = StreamWrapper(io.BytesIO(b"a\\nb\\n"), name="mem")
        >>> list(s), s.closed
        ([b'a\\n', b'b\\n'], True)
    """

    __slots__ = ("__weakref__", "_file", "_opener", "name", "spec")

    def __init__(self, file_obj: Any, name: str | None = None, spec: dict[str, Any] | None = None) -> None:
        self._file = file_obj
        self._opener: Callable[[], Any] | None = None
        self.name = name if name is not None else getattr(file_obj, "name", repr(file_obj))
        self.spec = spec

    @classmethod
    def lazy(cls, opener: Callable[[], Any], name: str, spec: dict[str, Any] | None = None) -> StreamWrapper:
        """A stream that calls ``opener()`` on first use, so that streams waiting in buffers (a shuffle
        buffer of 10,000 files) hold no file descriptors."""
        self = cls(None, name, spec)
        self._opener = opener
        return self

    @property
    def file_obj(self) -> Any:
        """The wrapped stream (opened now if this StreamWrapper is lazy)."""
        f = self._file
        if f is None:
            opener, self._opener = self._opener, None
            if opener is None:
                raise ValueError(f"I/O operation on closed stream {self.name!r}")
            f = self._file = opener()
        return f

    def __getattr__(self, attr: str) -> Any:
        if attr in ("_file", "_opener", "name", "spec"):  # not set yet (while unpickling)
            raise AttributeError(attr)
        return getattr(self.file_obj, attr)

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self.file_obj
        finally:
            self.close()

    def __enter__(self) -> StreamWrapper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, *args: Any) -> Any:
        try:
            return self.file_obj.read(*args)
        except data_errors() as err:
            if (isinstance(err, OSError) and getattr(err, "filename", None)) or str(self.name) in str(err):
                raise  # already names the stream
            raise ValueError(f"error reading {self.name!r}: corrupt or truncated data: {err}") from err

    def close(self) -> None:
        self._opener = None  # a lazy stream closed before its first use is never opened
        close = getattr(getattr(self, "_file", None), "close", None)
        if close is not None:
            close()

    @property
    def closed(self) -> bool:
        if self._file is None:
            return self._opener is None
        return bool(getattr(self._file, "closed", False))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return f"StreamWrapper<{self.name!r}>"

    def __getstate__(self) -> Any:
        raise TypeError(f"cannot pickle StreamWrapper<{self.name!r}>: open streams cannot be pickled")


def register_reopener(kind: str, fn: Callable[[dict[str, Any]], IO[Any]]) -> None:
    """Teach ``reopen`` a new spec kind; ``fn(spec)`` returns an open stream."""
    _REOPENERS[kind] = fn


def reopen(spec: dict[str, Any], call: str) -> IO[Any]:
    """Open the stream that ``spec`` describes again, for a reader restoring its position."""
    kind = spec.get("kind") if isinstance(spec, dict) else None
    fn = _REOPENERS.get(kind)  # type: ignore[arg-type]
    if fn is None:
        raise RuntimeError(f"load_state_dict: {call} cannot reopen a stream of kind {kind!r} (spec {spec!r})")
    return fn(spec)


def stream_spec(stream: Any) -> dict[str, Any] | None:
    return getattr(stream, "spec", None) if isinstance(stream, StreamWrapper) else None


def require_spec(call: str, path: str, stream: Any) -> dict[str, Any]:
    """The stream's spec for a state dict, or a clear error saying why this position cannot be saved."""
    spec = stream_spec(stream)
    if spec is None:
        raise RuntimeError(
            f"state_dict: {call} is in the middle of {path!r}, whose stream "
            f"({type(getattr(stream, 'file_obj', stream)).__name__}) cannot be reopened, so its position "
            "cannot be saved; open files with FileOpener/FSSpecFileOpener (or archive loaders over them) "
            "for resumable reading"
        )
    return spec


def unwrap(stream: Any) -> Any:
    return stream.file_obj if isinstance(stream, StreamWrapper) else stream


def close_quietly(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def check_pair(call: str, item: Any) -> tuple[str, Any]:
    if not isinstance(item, tuple) or len(item) != 2:
        raise TypeError(f"{call}: expected (path, stream) pairs, got {type(item).__name__}: {item!r:.80}")
    return item


def _open_file(spec: dict[str, Any]) -> IO[Any]:
    f: IO[Any] = open(spec["path"], spec["mode"], encoding=spec.get("encoding"))  # noqa: SIM115
    return f


register_reopener("file", _open_file)


class Runs:
    """Side state of a pipe that turns each input (a stream, a root) into a run of outputs.

    ``key`` is plain data naming the run in progress (path and spec), ``counted`` the ``enumerate``
    over its outputs, whose next index is the position (read through ``__reduce__``, so no Python
    code runs per output). ``resume`` holds a loaded (key, position) until ``_iterate`` starts.
    """

    __slots__ = ("base", "counted", "key", "owns", "resume", "skipped", "stream")

    def __init__(self, owns: bool = True) -> None:
        self.owns = owns  # close the stream when the run ends (archives leave that to their members)
        self.key: Any = None
        self.counted: Any = None
        self.base = 0
        self.stream: Any = None
        self.resume: tuple[Any, int] | None = None
        self.skipped = 0

    def position(self) -> int:
        if self.counted is None:
            return 0
        if isinstance(self.counted, repeat):
            return self.base + _HUGE - self.counted.__length_hint__()
        return int(self.counted.__reduce__()[1][1])

    def begin_repeat(self, key: Any, stream: Any, value: Any, start: int = 0) -> Iterator[Any]:
        """Like ``begin``, but counts with ``repeat(value, n)`` to be zipped *before* the outputs.

        ``zip(repeat(path, n), lines)`` counts lines for free: the repeat's remaining length is the
        position. At the end of the run zip draws one repeat too many; a state saved then points past
        the last line, which restores to the same (empty) remainder.
        """
        self.key = key
        self.stream = stream
        self.base = start
        counter = repeat(value, _HUGE)
        self.counted = counter
        return counter

    def begin(self, key: Any, stream: Any, outputs: Iterator[Any], start: int = 0) -> Iterator[Any]:
        self.key = key
        self.stream = stream
        counted = enumerate(outputs, start)
        self.counted = counted
        return counted

    def end(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None and self.owns:
            close_quietly(stream)
        self.key = None
        self.counted = None


def run_chain(
    src: Iterator[Any],
    state: Runs,
    start: Callable[[Any], Iterator[Any]],
    resume: Callable[[Any, int], Iterator[Any]],
) -> Iterator[Any]:
    """``chain`` of ``start(item)`` over the source, first finishing a loaded run with ``resume``.

    Each run's stream is closed before the next item is pulled, at the end, and when the iteration
    is dropped (the generator's ``finally``).
    """

    def runs() -> Iterator[Iterator[Any]]:
        try:
            if state.resume is not None:
                key, pos = state.resume
                state.resume = None
                yield resume(key, pos)
            for item in src:
                state.end()
                yield start(item)
            state.end()
        finally:
            state.end()

    return chain.from_iterable(runs())


def data_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "this stream's data is corrupt or truncated" (bz2 reports them as OSError)."""
    import lzma
    import tarfile
    import zipfile
    import zlib

    return (
        EOFError,
        OSError,
        zlib.error,
        lzma.LZMAError,
        tarfile.TarError,
        zipfile.BadZipFile,
        UnicodeDecodeError,
    )
