"""Compressed streams: XzFileLoader, Bz2FileLoader, and Decompressor (gzip, bz2, xz, zip, tar; by extension or magic bytes).

Decompressed streams carry reopen specs wrapping their source's (``{"kind": "gzip", "inner": ...}``),
so a reader downstream resumes inside them. See NOTE [streams are not state; reopen specs are].
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import zipfile
from collections.abc import Iterator
from typing import Any

from loom.data._columns import check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._archives import Owned
from loom.data.iter._streams import (
    StreamWrapper,
    check_pair,
    data_errors,
    register_reopener,
    reopen,
    stream_spec,
    unwrap,
)

__all__ = ["Bz2FileLoader", "Decompressor", "XzFileLoader"]


class _OneStreamLoader(IterDataPipe):
    """Maps ``(path, stream)`` to ``(path minus suffix, decompressed stream)``; stateless."""

    _call = ""
    _suffix = ""
    _kind = ""

    def __init__(self, datapipe: Any, length: int = -1) -> None:
        check_source(self._call, datapipe)
        self.source_datapipe = datapipe
        self.length = length

    def _open(self, item: Any) -> tuple[str, StreamWrapper]:
        path, stream = check_pair(self._call, item)
        new = path[: -len(self._suffix)] if path.endswith(self._suffix) else path
        return new, wrap_decompressed(self._kind, stream, new)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(self._open, srcs[0])

    def __len__(self) -> int:
        return self._source_len() if self.length == -1 else self.length


_OPENERS: dict[str, Any] = {
    "xz": lambda f: lzma.open(f, "rb"),  # noqa: SIM115 - streams handed out
    "bz2": lambda f: bz2.open(f, "rb"),  # noqa: SIM115
    "gzip": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
}


def wrap_decompressed(kind: str, stream: Any, name: str) -> StreamWrapper:
    spec = stream_spec(stream)
    inner_spec = None if spec is None else {"kind": kind, "inner": spec}
    return StreamWrapper(Owned(_OPENERS[kind](unwrap(stream)), stream), name=name, spec=inner_spec)


def _reopen_compressed(spec: dict[str, Any]) -> Any:
    outer = reopen(spec["inner"], f"{spec['kind']} stream")
    return Owned(_OPENERS[spec["kind"]](outer), outer)


@functional_datapipe("load_from_xz")
class XzFileLoader(_OneStreamLoader):
    """Decompresses ``.xz``/``.lzma`` streams: ``(path, stream)`` -> ``(path without .xz, stream)`` (functional name: ``load_from_xz``).

    Example:
        >>> import io, lzma
        >>> from loom.data.iter import IterableWrapper
        >>> [(p, s.read()) for p, s in IterableWrapper([("a.xz", io.BytesIO(lzma.compress(b"hi")))]).load_from_xz()]
        [('a', b'hi')]
    """

    _call = "load_from_xz"
    _suffix = ".xz"
    _kind = "xz"


@functional_datapipe("load_from_bz2")
class Bz2FileLoader(_OneStreamLoader):
    """Decompresses ``.bz2`` streams: ``(path, stream)`` -> ``(path without .bz2, stream)`` (functional name: ``load_from_bz2``).

    Example:
        >>> import io, bz2
        >>> from loom.data.iter import IterableWrapper
        >>> [(p, s.read()) for p, s in IterableWrapper([("a.bz2", io.BytesIO(bz2.compress(b"hi")))]).load_from_bz2()]
        [('a', b'hi')]
    """

    _call = "load_from_bz2"
    _suffix = ".bz2"
    _kind = "bz2"


_EXTENSIONS = ((".tar", "tar"), (".xz", "xz"), (".gz", "gzip"), (".zip", "zip"), (".bz2", "bz2"))
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"), (b"PK\x03\x04", "zip"))
FILE_TYPES = ("bz2", "gzip", "tar", "xz", "zip")


def _peek(stream: Any, n: int) -> bytes | None:
    raw = unwrap(stream)
    peek = getattr(raw, "peek", None)
    if peek is not None:
        data = peek(n)
        return bytes(data[:n]) if isinstance(data, (bytes, bytearray)) else None
    if getattr(raw, "seekable", lambda: False)():
        here = raw.tell()
        data = raw.read(n)
        raw.seek(here)
        return data if isinstance(data, bytes) else None
    return None


def detect_type(path: str, stream: Any) -> str | None:
    """The compression or archive type from the extension, else from the magic bytes."""
    lower = path.lower()
    for ext, kind in _EXTENSIONS:
        if lower.endswith(ext):
            return kind
    head = _peek(stream, 512)
    if head is None:
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


@functional_datapipe("decompress")
class Decompressor(IterDataPipe):
    """Decompresses ``(path, stream)`` by type: gzip, bz2, xz, zip, tar (functional name: ``decompress``).

    For ``gzip``/``bz2``/``xz`` the output stream is the decompressed data; for ``tar`` and ``zip`` it is the
    opened ``tarfile.TarFile``/``zipfile.ZipFile`` (as torchdata). Stateless.

    Args:
        source_datapipe: yields ``(path, stream)``.
        file_type: one of ``"gzip"``, ``"bz2"``, ``"xz"``, ``"zip"``, ``"tar"``, or ``None`` to detect it from
            the extension and else from the magic bytes (which needs a seekable or peekable stream).

    Raises:
        ValueError: the type is unknown or cannot be detected (naming the path).

    Example:
        >>> import io, gzip
        >>> from loom.data.iter import IterableWrapper
        >>> [(p, s.read()) for p, s in IterableWrapper([("a.gz", io.BytesIO(gzip.compress(b"hi")))]).decompress()]
        [('a.gz', b'hi')]
    """

    _repr_fields = ("file_type",)

    def __init__(self, source_datapipe: Any, file_type: str | None = None) -> None:
        check_source("decompress", source_datapipe)
        if isinstance(file_type, str):
            file_type = file_type.lower()
            file_type = {"gz": "gzip", "bzip2": "bz2", "lzma": "xz"}.get(file_type, file_type)
        if file_type is not None and file_type not in FILE_TYPES:
            raise ValueError(f"decompress: file_type must be None or one of {FILE_TYPES}, got {file_type!r}")
        self.source_datapipe = source_datapipe
        self.file_type = file_type

    def _open(self, item: Any) -> tuple[str, Any]:
        path, stream = check_pair("decompress", item)
        kind = self.file_type or detect_type(path, stream)
        if kind is None:
            raise ValueError(
                f"decompress: cannot detect the compression of {path!r} from its extension or magic bytes; "
                f"pass file_type= one of {FILE_TYPES}"
            )
        try:
            if kind == "tar":
                return path, StreamWrapper(
                    Owned(tarfile.open(fileobj=unwrap(stream), mode="r:*"), stream), name=path
                )
            if kind == "zip":
                return path, StreamWrapper(Owned(zipfile.ZipFile(unwrap(stream)), stream), name=path)
        except data_errors() as err:
            raise ValueError(f"decompress: {path!r} is not a valid {kind} archive: {err}") from err
        return path, wrap_decompressed(kind, stream, path)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return map(self._open, srcs[0])

    def __len__(self) -> int:
        return self._source_len()


for _kind in ("xz", "bz2", "gzip"):
    register_reopener(_kind, _reopen_compressed)
