"""WebDataset: group consecutive ``(path, data)`` pairs of a tar shard into samples by key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from loom.data._columns import check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._streams import StreamWrapper, reopen, stream_spec

__all__ = ["WebDataset"]

_SPLIT = re.compile(r"^(.*?)(\.[^/]*)$")
_PLAIN = (bytes, str, int, float, bool, type(None))


def split_key(path: str) -> tuple[str, str]:
    """``"shard.tar/dir/abc.seg.png"`` -> ``("shard.tar/dir/abc", ".seg.png")``: the suffix starts at the
    first dot of the last path component."""
    path = path.replace("\\", "/")
    match = _SPLIT.match(path)
    return (path, "") if match is None else (match.group(1), match.group(2))


class _Lookahead:
    __slots__ = ("pending",)

    def __init__(self, pending: tuple[str, Any] | None) -> None:
        self.pending = pending


@functional_datapipe("webdataset")
class WebDataset(IterDataPipe):
    """Groups consecutive ``(path, data)`` pairs into sample dicts by key (functional name: ``webdataset``).

    The key is the path up to the first dot of its file name; each pair adds ``{suffix: data}`` to the
    sample, which also holds ``"__key__"``. Pairs without a suffix are skipped. A sample ends when the
    key changes, so the first pair of the next sample has been read: that pair is the state (its data,
    or its stream's reopen spec), and a restore continues with exactly the next sample.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> pairs = [("s.tar/a.jpg", b"1"), ("s.tar/a.cls", b"0"), ("s.tar/b.jpg", b"2")]
        >>> [sorted(s.items()) for s in IterableWrapper(pairs).webdataset()]
        [[('.cls', b'0'), ('.jpg', b'1'), ('__key__', 's.tar/a')], [('.jpg', b'2'), ('__key__', 's.tar/b')]]
    """

    def __init__(self, source_datapipe: Any) -> None:
        check_source("webdataset", source_datapipe)
        self.source_datapipe = source_datapipe

    def _init_state(self, ctx: Any) -> _Lookahead:
        return _Lookahead(None)

    def _iterate(self, srcs: list[Iterator[Any]], state: _Lookahead) -> Iterator[Any]:
        src = srcs[0]
        while True:
            item: Any
            if state.pending is not None:
                item, state.pending = state.pending, None
            else:
                item = next(src, None)
                if item is None:
                    return
            prefix, suffix = split_key(_path_of(item))
            if not suffix:
                continue
            sample = {"__key__": prefix, suffix: item[1]}
            for item in src:
                key, suffix = split_key(_path_of(item))
                if not suffix:
                    continue
                if key != prefix:
                    state.pending = item
                    break
                sample[suffix] = item[1]
            yield sample

    def _save_state(self, state: _Lookahead) -> dict[str, Any]:
        if state.pending is None:
            return {"pending": None}
        path, data = state.pending
        if isinstance(data, _PLAIN):
            return {"pending": {"path": path, "data": data}}
        spec = stream_spec(data)
        if spec is None:
            raise RuntimeError(
                f"state_dict: WebDataset holds the first part of the next sample ({path!r}), a "
                f"{type(data).__name__} that cannot be saved or reopened"
            )
        return {"pending": {"path": path, "spec": spec}}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _Lookahead:
        pending = data.get("pending")
        if pending is None:
            return _Lookahead(None)
        path = pending["path"]
        if "spec" in pending:
            spec = pending["spec"]
            return _Lookahead((path, StreamWrapper(reopen(spec, "WebDataset"), name=path, spec=spec)))
        return _Lookahead((path, pending["data"]))


def _path_of(item: Any) -> str:
    if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str):
        raise TypeError(f"webdataset: expected (path, data) pairs, got {item!r:.80}")
    return item[0]
