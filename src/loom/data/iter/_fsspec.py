"""File systems through fsspec: FSSpecFileLister, FSSpecFileOpener, FSSpecSaver, S3FileLister, S3FileLoader."""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable, Iterator
from typing import Any

from loom.data._columns import check_fn, check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._files import FileLister, _as_roots, _check_mode, write_atomically
from loom.data.iter._streams import StreamWrapper, register_reopener

__all__ = ["FSSpecFileLister", "FSSpecFileOpener", "FSSpecSaver", "S3FileLister", "S3FileLoader"]


def need(module: str, extra: str, call: str) -> Any:
    """Import an optional library, or fail with the pip extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{call} needs the `{module}` package: pip install loom[{extra}]") from err


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, (str, int, float, bool, type(None)))


def _url_to_fs(call: str, url: str, options: dict[str, Any]) -> tuple[Any, str]:
    fsspec = need("fsspec", "io", call)
    return fsspec.core.url_to_fs(url, **options)  # type: ignore[no-any-return]


def _protocol(fs: Any) -> str:
    proto = fs.protocol
    return proto if isinstance(proto, str) else proto[0]


def _join(fs: Any, name: str) -> str:
    proto = _protocol(fs)
    return name if proto in ("file", "local") else f"{proto}://{name}"


@functional_datapipe("list_files_by_fsspec")
class FSSpecFileLister(FileLister):
    """Lists files under fsspec URLs (``memory://``, ``s3://``, local paths...) (functional name: ``list_files_by_fsspec``).

    Non-recursive, sorted; resumable like FileLister (root + index).

    Args:
        root: a URL, a list of URLs, or an IterDataPipe of them.
        masks: glob pattern(s) matched against file names.
        **kwargs: storage options for the file system (``anon=True``, ``client_kwargs=...``).

    Example:
        >>> import fsspec
        >>> fs = fsspec.filesystem("memory")
        >>> fs.pipe({"/doc/b.txt": b"2", "/doc/a.txt": b"1"})
        >>> list(FSSpecFileLister("memory:///doc"))
        ['memory:///doc/a.txt', 'memory:///doc/b.txt']
    """

    def __init__(self, root: Any, masks: str | list[str] = "", **kwargs: Any) -> None:
        super().__init__(_as_roots("list_files_by_fsspec", root), masks)
        self.kwargs = kwargs

    def _list(self, root: Any) -> list[str]:
        if not isinstance(root, str):
            raise TypeError(f"list_files_by_fsspec: roots must be str URLs, got {root!r}")
        fs, path = _url_to_fs("list_files_by_fsspec", root, self.kwargs)
        if fs.isfile(path):
            return [root]
        if not fs.isdir(path):
            raise FileNotFoundError(f"list_files_by_fsspec: {root!r} is neither a file nor a directory")
        out = []
        for info in sorted(fs.ls(path, detail=True), key=lambda i: i["name"]):
            name = info["name"]
            if info.get("type") == "directory":
                continue
            base = posixpath.basename(name.rstrip("/"))
            if any(self.masks) and not any(fnmatch.fnmatch(base, m) for m in self.masks if m):
                continue
            out.append(_join(fs, name))
        return out


def open_fsspec(
    call: str, url: str, mode: str, options: dict[str, Any], open_kwargs: dict[str, Any]
) -> StreamWrapper:
    fs, path = _url_to_fs(call, url, options)
    spec = None
    if _plain(options) and _plain(open_kwargs):
        spec = {
            "kind": "fsspec",
            "path": url,
            "mode": mode,
            "options": dict(options),
            "open_kwargs": dict(open_kwargs),
        }
    return StreamWrapper(fs.open(path, mode, **open_kwargs), name=url, spec=spec)


def _reopen_fsspec(spec: dict[str, Any]) -> Any:
    fs, path = _url_to_fs("load_state_dict", spec["path"], spec["options"])
    return fs.open(path, spec["mode"], **spec["open_kwargs"])


@functional_datapipe("open_files_by_fsspec")
class FSSpecFileOpener(IterDataPipe):
    """Opens fsspec URLs and yields ``(url, stream)`` (functional name: ``open_files_by_fsspec``).

    Streams carry a reopen spec holding ``url``, ``mode`` and the storage options (plain values only),
    so readers downstream resume mid-file; keep credentials in the environment if states are shared.

    Args:
        source_datapipe: yields URLs.
        mode: ``"r"``/``"rb"``/``"rt"``.
        kwargs_for_open: passed to ``fs.open``.
        **kwargs: storage options for the file system.

    Example:
        >>> import fsspec
        >>> fsspec.filesystem("memory").pipe("/x.txt", b"hi")
        >>> [(u, s.read()) for u, s in FSSpecFileOpener(["memory:///x.txt"], mode="rb")]
        [('memory:///x.txt', b'hi')]
    """

    _repr_fields = ("mode",)

    def __init__(
        self,
        source_datapipe: Any,
        mode: str = "r",
        *,
        kwargs_for_open: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        check_source("open_files_by_fsspec", source_datapipe)
        self.source_datapipe = _as_roots("open_files_by_fsspec", source_datapipe)
        self.mode = _check_mode("open_files_by_fsspec", mode, ("r", "rb", "rt", "b", "t"))
        self.mode = {"b": "rb", "t": "rt", "r": "rt"}.get(self.mode, self.mode)
        self.kwargs_for_open = dict(kwargs_for_open or {})
        self.kwargs = kwargs

    def _open(self, url: Any) -> tuple[str, StreamWrapper]:
        if not isinstance(url, str):
            raise TypeError(f"open_files_by_fsspec: expected str URLs, got {url!r}")
        return url, open_fsspec("open_files_by_fsspec", url, self.mode, self.kwargs, self.kwargs_for_open)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(self._open, srcs[0])

    def __len__(self) -> int:
        return self._source_len()


@functional_datapipe("save_by_fsspec")
class FSSpecSaver(IterDataPipe):
    """Writes ``(metadata, data)`` to fsspec URLs and yields the URL (functional name: ``save_by_fsspec``).

    Local paths are written to a temporary file and renamed; object stores (s3, memory) publish an
    object only when it is closed, so no half-written file is ever visible either way.

    Args:
        source_datapipe: yields ``(metadata, data)``.
        mode: ``"w"`` or ``"wb"``.
        filepath_fn: maps ``metadata`` to the URL (default: ``metadata`` is the URL).
        kwargs_for_open: passed to ``fs.open``.
        **kwargs: storage options.

    Example:
        >>> import fsspec
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper([("memory:///out.bin", b"ok")]).save_by_fsspec(mode="wb"))
        ['memory:///out.bin']
        >>> fsspec.filesystem("memory").cat("/out.bin")
        b'ok'
    """

    _repr_fields = ("mode",)

    def __init__(
        self,
        source_datapipe: Any,
        mode: str = "w",
        filepath_fn: Callable[[Any], str] | None = None,
        *,
        kwargs_for_open: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        check_source("save_by_fsspec", source_datapipe)
        _check_mode("save_by_fsspec", mode, ("w", "wb", "wt"))
        if filepath_fn is not None:
            check_fn("save_by_fsspec", "filepath_fn", filepath_fn)
        self.source_datapipe = source_datapipe
        self.mode = mode
        self.filepath_fn = filepath_fn
        self.kwargs_for_open = dict(kwargs_for_open or {})
        self.kwargs = kwargs

    def _save(self, item: Any) -> str:
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"save_by_fsspec: expected (metadata, data) pairs, got {item!r:.80}")
        meta, data = item
        url = self.filepath_fn(meta) if self.filepath_fn is not None else meta
        fs, path = _url_to_fs("save_by_fsspec", url, self.kwargs)
        if _protocol(fs) in ("file", "local"):
            write_atomically(path, data, self.mode)
            return str(url)
        parent = posixpath.dirname(path)
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(path, self.mode, **self.kwargs_for_open) as f:
            f.write(data if isinstance(data, (bytes, str)) else data.read())
        return str(url)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(self._save, srcs[0])

    def __len__(self) -> int:
        return self._source_len()


def _s3_options(call: str, region: str, request_timeout_ms: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    """torchdata's S3 arguments as s3fs options: ``region`` -> ``region_name``, the timeout -> botocore's."""
    options = dict(kwargs)
    if region:
        client = dict(options.get("client_kwargs", {}))
        client.setdefault("region_name", region)
        options["client_kwargs"] = client
    if isinstance(request_timeout_ms, bool) or not isinstance(request_timeout_ms, int):
        raise TypeError(f"{call}: request_timeout_ms must be an int, got {request_timeout_ms!r}")
    if request_timeout_ms > 0:
        config = dict(options.get("config_kwargs", {}))
        config.setdefault("connect_timeout", request_timeout_ms / 1000)
        config.setdefault("read_timeout", request_timeout_ms / 1000)
        options["config_kwargs"] = config
    return options


@functional_datapipe("list_files_by_s3")
class S3FileLister(FSSpecFileLister):
    """Lists every object under S3 prefixes, recursively, through s3fs (functional name: ``list_files_by_s3``).

    torchdata's version needs its AWS C++ extension; this one needs ``pip install loom[s3]``. A prefix
    ``s3://bucket/data/a`` matches keys starting with ``data/a``, as S3's ListObjectsV2 does. Resumable.

    Args:
        source_datapipe: yields ``s3://bucket/prefix`` URLs.
        length: the value of ``len()``.
        request_timeout_ms: connect and read timeout in milliseconds (``-1``: s3fs's default).
        region: the AWS region.
        masks: glob pattern(s) matched against object names.
        **kwargs: s3fs options (``anon``, ``key``, ``secret``, ``client_kwargs={"endpoint_url": ...}``).

    Example:
        >>> S3FileLister(["s3://bucket/prefix"], region="us-east-1")  # doctest: +ELLIPSIS
        S3FileLister(...)
    """

    def __init__(
        self,
        source_datapipe: Any,
        length: int = -1,
        request_timeout_ms: int = -1,
        region: str = "",
        masks: str | list[str] = "",
        **kwargs: Any,
    ) -> None:
        options = _s3_options("list_files_by_s3", region, request_timeout_ms, kwargs)
        super().__init__(_as_roots("list_files_by_s3", source_datapipe), masks, **options)
        self.length = length

    def _list(self, root: Any) -> list[str]:
        if not isinstance(root, str) or not root.startswith("s3://"):
            raise ValueError(f"list_files_by_s3: expected s3:// URLs, got {root!r}")
        need("s3fs", "s3", "list_files_by_s3")
        fs, path = _url_to_fs("list_files_by_s3", root, self.kwargs)
        bucket, _, prefix = path.partition("/")
        base = posixpath.dirname(prefix)
        top = f"{bucket}/{base}" if base else bucket
        names = [n for n in fs.find(top) if n[len(bucket) + 1 :].startswith(prefix)]
        masks = [m for m in self.masks if m]
        if masks:
            names = [n for n in names if any(fnmatch.fnmatch(posixpath.basename(n), m) for m in masks)]
        return [f"s3://{n}" for n in sorted(names)]


@functional_datapipe("load_files_by_s3")
class S3FileLoader(FSSpecFileOpener):
    """Opens ``s3://`` URLs through s3fs and yields ``(url, binary stream)`` (functional name: ``load_files_by_s3``).

    Args:
        source_datapipe: yields ``s3://bucket/key`` URLs.
        request_timeout_ms: connect and read timeout in milliseconds (``-1``: s3fs's default).
        region: the AWS region.
        buffer_size: s3fs's read block size in bytes.
        multi_part_download: accepted for torchdata compatibility; s3fs reads in ranged blocks anyway.
        **kwargs: s3fs options, as for S3FileLister.

    Example:
        >>> S3FileLoader(["s3://bucket/key"])  # doctest: +ELLIPSIS
        S3FileLoader(...)
    """

    def __init__(
        self,
        source_datapipe: Any,
        request_timeout_ms: int = -1,
        region: str = "",
        buffer_size: int | None = None,
        multi_part_download: bool | None = None,
        **kwargs: Any,
    ) -> None:
        open_kwargs = {} if buffer_size is None else {"block_size": buffer_size}
        options = _s3_options("load_files_by_s3", region, request_timeout_ms, kwargs)
        super().__init__(source_datapipe, "rb", kwargs_for_open=open_kwargs, **options)

    def _open(self, url: Any) -> tuple[str, StreamWrapper]:
        need("s3fs", "s3", "load_files_by_s3")
        return super()._open(url)


register_reopener("fsspec", _reopen_fsspec)
