"""HTTP: HttpReader and OnlineReader (plain URLs and Google Drive links), through ``requests``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from loom.data._columns import check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._fsspec import need
from loom.data.iter._streams import StreamWrapper

__all__ = ["HttpReader", "OnlineReader"]


class _Body:
    """A response body: reads that time out, fail or pass ``max_bytes`` raise errors naming the URL."""

    def __init__(self, url: str, response: Any, max_bytes: int | None) -> None:
        self.url = url
        self.response = response
        self.raw = response.raw
        self.max_bytes = max_bytes
        self.seen = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self.raw.read(None if size is None or size < 0 else size)
        except Exception as err:
            raise OSError(
                f"read_from_http: reading {self.url!r} failed: {type(err).__name__}: {err}"
            ) from err
        self.seen += len(data)
        if self.max_bytes is not None and self.seen > self.max_bytes:
            self.close()
            raise ValueError(f"read_from_http: {self.url!r} is larger than max_bytes={self.max_bytes}")
        return data

    def __iter__(self) -> Iterator[bytes]:
        pending = b""
        while True:
            chunk = self.read(1 << 16)
            if not chunk:
                break
            pending += chunk
            lines = pending.split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield line + b"\n"
        if pending:
            yield pending

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.response.close()

    @property
    def closed(self) -> bool:
        return bool(getattr(self.raw, "closed", False))


def http_get(
    call: str, url: str, timeout: float | None, max_bytes: int | None, kwargs: dict[str, Any]
) -> Any:
    requests = need("requests", "io", call)
    try:
        response = requests.get(url, timeout=timeout, stream=True, **kwargs)
    except requests.exceptions.Timeout as err:
        raise TimeoutError(f"{call}: no response from {url!r} within timeout={timeout}s") from err
    except requests.exceptions.RequestException as err:
        raise OSError(f"{call}: could not get {url!r}: {err}") from err
    if response.status_code >= 400:
        response.close()
        raise OSError(f"{call}: HTTP {response.status_code} {response.reason} for {url!r}")
    length = response.headers.get("Content-Length")
    if max_bytes is not None and length is not None and length.isdigit() and int(length) > max_bytes:
        response.close()
        raise ValueError(f"{call}: {url!r} has {length} bytes, more than max_bytes={max_bytes}")
    return response


def _check_timeout(call: str, timeout: Any) -> None:
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise ValueError(f"{call}: timeout must be None or a number > 0, got {timeout!r}")


@functional_datapipe("read_from_http")
class HttpReader(IterDataPipe):
    """Gets each URL and yields ``(url, stream)`` of its body (functional name: ``read_from_http``).

    Redirects are followed. An HTTP error status, a failed connection or a timeout raises an error naming
    the URL (``OSError``, ``TimeoutError``), or with ``skip_on_error=True`` the URL is skipped.

    Not resumable inside a body: an HTTP stream cannot be reopened at a position, so a reader that is in
    the middle of one (``readlines``, ``load_from_tar``) raises on ``state_dict()``. Between elements the
    state is exact (the next URL comes from the source).

    Args:
        source_datapipe: yields URLs.
        timeout: seconds to wait for the connection and for each read (default 60; torchdata waits forever).
        skip_on_error: skip URLs that fail instead of raising.
        max_bytes: refuse bodies larger than this (checked against Content-Length and while reading).
        **kwargs: passed to ``requests.get`` (``headers``, ``auth``...).

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> IterableWrapper(["http://127.0.0.1:9/x"]).read_from_http(timeout=5)  # doctest: +ELLIPSIS
        HttpReader(...)
    """

    _call = "read_from_http"
    _repr_fields = ("timeout",)

    def __init__(
        self,
        source_datapipe: Any,
        timeout: float | None = 60.0,
        skip_on_error: bool = False,
        *,
        max_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        check_source(self._call, source_datapipe)
        _check_timeout(self._call, timeout)
        if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 0):
            raise ValueError(f"{self._call}: max_bytes must be None or an int >= 0, got {max_bytes!r}")
        self.source_datapipe = source_datapipe
        self.timeout = timeout
        self.skip_on_error = skip_on_error
        self.max_bytes = max_bytes
        self.kwargs = kwargs
        self.num_skipped = 0

    def _get(self, url: str) -> tuple[str, StreamWrapper]:
        response = http_get(self._call, url, self.timeout, self.max_bytes, self.kwargs)
        return url, StreamWrapper(_Body(url, response, self.max_bytes), name=url)

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        if not self.skip_on_error:
            return map(self._get_checked, srcs[0])
        return _Skipping(self, srcs[0])

    def _get_checked(self, url: Any) -> tuple[str, StreamWrapper]:
        if not isinstance(url, str):
            raise TypeError(f"{self._call}: expected str URLs, got {url!r}")
        return self._get(url)

    def __len__(self) -> int:
        return self._source_len()


class _Skipping:
    """``HttpReader._fetch`` as an iterator whose only state is its source's (so no generator locals)."""

    __slots__ = ("pipe", "src")

    def __init__(self, pipe: HttpReader, src: Iterator[Any]) -> None:
        self.pipe = pipe
        self.src = src

    def __iter__(self) -> _Skipping:
        return self

    def __next__(self) -> Any:
        for url in self.src:
            try:
                return self.pipe._get_checked(url)
            except (OSError, ValueError):
                self.pipe.num_skipped += 1
        raise StopIteration


_GDRIVE = re.compile(r"https?://drive\.google\.com/(?:file/d/([^/?#]+)|(?:open|uc)\?(?:.*&)?id=([^&#]+))")


def _gdrive_id(url: str) -> str | None:
    match = _GDRIVE.match(url)
    return None if match is None else (match.group(1) or match.group(2))


@functional_datapipe("read_from_remote")
class OnlineReader(HttpReader):
    """Like HttpReader, but also downloads Google Drive share links (functional name: ``read_from_remote``).

    A Drive link (``https://drive.google.com/file/d/<id>/...`` or ``...?id=<id>``) is fetched through the
    download endpoint, confirming the large-file warning page when Drive shows one. Not resumable inside a
    body, as HttpReader.

    Args:
        source_datapipe: yields URLs.
        timeout: seconds for the connection and each read (default 60).
        skip_on_error: skip URLs that fail.
        max_bytes: refuse larger bodies.
        **kwargs: passed to ``requests.get``.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> IterableWrapper(["https://example.com/a.txt"]).read_from_remote()  # doctest: +ELLIPSIS
        OnlineReader(...)
    """

    _call = "read_from_remote"
    _gdrive_download = "https://drive.google.com/uc?export=download&id={id}"  # tests point it at loopback

    def _get(self, url: str) -> tuple[str, StreamWrapper]:
        file_id = _gdrive_id(url)
        if file_id is None:
            return super()._get(url)
        download = self._gdrive_download.format(id=file_id)
        response = http_get(self._call, download, self.timeout, self.max_bytes, self.kwargs)
        if "text/html" in response.headers.get("Content-Type", ""):
            page = response.text
            response.close()
            token = re.search(r'name="confirm" value="([^"]+)"', page) or re.search(
                r"confirm=([0-9A-Za-z_-]+)", page
            )
            if token is None:
                raise OSError(
                    f"{self._call}: Google Drive did not serve a file for {url!r} (quota or permissions)"
                )
            response = http_get(
                self._call, f"{download}&confirm={token.group(1)}", self.timeout, self.max_bytes, self.kwargs
            )
        return url, StreamWrapper(_Body(url, response, self.max_bytes), name=url)
