"""Archives: TarArchiveLoader and ZipArchiveLoader (and the run-over-streams base that TFRecord/Parquet reuse).

All take ``(path, stream)`` pairs and yield ``(inner path, StreamWrapper)`` pairs. Member streams carry
reopen specs (NOTE [streams are not state; reopen specs are] in ``_streams.py``), so readers downstream
resume inside a member, and the archive loaders resume at a member index: a restore reopens the archive
and skips the members already yielded.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from loom.data._columns import check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._parsers import check_on_error
from loom.data.iter._streams import (
    Runs,
    StreamWrapper,
    check_pair,
    close_quietly,
    data_errors,
    register_reopener,
    reopen,
    require_spec,
    run_chain,
    stream_spec,
    unwrap,
)

__all__ = ["TarArchiveLoader", "ZipArchiveLoader"]

_second = itemgetter(1)


class Owned:
    """A stream that also closes the streams it was opened from (the archive, the file under it)."""

    def __init__(self, inner: Any, *owners: Any) -> None:
        self.inner = inner
        self.owners = owners

    def __getattr__(self, attr: str) -> Any:
        if attr in ("inner", "owners"):
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.inner)

    def read(self, *args: Any) -> Any:
        return self.inner.read(*args)

    def close(self) -> None:
        close_quietly(self.inner)
        for owner in self.owners:
            close_quietly(owner)


class _ArchiveLoader(IterDataPipe):
    """Runs over archives: state = (archive path, archive spec, members yielded)."""

    _call = ""
    _what = "archive"
    _unit = "member"
    _owns_stream = False  # see NOTE [archives close when their last member goes]

    def __init__(self, datapipe: Any, length: int = -1, on_error: str = "raise") -> None:
        check_source(self._call, datapipe)
        self.source_datapipe = datapipe
        self.length = length
        self.on_error = check_on_error(self._call, on_error)
        self.num_skipped = 0

    def _members(self, path: str, stream: Any, pos: int, state: Runs) -> Iterator[Any]:
        raise NotImplementedError

    def _init_state(self, ctx: Any) -> Runs:
        return Runs(owns=self._owns_stream)

    def _guarded(self, path: str, stream: Any, pos: int, state: Runs) -> Iterator[Any]:
        try:
            yield from self._members(path, stream, pos, state)
        except (*data_errors(), ValueError) as err:  # type: ignore[misc]
            if self.on_error == "skip":
                self.num_skipped += 1
                state.skipped += 1
                return
            raise ValueError(
                f"{self._call}: corrupt or truncated {self._what} {path!r} after {self._unit} "
                f"{state.position()}: {err}"
            ) from err

    def _iterate(self, srcs: list[Iterator[Any]], state: Runs) -> Iterator[Any]:
        def start(item: Any) -> Iterator[Any]:
            path, stream = check_pair(self._call, item)
            return map(_second, state.begin((path, stream), stream, self._guarded(path, stream, 0, state)))

        def resume(key: Any, pos: int) -> Iterator[Any]:
            path, spec = key
            stream = StreamWrapper(reopen(spec, type(self).__name__), name=path, spec=spec)
            members = self._guarded(path, stream, pos, state)
            return map(_second, state.begin((path, stream), stream, members, pos))

        return run_chain(srcs[0], state, start, resume)

    def _save_state(self, state: Runs) -> dict[str, Any]:
        if state.key is None:
            return {"path": None, "spec": None, "member_index": 0}
        path, stream = state.key
        spec = require_spec(type(self).__name__, path, stream)
        return {"path": path, "spec": spec, "member_index": state.position()}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Runs:
        state = Runs(owns=self._owns_stream)
        index = data.get("member_index")
        if not isinstance(index, int) or index < 0:
            raise RuntimeError(
                f"load_state_dict: {type(self).__name__} expects 'member_index' >= 0, got {index!r}"
            )
        if data.get("path") is not None:
            state.resume = ((data["path"], data["spec"]), index)
        return state

    def __len__(self) -> int:
        if self.length == -1:
            raise TypeError(f"{type(self).__name__} instance doesn't have valid length")
        return self.length


class Member(Owned):
    """An archive member's stream: keeps the archive alive while the member is, closes only itself.

    # NOTE [archives close when their last member goes]
    # Archive loaders never close the archive stream themselves: a member yielded earlier may still be
    # unread (``.webdataset()`` holds a whole sample while it looks at the next member, which may be in
    # the next archive). Each member holds a reference to its archive, so the archive's StreamWrapper
    # is collected, and closes its file, as soon as the loader has moved on and the last member is gone.
    """

    def close(self) -> None:
        close_quietly(self.inner)


def _inner_path(path: str, name: str) -> str:
    return os.path.normpath(os.path.join(path, name))


@functional_datapipe("load_from_tar")
class TarArchiveLoader(_ArchiveLoader):
    """Yields ``(path/member, stream)`` for each regular file in tar archives (functional name: ``load_from_tar``).

    Directories, links and devices are skipped. Resumable at a member index (see module docstring).

    Args:
        datapipe: yields ``(path, stream)`` of tar archives (``.tar``, ``.tar.gz``, ...).
        mode: the ``tarfile.open`` mode; ``"r:*"`` detects compression, ``"r|*"`` reads non-seekable streams
            (each member must then be read before the next is pulled).
        length: the value of ``len()`` (``-1``: unknown).
        on_error: ``"raise"`` (default) a ValueError naming the archive and member index on a corrupt or
            truncated archive, or ``"skip"`` the rest of that archive and count it in ``num_skipped``.

    Example:
        >>> import io, tarfile
        >>> from loom.data.iter import IterableWrapper
        >>> buf = io.BytesIO()
        >>> with tarfile.open(fileobj=buf, mode="w") as tar:
        ...     info = tarfile.TarInfo("a.txt"); info.size = 2
        ...     tar.addfile(info, io.BytesIO(b"hi"))
        >>> _ = buf.seek(0)
        >>> [(p, s.read()) for p, s in IterableWrapper([("x.tar", buf)]).load_from_tar()]
        [('x.tar/a.txt', b'hi')]
    """

    _call = "load_from_tar"
    _repr_fields = ("mode",)

    def __init__(self, datapipe: Any, mode: str = "r:*", length: int = -1, on_error: str = "raise") -> None:
        if not isinstance(mode, str) or not mode.startswith(("r:", "r|")):
            raise ValueError(
                f"load_from_tar: mode must be a tarfile read mode like 'r:*' or 'r|*', got {mode!r}"
            )
        super().__init__(datapipe, length, on_error)
        self.mode = mode

    def _members(self, path: str, stream: Any, pos: int, state: Runs) -> Iterator[Any]:
        spec = stream_spec(stream)
        tar = tarfile.open(fileobj=unwrap(stream), mode=self.mode)  # type: ignore[call-overload]  # noqa: SIM115
        index = 0
        for member in tar:
            if not member.isfile():
                continue
            index += 1
            if index <= pos:
                continue
            member_spec = None
            if spec is not None:
                member_spec = {"kind": "tar", "archive": spec, "member": member.name, "mode": self.mode}
            inner = _inner_path(path, member.name)
            yield (
                inner,
                StreamWrapper(Member(tar.extractfile(member), tar, stream), name=inner, spec=member_spec),
            )
        _check_tar_end(path, tar, stream)


def _check_tar_end(path: str, tar: tarfile.TarFile, stream: Any) -> None:
    """tarfile stops quietly when an archive is cut at a header; the end-of-archive blocks tell."""
    fileobj: Any = unwrap(stream)
    if id(tar.fileobj) != id(fileobj):  # (not `is`: mypy would narrow fileobj's type)
        # compressed: read the compressed stream to its end, so that a cut trailer raises EOFError
        compressed: Any = tar.fileobj
        while compressed.read(1 << 16):
            pass
        return
    if not getattr(fileobj, "seekable", lambda: False)():
        return
    here = fileobj.tell()
    end = fileobj.seek(0, os.SEEK_END)
    fileobj.seek(here)
    if end - tar.offset < 2 * tarfile.BLOCKSIZE and tar.offset > 0:
        raise tarfile.ReadError(f"truncated archive: no end-of-archive marker after offset {tar.offset}")


def _reopen_tar_member(spec: dict[str, Any]) -> Any:
    outer = reopen(spec["archive"], "tar member")
    tar = tarfile.open(fileobj=outer, mode=spec["mode"])  # noqa: SIM115 - owned by the result
    for member in tar:
        if member.name == spec["member"] and member.isfile():
            return Owned(tar.extractfile(member), tar, outer)
    tar.close()
    outer.close()
    raise FileNotFoundError(f"load_state_dict: tar member {spec['member']!r} is no longer in the archive")


@functional_datapipe("load_from_zip")
class ZipArchiveLoader(_ArchiveLoader):
    """Yields ``(path/member, stream)`` for each file in zip archives (functional name: ``load_from_zip``).

    The archive stream must be seekable. A member whose data is corrupt fails with ``zipfile.BadZipFile``
    when it is read (its CRC is checked at the end). Resumable at a member index.

    Args:
        datapipe: yields ``(path, stream)`` of zip archives.
        length: the value of ``len()`` (``-1``: unknown).
        on_error: ``"raise"`` or ``"skip"`` an archive that cannot be opened or listed.

    Example:
        >>> import io, zipfile
        >>> from loom.data.iter import IterableWrapper
        >>> buf = io.BytesIO()
        >>> with zipfile.ZipFile(buf, "w") as z:
        ...     z.writestr("a.txt", b"hi")
        >>> [(p, s.read()) for p, s in IterableWrapper([("x.zip", buf)]).load_from_zip()]
        [('x.zip/a.txt', b'hi')]
    """

    _call = "load_from_zip"

    def _members(self, path: str, stream: Any, pos: int, state: Runs) -> Iterator[Any]:
        spec = stream_spec(stream)
        with zipfile.ZipFile(unwrap(stream)) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            for info in members[pos:]:
                member_spec = (
                    None if spec is None else {"kind": "zip", "archive": spec, "member": info.filename}
                )
                inner = _inner_path(path, info.filename)
                yield inner, StreamWrapper(archive.open(info), name=inner, spec=member_spec)


def _reopen_zip_member(spec: dict[str, Any]) -> Any:
    outer = reopen(spec["archive"], "zip member")
    archive = zipfile.ZipFile(outer)
    return Owned(archive.open(spec["member"]), archive, outer)


register_reopener("tar", _reopen_tar_member)
register_reopener("zip", _reopen_zip_member)
