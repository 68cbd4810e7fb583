"""Local files: FileLister, FileOpener, StreamReader, Saver, ShardExpander."""

from __future__ import annotations

import errno
import fnmatch
import functools
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from operator import itemgetter
from typing import Any

from loom.data._columns import check_fn, check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._common import Pending, load_list
from loom.data.iter._streams import Runs, StreamWrapper, check_pair, reopen, require_spec, run_chain

__all__ = ["FileLister", "FileOpener", "Saver", "ShardExpander", "StreamReader"]

_second = itemgetter(1)


def _as_roots(call: str, root: Any) -> Any:
    from loom.data.iter._sources import IterableWrapper

    if isinstance(root, str):
        return IterableWrapper([root])
    if isinstance(root, IterDataPipe):
        return root
    if isinstance(root, Sequence) and all(isinstance(r, str) for r in root):
        return IterableWrapper(list(root))
    raise TypeError(f"{call}: root must be a str, a sequence of str or an IterDataPipe, got {root!r}")


def _masks(masks: str | list[str]) -> list[str]:
    return [masks] if isinstance(masks, str) else list(masks)


def _matches(name: str, masks: list[str]) -> bool:
    masks = [m for m in masks if m]
    return not masks or any(fnmatch.fnmatch(name, m) for m in masks)


def list_root(root: str, masks: list[str], recursive: bool, abspath: bool, sort: bool) -> list[str]:
    """The files under ``root`` (or ``root`` itself if it is a file) whose names match a mask."""
    if os.path.isfile(root):
        path = os.path.abspath(root) if abspath else root
        return [path] if _matches(os.path.basename(root), masks) else []
    if not os.path.isdir(root):
        raise FileNotFoundError(f"list_files: root {root!r} is neither a file nor a directory")

    def fail(err: OSError) -> None:
        raise err

    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
        if sort:
            dirnames.sort()
            filenames.sort()
        for name in filenames:
            if _matches(name, masks):
                path = os.path.join(dirpath, name)
                out.append(os.path.abspath(path) if abspath else path)
        if not recursive:
            break
    return out


