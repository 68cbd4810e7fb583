"""The on-disk cache: OnDiskCacheHolder (``.on_disk_cache``) and EndOnDiskCacheHolder (``.end_caching``).

# NOTE [how the on-disk cache routes elements]
# ``src.on_disk_cache(filepath_fn).<work>.end_caching()`` runs <work> only for elements whose files
# are not in the cache yet. The holder checks each element: if all of ``filepath_fn(element)`` exist
# (and match ``hash_dict``/``extra_check_fn``) their paths go to a queue shared with the end pipe and
# the element never enters <work>; otherwise it goes on through <work>, whose ``(path, data)`` outputs
# the end pipe writes. The end pipe yields queued paths first, so the output keeps the source's order
# (torchdata yields written files first, then cached ones). The queue has no size limit (torchdata
# raises BufferError at 1000 pending items); it holds only paths, and it is saved in state_dict.
#
# Writes are safe: a path must resolve (symlinks included) inside the cache root, else ValueError;
# data goes to a temporary file renamed into place; a ``<path>.lock`` file lock (the ``filelock``
# package, a dependency of torch) makes concurrent workers write each file once.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from loom.data._columns import check_fn, check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._files import write_atomically
from loom.data.iter._streams import close_quietly

__all__ = ["EndOnDiskCacheHolder", "OnDiskCacheHolder"]

_END = object()


class _Shared:
    __slots__ = ("current", "queue", "ready")

    def __init__(self, queue: list[str], ready: str | None, current: list[str] | None) -> None:
        self.queue: deque[str] = deque(queue)
        self.ready = ready
        self.current = current


def _as_paths(call: str, value: Any) -> list[str]:
    paths = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if not paths or not all(isinstance(p, str) for p in paths):
        raise TypeError(f"{call}: filepath_fn must return a path or a non-empty list of paths, got {value!r}")
    return paths


def file_hash(path: str, hash_type: str) -> str:
    digest = hashlib.new(hash_type)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functional_datapipe("on_disk_cache")
class OnDiskCacheHolder(IterDataPipe):
    """Starts an on-disk cache section; ``.end_caching()`` closes it (functional name: ``on_disk_cache``).

    See NOTE [how the on-disk cache routes elements]. Resumable: the state holds the queue of cached
    paths not yet yielded.

    Args:
        source_datapipe: yields elements (URLs, paths...).
        filepath_fn: element -> the cached file path, or a list of paths (default: the element itself).
        hash_dict: path -> expected digest; a cached file that does not match is fetched again.
        hash_type: ``"sha256"`` or ``"md5"``.
        extra_check_fn: path -> bool, another validity check for cached files.

    Example:
        >>> import os, tempfile
        >>> from loom.data.iter import IterableWrapper
        >>> root = tempfile.mkdtemp()
        >>> def path_of(name): return os.path.join(root, name)
        >>> calls = []
        >>> def fetch(name):
        ...     calls.append(name)
        ...     return path_of(name), name.encode()
        >>> for _ in range(2):
        ...     pipe = IterableWrapper(["a", "b"]).on_disk_cache(path_of).map(fetch).end_caching()
        ...     out = [os.path.basename(p) for p in pipe]
        >>> out, calls
        (['a', 'b'], ['a', 'b'])
    """

    _repr_fields = ("filepath_fn",)

    def __init__(
        self,
        source_datapipe: Any,
        filepath_fn: Callable[[Any], Any] | None = None,
        hash_dict: dict[str, str] | None = None,
        hash_type: str = "sha256",
        extra_check_fn: Callable[[str], bool] | None = None,
    ) -> None:
        check_source("on_disk_cache", source_datapipe)
        for name, fn in (("filepath_fn", filepath_fn), ("extra_check_fn", extra_check_fn)):
            if fn is not None:
                check_fn("on_disk_cache", name, fn)
        if hash_type not in ("sha256", "md5"):
            raise ValueError(f"on_disk_cache: hash_type must be 'sha256' or 'md5', got {hash_type!r}")
        self.source_datapipe = source_datapipe
        self.filepath_fn = filepath_fn
        self.hash_dict = hash_dict
        self.hash_type = hash_type
        self.extra_check_fn = extra_check_fn
        self.end_holder: Any = None

    def paths(self, element: Any) -> list[str]:
        return _as_paths("on_disk_cache", self.filepath_fn(element) if self.filepath_fn else element)

    def is_cached(self, path: str) -> bool:
        if not os.path.isfile(path):
            return False
        expected = None if self.hash_dict is None else self.hash_dict.get(path)
        if expected is not None and file_hash(path, self.hash_type) != expected:
            return False
        return self.extra_check_fn is None or bool(self.extra_check_fn(path))

    def _register(self, ctx: Any, shared: _Shared) -> _Shared:
        registry = ctx.__dict__.setdefault("_loom_disk_caches", {})
        registry[id(self)] = shared
        return shared

    def _init_state(self, ctx: Any) -> _Shared:
        return self._register(ctx, _Shared([], None, None))

    def _iterate(self, srcs: list[Iterator[Any]], state: _Shared) -> Iterator[Any]:
        for element in srcs[0]:
            paths = self.paths(element)
            if all(self.is_cached(p) for p in paths):
                state.queue.extend(paths)
                continue
            state.current = paths
            yield element

    def _save_state(self, state: _Shared) -> dict[str, Any]:
        return {"queue": list(state.queue), "ready": state.ready, "current": state.current}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _Shared:
        queue = data.get("queue")
        if not isinstance(queue, list):
            raise RuntimeError(f"load_state_dict: OnDiskCacheHolder expects a list 'queue', got {queue!r}")
        return self._register(ctx, _Shared(queue, data.get("ready"), data.get("current")))


def _inside(path: str, root: str) -> bool:
    real = os.path.realpath(path)
    base = os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _find_holder(pipe: Any) -> OnDiskCacheHolder | None:
    seen: set[int] = set()
    todo = [pipe]
    while todo:
        p = todo.pop()
        if id(p) in seen:
            continue
        seen.add(id(p))
        if isinstance(p, OnDiskCacheHolder):
            return p
        if isinstance(p, IterDataPipe):
            todo.extend(s for s in p._sources() if s is not None)
    return None


def _read(data: Any, text: bool) -> Any:
    if isinstance(data, (bytes, str)):
        return data
    if hasattr(data, "read"):
        try:
            return data.read()
        finally:
            close_quietly(data)
    raise TypeError(f"end_caching: expected bytes, str or a stream as data, got {type(data).__name__}")


@functional_datapipe("end_caching")
class EndOnDiskCacheHolder(IterDataPipe):
    """Ends an on-disk cache section: writes ``(path, data)`` outputs and yields cached and new paths (functional name: ``end_caching``).

    See NOTE [how the on-disk cache routes elements] and the example of OnDiskCacheHolder.

    Args:
        datapipe: the work after ``.on_disk_cache()``, yielding ``(metadata, data or stream)``.
        mode: ``"wb"`` or ``"w"``.
        filepath_fn: metadata -> path (default: the metadata is the path).
        same_filepath_fn: use the holder's ``filepath_fn`` instead.
        skip_read: ``data`` is written as given (bytes or str) rather than read from a stream.
        timeout: seconds to wait for another worker's lock on the same file.
        root: the directory every write must stay inside (default: the directories of the holder's paths
            for the element being processed).

    Raises:
        ValueError: a path outside the cache root (``../`` member names, absolute paths, symlinks).
        RuntimeError: no OnDiskCacheHolder upstream, or a second ``end_caching`` for one holder.

    Example:
        >>> import os, tempfile
        >>> from loom.data.iter import IterableWrapper
        >>> root = tempfile.mkdtemp()
        >>> def path_of(name): return os.path.join(root, name + ".txt")
        >>> pipe = IterableWrapper(["a"]).on_disk_cache(path_of).map(lambda n: (path_of(n), n.encode()))
        >>> [os.path.basename(p) for p in pipe.end_caching(mode="wb")]
        ['a.txt']
        >>> pipe = IterableWrapper(["b"]).on_disk_cache(path_of).map(lambda n: ("/elsewhere/b.txt", b"x"))
        >>> list(pipe.end_caching())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: end_caching: refusing to write '/elsewhere/b.txt': it resolves outside the cache root ...
    """

    _repr_fields = ("mode", "root")

    def __init__(
        self,
        datapipe: Any,
        mode: str = "wb",
        filepath_fn: Callable[[Any], str] | None = None,
        *,
        same_filepath_fn: bool = False,
        skip_read: bool = False,
        timeout: float = 300,
        root: str | None = None,
    ) -> None:
        check_source("end_caching", datapipe)
        if filepath_fn is not None and same_filepath_fn:
            raise ValueError("end_caching: filepath_fn and same_filepath_fn=True are mutually exclusive")
        if mode not in ("wb", "w", "wt"):
            raise ValueError(f"end_caching: mode must be 'wb' or 'w', got {mode!r}")
        holder = _find_holder(datapipe)
        if holder is None:
            raise RuntimeError("end_caching: no OnDiskCacheHolder (.on_disk_cache()) upstream of this pipe")
        if holder.end_holder is not None:
            raise RuntimeError("end_caching: can be invoked once per OnDiskCacheHolder")
        holder.end_holder = True
        self.source_datapipe = datapipe
        self.holder = holder
        self.mode = mode
        self.filepath_fn = holder.filepath_fn if same_filepath_fn else filepath_fn
        self.skip_read = skip_read
        self.timeout = timeout
        self.root = root

    def _path(self, meta: Any) -> str:
        path = self.filepath_fn(meta) if self.filepath_fn is not None else meta
        if not isinstance(path, str):
            raise TypeError(f"end_caching: the file path must be a str, got {path!r}")
        return path

    def _check_inside(self, path: str, shared: _Shared) -> None:
        roots = (
            [self.root]
            if self.root is not None
            else sorted({os.path.dirname(p) or "." for p in shared.current or []})
        )
        if not roots:
            return
        if not any(_inside(path, r) for r in roots):
            raise ValueError(
                f"end_caching: refusing to write {path!r}: it resolves outside the cache root "
                f"{roots[0] if len(roots) == 1 else roots} (a '../' or absolute member name, or a symlink)"
            )

    def _write(self, item: Any, shared: _Shared) -> str:
        from filelock import FileLock, Timeout

        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"end_caching: expected (metadata, data) pairs, got {item!r:.80}")
        meta, data = item
        path = self._path(meta)
        self._check_inside(path, shared)
        body = data if self.skip_read else _read(data, "b" not in self.mode)
        holder = self.holder
        if holder.hash_dict is not None and path in holder.hash_dict:
            digest = hashlib.new(
                holder.hash_type, body.encode() if isinstance(body, str) else body
            ).hexdigest()
            if digest != holder.hash_dict[path]:
                raise RuntimeError(
                    f"end_caching: the {holder.hash_type} of {path!r} is {digest}, expected {holder.hash_dict[path]}"
                )
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            with FileLock(path + ".lock", timeout=self.timeout):
                if not holder.is_cached(path):
                    write_atomically(path, body, self.mode)
        except Timeout as err:
            raise TimeoutError(f"end_caching: waited {self.timeout}s for the lock on {path!r}") from err
        return path

    def _init_state(self, ctx: Any) -> _Shared:
        return ctx._loom_disk_caches[id(self.holder)]  # type: ignore[no-any-return]

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _Shared:
        return self._init_state(ctx)

    def _iterate(self, srcs: list[Iterator[Any]], shared: _Shared) -> Iterator[Any]:
        queue = shared.queue
        work = srcs[0]
        while True:
            if queue:
                yield queue.popleft()
                continue
            if shared.ready is not None:
                out, shared.ready = shared.ready, None
                yield out
                continue
            item = next(work, _END)
            if item is _END:
                if queue:
                    continue
                return
            out = self._write(item, shared)
            if queue:  # cached elements that came before this one in the source
                shared.ready = out
                continue
            yield out
