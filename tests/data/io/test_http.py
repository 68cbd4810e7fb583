from __future__ import annotations

import io
import tarfile

import pytest

from loom.data.iter import HttpReader, IterableWrapper, OnlineReader

from .._oracle import torchdata_iter
from ._servers import http_server

pytestmark = pytest.mark.timeout(30)

TEXT = b"".join(b"line %d\n" % i for i in range(50))


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("a.txt", "b.txt"):
            info = tarfile.TarInfo(name)
            info.size = len(TEXT)
            tar.addfile(info, io.BytesIO(TEXT))
    return buf.getvalue()


@pytest.fixture(scope="module")
def server():
    with http_server({"text.txt": TEXT, "data.tar.gz": _tar_bytes(), "big.bin": b"z" * 10_000}) as url:
        yield url


def _read(pairs):
    return [(url, stream.read()) for url, stream in pairs]


def test_http_reader_matches_torchdata(server) -> None:
    td = torchdata_iter()
    urls = [f"{server}/files/text.txt", f"{server}/redirect/big.bin"]
    ours = _read(IterableWrapper(urls).read_from_http())
    theirs = _read(td.HttpReader(td.IterableWrapper(urls)))
    assert ours == theirs == [(urls[0], TEXT), (urls[1], b"z" * 10_000)]


def test_http_streams_feed_readers(server) -> None:
    lines = list(IterableWrapper([f"{server}/files/text.txt"]).read_from_http().readlines(return_path=False))
    assert lines == TEXT.splitlines()
    members = _read(
        IterableWrapper([f"{server}/files/data.tar.gz"]).read_from_remote().load_from_tar(mode="r|gz")
    )
    assert [d for _, d in members] == [TEXT, TEXT]


@pytest.mark.parametrize("path,code", [("/files/nope", 404), ("/error", 500)])
def test_http_errors_name_the_url(server, path, code) -> None:
    url = f"{server}{path}"
    with pytest.raises(OSError, match=rf"read_from_http: HTTP {code} .* for '{url}'"):
        list(IterableWrapper([url]).read_from_http())
    ok = f"{server}/files/text.txt"
    reader = IterableWrapper([url, ok]).read_from_http(skip_on_error=True)
    assert [u for u, _ in reader] == [ok] and reader.num_skipped == 1


def test_http_timeouts_are_errors_not_hangs(server) -> None:
    with pytest.raises(
        TimeoutError, match=rf"read_from_http: no response from '{server}/slow' within timeout=0.5s"
    ):
        list(IterableWrapper([f"{server}/slow"]).read_from_http(timeout=0.5))
    ((url, stream),) = list(IterableWrapper([f"{server}/slow-body"]).read_from_http(timeout=0.5))
    with pytest.raises(OSError, match=rf"reading '{url}' failed"):
        stream.read()
    with pytest.raises(TimeoutError, match="read_from_remote: no response"):
        list(IterableWrapper([f"{server}/slow"]).read_from_remote(timeout=0.5))


def test_http_connection_refused_names_the_url() -> None:
    from ._servers import free_port

    url = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(OSError, match=rf"read_from_http: could not get '{url}'"):
        list(IterableWrapper([url]).read_from_http(timeout=5))


def test_http_max_bytes(server) -> None:
    with pytest.raises(ValueError, match=r"big\.bin' has 10000 bytes, more than max_bytes=100"):
        list(IterableWrapper([f"{server}/files/big.bin"]).read_from_http(max_bytes=100))
    ((_, stream),) = list(IterableWrapper([f"{server}/chunked-big"]).read_from_http(max_bytes=1000))
    with pytest.raises(ValueError, match="chunked-big' is larger than max_bytes=1000"):
        stream.read()
    assert (
        _read(IterableWrapper([f"{server}/files/big.bin"]).read_from_http(max_bytes=10_000))[0][1]
        == b"z" * 10_000
    )


def test_http_state_between_urls_is_exact_and_inside_a_body_is_an_error(server) -> None:
    urls = [f"{server}/files/text.txt", f"{server}/files/big.bin"]
    it = iter(IterableWrapper(urls).read_from_http())
    next(it)
    state = it.state_dict()
    again = iter(IterableWrapper(urls).read_from_http())
    again.load_state_dict(state)
    assert [u for u, _ in again] == urls[1:]
    lines = iter(IterableWrapper(urls).read_from_http().readlines())
    next(lines)
    with pytest.raises(
        RuntimeError, match=r"LineReader is in the middle of '.*text\.txt'.*cannot be reopened"
    ):
        lines.state_dict()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="read_from_http: timeout must be None or a number > 0, got 0"):
        HttpReader(IterableWrapper([]), timeout=0)
    with pytest.raises(ValueError, match="max_bytes must be None or an int >= 0"):
        OnlineReader(IterableWrapper([]), max_bytes=-1)
    with pytest.raises(TypeError, match="read_from_http: expected str URLs, got 3"):
        list(IterableWrapper([3]).read_from_http())


def test_gdrive_links_are_recognized() -> None:
    from loom.data.iter._http import _gdrive_id

    assert _gdrive_id("https://drive.google.com/file/d/abc_123/view?usp=sharing") == "abc_123"
    assert _gdrive_id("https://drive.google.com/uc?export=download&id=XYZ") == "XYZ"
    assert _gdrive_id("https://example.com/file/d/abc") is None


def test_online_reader_follows_the_drive_confirmation_page(server, monkeypatch) -> None:
    monkeypatch.setattr(OnlineReader, "_gdrive_download", server + "/uc?export=download&id={id}")
    url = "https://drive.google.com/file/d/FILEID/view"
    assert _read(IterableWrapper([url]).read_from_remote()) == [(url, b"drive file body")]
    quota = "https://drive.google.com/open?id=quota"
    with pytest.raises(
        OSError, match=r"read_from_remote: Google Drive did not serve a file for '.*id=quota'"
    ):
        list(IterableWrapper([quota]).read_from_remote())
    plain = f"{server}/files/text.txt"
    assert _read(IterableWrapper([plain]).read_from_remote()) == [(plain, TEXT)]