@functional_datapipe("list_files")
class FileLister(IterDataPipe):
    """Lists the files under one or more roots (functional name: ``list_files``).

    Resumable: the state is the root being listed and how many of its files were yielded; a restore
    lists that root again (sorted) and skips them, so the directory should not change in between.

    Args:
        root: a directory or file path, a list of them, or an IterDataPipe yielding them.
        masks: a glob pattern (``"*.txt"``) or a list of them matched against file names; ``""`` matches all.
        recursive: descend into subdirectories.
        abspath: yield absolute paths.
        non_deterministic: keep the file system's order instead of sorting (not resumable).
        length: the value of ``len()`` (``-1``: unknown).

    Example:
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> for n in ("b.txt", "a.txt", "c.csv"):
        ...     open(os.path.join(d, n), "w").close()
        >>> [os.path.basename(p) for p in FileLister(d, "*.txt")]
        ['a.txt', 'b.txt']
    """

    _repr_fields = ("masks", "recursive")

    def __init__(
        self,
        root: str | Sequence[str] | IterDataPipe = ".",
        masks: str | list[str] = "",
        *,
        recursive: bool = False,
        abspath: bool = False,
        non_deterministic: bool = False,
        length: int = -1,
    ) -> None:
        self.source_datapipe = _as_roots("list_files", root)
        self.masks = _masks(masks)
        self.recursive = recursive
        self.abspath = abspath
        self.non_deterministic = non_deterministic
        self.length = length

    def _init_state(self, ctx: Any) -> Runs:
        return Runs()

    def _list(self, root: Any) -> list[str]:
        if not isinstance(root, str):
            raise TypeError(f"list_files: roots must be str paths, got {root!r}")
        return list_root(root, self.masks, self.recursive, self.abspath, not self.non_deterministic)

    def _iterate(self, srcs: list[Iterator[Any]], state: Runs) -> Iterator[Any]:
        def start(root: Any) -> Iterator[Any]:
            return map(_second, state.begin(root, None, iter(self._list(root))))

        def resume(root: Any, pos: int) -> Iterator[Any]:
            return map(_second, state.begin(root, None, islice(self._list(root), pos, None), pos))

        return run_chain(srcs[0], state, start, resume)

    def _save_state(self, state: Runs) -> dict[str, Any]:
        if self.non_deterministic:
            raise RuntimeError("state_dict: FileLister with non_deterministic=True is not resumable")
        return {"root": state.key, "index": state.position()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Runs:
        state = Runs()
        root, index = data.get("root"), data.get("index")
        if not isinstance(index, int) or index < 0 or not (root is None or isinstance(root, str)):
            raise RuntimeError(f"load_state_dict: FileLister expects 'root' and 'index', got {data!r}")
        if root is not None:
            state.resume = (root, index)
        return state

    def __len__(self) -> int:
        if self.length == -1:
            raise TypeError("FileLister instance doesn't have valid length")
        return self.length


def _check_mode(call: str, mode: str, allowed: tuple[str, ...]) -> str:
    if mode not in allowed:
        raise ValueError(f"{call}: mode must be one of {allowed}, got {mode!r}")
    return mode


def open_local(path: str, mode: str, encoding: str | None, lazy: bool = False) -> StreamWrapper:
    spec = {"kind": "file", "path": os.path.abspath(path), "mode": mode, "encoding": encoding}
    if not lazy:
        return StreamWrapper(open(path, mode, encoding=encoding), name=path, spec=spec)
    # Fail now, as an eager open would, for paths that cannot be opened; the descriptor comes later.
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not os.access(path, os.R_OK):
        code = errno.ENOENT if not os.path.exists(path) else errno.EACCES
        raise OSError(code, os.strerror(code), path)
    return StreamWrapper.lazy(functools.partial(open, path, mode, encoding=encoding), name=path, spec=spec)


@functional_datapipe("open_files")
class FileOpener(IterDataPipe):
    """Opens each path and yields ``(path, stream)`` (functional name: ``open_files``).

    The stream is a ``StreamWrapper`` that opens the file on first use (a missing or unreadable path
    fails here, at once) and closes it when a reader consumes it, on ``close()``, or when the pair is
    dropped: 10,000 small files, even 10,000 waiting in a shuffle buffer, never hold 10,000 descriptors.
    Stateless: resuming continues with the next path of the source.

    Args:
        datapipe: yields file paths.
        mode: ``"r"``/``"t"``/``"rt"`` (text) or ``"b"``/``"rb"`` (binary).
        encoding: text encoding (text mode only).
        length: the value of ``len()`` (``-1``: the source's).

    Example:
        >>> import os, tempfile
        >>> from loom.data.iter import IterableWrapper
        >>> p = os.path.join(tempfile.mkdtemp(), "x.txt")
        >>> with open(p, "w") as f:
        ...     _ = f.write("hi")
        >>> [(os.path.basename(k), s.read()) for k, s in IterableWrapper([p]).open_files()]
        [('x.txt', 'hi')]
    """

    _repr_fields = ("mode", "encoding")

    def __init__(self, datapipe: Any, mode: str = "r", encoding: str | None = None, length: int = -1) -> None:
        check_source("open_files", datapipe)
        mode = _check_mode("open_files", mode, ("b", "t", "rb", "rt", "r"))
        mode = {"b": "rb", "t": "rt", "r": "rt"}.get(mode, mode)
        if "b" in mode and encoding is not None:
            raise ValueError(f"open_files: binary mode doesn't take an encoding, got encoding={encoding!r}")
        self.source_datapipe = datapipe
        self.mode = mode
        self.encoding = encoding
        self.length = length

    def _open(self, path: Any) -> tuple[str, StreamWrapper]:
        if not isinstance(path, str):
            raise TypeError(f"open_files: expected str paths, got {path!r}")
        return path, open_local(path, self.mode, self.encoding, lazy=True)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(self._open, srcs[0])

    def __len__(self) -> int:
        return self._source_len() if self.length == -1 else self.length


@functional_datapipe("read_from_stream")
class StreamReader(IterDataPipe):
    """Reads each ``(path, stream)`` in chunks and yields ``(path, chunk)`` (functional name: ``read_from_stream``).

    Resumable mid-stream for streams that can be reopened (NOTE [streams are not state; reopen specs
    are] in ``_streams.py``): the restore reopens the stream and skips the bytes already read.

    Args:
        datapipe: yields ``(path, stream)``.
        chunk: bytes (or characters) per chunk; ``None`` reads each stream whole.

    Example:
        >>> import io
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([("m", io.BytesIO(b"abcde"))]).read_from_stream(2))
        [('m', b'ab'), ('m', b'cd'), ('m', b'e')]
    """

    _repr_fields = ("chunk",)

    def __init__(self, datapipe: Any, chunk: int | None = None) -> None:
        check_source("read_from_stream", datapipe)
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
            raise ValueError(f"read_from_stream: chunk must be None or an int >= 1, got {chunk!r}")
        self.source_datapipe = datapipe
        self.chunk = chunk

    def _init_state(self, ctx: Any) -> Runs:
        return Runs()

    def _chunks(self, path: str, stream: Any, state: Runs) -> Iterator[Any]:
        size = -1 if self.chunk is None else self.chunk
        while True:
            data = stream.read(size)
            if not data:
                return
            state.skipped += len(data)  # reused as "units read from this stream"
            yield path, data
            if size == -1:
                return

    def _iterate(self, srcs: list[Iterator[Any]], state: Runs) -> Iterator[Any]:
        def start(item: Any) -> Iterator[Any]:
            path, stream = check_pair("read_from_stream", item)
            state.skipped = 0
            return map(_second, state.begin((path, stream), stream, self._chunks(path, stream, state)))

        def resume(key: Any, pos: int) -> Iterator[Any]:
            path, spec = key
            stream = StreamWrapper(reopen(spec, "StreamReader"), name=path, spec=spec)
            _skip(stream, pos)
            state.skipped = pos
            return map(_second, state.begin((path, stream), stream, self._chunks(path, stream, state)))

        return run_chain(srcs[0], state, start, resume)

    def _save_state(self, state: Runs) -> dict[str, Any]:
        if state.key is None:
            return {"path": None, "spec": None, "offset": 0}
        path, stream = state.key
        return {"path": path, "spec": require_spec("StreamReader", path, stream), "offset": state.skipped}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Runs:
        state = Runs()
        if data.get("path") is not None:
            state.resume = ((data["path"], data["spec"]), int(data["offset"]))
        return state


def _skip(stream: Any, n: int) -> None:
    if n <= 0:
        return
    if "b" in str(getattr(stream, "mode", "b")) and getattr(stream, "seekable", lambda: False)():
        stream.seek(n)
        return
    while n > 0:
        got = stream.read(min(n, 1 << 20))
        if not got:
            return
        n -= len(got)


def write_atomically(path: str, data: Any, mode: str) -> None:
    """Write to a temporary file next to ``path``, then rename it over ``path``: no half-written files."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".loom-", suffix=".part")
    try:
        with os.fdopen(fd, mode.replace("a", "w")) as f:
            if isinstance(data, (bytes, bytearray, str)):
                f.write(data)
            else:  # a stream
                for piece in iter(lambda: data.read(1 << 20), b"" if "b" in mode else ""):
                    f.write(piece)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@functional_datapipe("save_to_disk")
class Saver(IterDataPipe):
    """Writes each ``(metadata, data)`` to a file and yields its path (functional name: ``save_to_disk``).

    Each file is written to a temporary name and renamed into place, so an interrupted run leaves no
    half-written file. Stateless.

    Args:
        source_datapipe: yields ``(metadata, data)``; ``data`` is str, bytes or a readable stream.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        filepath_fn: maps ``metadata`` to the file path (default: ``metadata`` is the path).

    Example:
        >>> import os, tempfile
        >>> from loom.data.iter import IterableWrapper
        >>> p = os.path.join(tempfile.mkdtemp(), "out.txt")
        >>> list(IterableWrapper([(p, "hello")]).save_to_disk()) == [p]
        True
        >>> with open(p) as f:
        ...     f.read()
        'hello'
    """

    _repr_fields = ("mode", "filepath_fn")

    def __init__(
        self, source_datapipe: Any, mode: str = "w", filepath_fn: Callable[[Any], str] | None = None
    ) -> None:
        check_source("save_to_disk", source_datapipe)
        _check_mode("save_to_disk", mode, ("w", "wb", "wt"))
        if filepath_fn is not None:
            check_fn("save_to_disk", "filepath_fn", filepath_fn)
        self.source_datapipe = source_datapipe
        self.mode = mode
        self.filepath_fn = filepath_fn

    def _save(self, item: Any) -> str:
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"save_to_disk: expected (metadata, data) pairs, got {item!r:.80}")
        meta, data = item
        path = self.filepath_fn(meta) if self.filepath_fn is not None else meta
        if not isinstance(path, str):
            raise TypeError(f"save_to_disk: the file path must be a str, got {path!r}")
        write_atomically(path, data, self.mode)
        return path

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(self._save, srcs[0])

    def __len__(self) -> int:
        return self._source_len()


_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_braces(call: str, pattern: str) -> list[str]:
    """``"a-{00..02}.tar"`` -> ``["a-00.tar", "a-01.tar", "a-02.tar"]``; several ranges multiply."""
    match = _BRACES.search(pattern)
    if match is None:
        if "{" in pattern or "}" in pattern:
            raise ValueError(f"{call}: malformed brace range in {pattern!r}; expected {{first..last}}")
        return [pattern]
    first, last = match.group(1), match.group(2)
    lo, hi = int(first), int(last)
    if hi < lo:
        raise ValueError(f"{call}: empty range {{{first}..{last}}} in {pattern!r}")
    if len(first) > len(last):
        raise ValueError(
            f"{call}: in {{{first}..{last}}} of {pattern!r} the low bound is longer than the high bound"
        )
    padded = len(first) == len(last) and first.startswith("0")
    if not padded and first.startswith("0") and first != "0":
        raise ValueError(
            f"{call}: in {{{first}..{last}}} of {pattern!r} a zero-padded low bound needs a high bound of equal width"
        )
    width = len(first) if padded else 0
    head, tail = pattern[: match.start()], pattern[match.end() :]
    out: list[str] = []
    for i in range(lo, hi + 1):
        out.extend(expand_braces(call, f"{head}{i:0{width}d}{tail}"))
    return out


@functional_datapipe("shard_expand")
class ShardExpander(IterDataPipe):
    """Expands brace ranges in shard names: ``"data-{000..099}.tar"`` (functional name: ``shard_expand``).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(["s-{0..2}.tar"]).shard_expand())
        ['s-0.tar', 's-1.tar', 's-2.tar']
    """

    def __init__(self, source_datapipe: Any) -> None:
        check_source("shard_expand", source_datapipe)
        self.source_datapipe = source_datapipe

    def _init_state(self, ctx: Any) -> Pending:
        return Pending([])

    def _iterate(self, srcs: list[Iterator[Any]], state: Pending) -> Iterator[Any]:
        def lists() -> Iterator[Iterator[Any]]:
            yield state.it
            for pattern in srcs[0]:
                if not isinstance(pattern, str):
                    raise TypeError(f"shard_expand: expected str patterns, got {pattern!r}")
                yield state.reset(expand_braces("shard_expand", pattern))

        from itertools import chain

        return chain.from_iterable(lists())

    def _save_state(self, state: Pending) -> dict[str, Any]:
        return {"pending": state.remaining()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Pending:
        return Pending(load_list("ShardExpander", data, "pending"))
