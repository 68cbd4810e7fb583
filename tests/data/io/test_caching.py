from __future__ import annotations

import hashlib
import io
import multiprocessing
import os

import pytest

from loom.data.iter import EndOnDiskCacheHolder, IterableWrapper

from .._checks import assert_resumes_identically
from .._oracle import torchdata_iter
from ._archives import write_tar


def _content(name: str) -> bytes:
    return f"content of {name}\n".encode() * 3


class Fetcher:
    """A picklable 'download': records which names it fetched."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.calls: list[str] = []

    def path(self, name: str) -> str:
        return os.path.join(self.root, f"{name}.bin")

    def __call__(self, name: str) -> tuple[str, bytes]:
        self.calls.append(name)
        return self.path(name), _content(name)


def _cache_pipe(names, fetch, **holder_kwargs):
    return (
        IterableWrapper(names).on_disk_cache(filepath_fn=fetch.path, **holder_kwargs).map(fetch).end_caching()
    )


def test_cache_fetches_once_and_keeps_source_order(tmp_path) -> None:
    names = [f"n{i}" for i in range(8)]
    fetch = Fetcher(str(tmp_path))
    first = list(_cache_pipe(names, fetch))
    assert first == [fetch.path(n) for n in names] and fetch.calls == names
    for n in names:
        with open(fetch.path(n), "rb") as f:
            assert f.read() == _content(n)
    os.remove(fetch.path("n3"))
    os.remove(fetch.path("n6"))
    fetch.calls.clear()
    assert list(_cache_pipe(names, fetch)) == first  # cached and new paths interleave in source order
    assert fetch.calls == ["n3", "n6"]


def _as_stream(path: str, content: bytes) -> tuple[str, io.BytesIO]:
    return path, io.BytesIO(content)


def test_cache_outputs_match_torchdata_as_a_set(tmp_path) -> None:
    td = torchdata_iter()
    pytest.importorskip("portalocker")  # torchdata's cache needs it
    names = [f"n{i}" for i in range(5)]
    ours_fetch = Fetcher(str(tmp_path / "ours"))
    theirs_fetch = Fetcher(str(tmp_path / "theirs"))
    os.makedirs(theirs_fetch.root)
    for fetch in (ours_fetch, theirs_fetch):
        os.makedirs(fetch.root, exist_ok=True)
        with open(fetch.path("n2"), "wb") as f:
            f.write(_content("n2"))
    ours = list(_cache_pipe(names, ours_fetch))
    # torchdata's writer joins the data it is given as an iterable of chunks: hand it a file object.
    theirs = list(
        td.IterableWrapper(names)
        .on_disk_cache(filepath_fn=theirs_fetch.path)
        .map(lambda name: _as_stream(*theirs_fetch(name)))
        .end_caching()
    )
    assert sorted(os.path.basename(p) for p in ours) == sorted(os.path.basename(p) for p in theirs)
    assert ours_fetch.calls == theirs_fetch.calls == ["n0", "n1", "n3", "n4"]


def test_cache_has_no_buffer_limit(tmp_path) -> None:
    names = [f"n{i}" for i in range(1500)]
    fetch = Fetcher(str(tmp_path))
    for n in names[:-1]:
        with open(fetch.path(n), "wb") as f:
            f.write(b"x")
    assert list(_cache_pipe(names, fetch)) == [fetch.path(n) for n in names]
    assert fetch.calls == ["n1499"]


def test_cache_resumes(tmp_path) -> None:
    names = [f"n{i}" for i in range(6)]
    fetch = Fetcher(str(tmp_path))
    with open(fetch.path("n1"), "wb") as f:
        f.write(b"cached")
    assert_resumes_identically(lambda: _cache_pipe(names, fetch))


def test_cache_hash_mismatch_refetches_and_bad_data_raises(tmp_path) -> None:
    fetch = Fetcher(str(tmp_path))
    good = {fetch.path("a"): hashlib.sha256(_content("a")).hexdigest()}
    with open(fetch.path("a"), "wb") as f:
        f.write(b"stale")
    assert list(_cache_pipe(["a"], fetch, hash_dict=good)) == [fetch.path("a")]
    assert fetch.calls == ["a"]
    with open(fetch.path("a"), "rb") as f:
        assert f.read() == _content("a")
    bad = {fetch.path("b"): "0" * 64}
    with pytest.raises(
        RuntimeError, match=r"end_caching: the sha256 of '.*b\.bin' is [0-9a-f]+, expected 0+"
    ):
        list(_cache_pipe(["b"], fetch, hash_dict=bad))
    assert not os.path.exists(fetch.path("b"))


class FailingStream:
    def __init__(self) -> None:
        self.calls = 0

    def read(self, *args):
        raise OSError("connection dropped")


def test_cache_writes_atomically(tmp_path) -> None:
    target = str(tmp_path / "f.bin")
    pipe = (
        IterableWrapper(["f"])
        .on_disk_cache(filepath_fn=lambda _: target)
        .map(lambda _: (target, FailingStream()))
        .end_caching(skip_read=True)
    )
    with pytest.raises(OSError, match="connection dropped"):
        list(pipe)
    assert os.listdir(tmp_path) == [] or all(n.endswith(".lock") for n in os.listdir(tmp_path))


def _extract_pipe(tar_path: str, cache: str, root: str | None = None):
    marker = os.path.join(cache, "extracted", "a.txt")
    pipe = (
        IterableWrapper([tar_path])
        .on_disk_cache(filepath_fn=lambda _: marker)
        .open_files("b")
        .load_from_tar()
    )
    return pipe.end_caching(
        filepath_fn=lambda p: os.path.join(cache, "extracted", os.path.relpath(p, tar_path)), root=root
    )


@pytest.mark.parametrize("bad_name", ["../../evil.txt", "sub/../../../evil.txt"])
def test_cache_rejects_traversal_member_names(tmp_path, bad_name) -> None:
    tar_path = write_tar(str(tmp_path / "a.tar"), {"a.txt": b"ok", bad_name: b"evil"})
    cache = str(tmp_path / "cache")
    with pytest.raises(
        ValueError, match=r"end_caching: refusing to write '.*evil\.txt': it resolves outside the cache root"
    ):
        list(_extract_pipe(tar_path, cache))
    assert not any("evil" in f for _, _, files in os.walk(tmp_path) for f in files)


def test_cache_rejects_absolute_names_and_symlinks(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    abs_name = str(outside / "abs.txt")
    tar_path = write_tar(str(tmp_path / "a.tar"), {abs_name: b"evil"})
    cache = tmp_path / "cache"
    pipe = IterableWrapper([tar_path]).on_disk_cache(filepath_fn=lambda _: str(cache / "x.txt"))
    with pytest.raises(ValueError, match="resolves outside the cache root"):
        list(pipe.open_files("b").load_from_tar().end_caching())  # the member path is the absolute name
    (cache / "extracted").mkdir(parents=True)
    os.symlink(outside, cache / "extracted" / "link")
    tar_path = write_tar(str(tmp_path / "b.tar"), {"link/x.txt": b"evil"})
    with pytest.raises(ValueError, match="resolves outside the cache root"):
        list(_extract_pipe(tar_path, str(cache), root=str(cache)))
    assert os.listdir(outside) == []


def test_cache_extracts_safe_archives(tmp_path) -> None:
    tar_path = write_tar(str(tmp_path / "a.tar"), {"a.txt": b"A", "d/b.txt": b"B"})
    out = list(_extract_pipe(tar_path, str(tmp_path / "cache")))
    assert [os.path.relpath(p, tmp_path) for p in out] == ["cache/extracted/a.txt", "cache/extracted/d/b.txt"]
    with open(out[1], "rb") as f:
        assert f.read() == b"B"


def test_end_caching_errors() -> None:
    with pytest.raises(
        RuntimeError, match=r"end_caching: no OnDiskCacheHolder \(.on_disk_cache\(\)\) upstream"
    ):
        IterableWrapper([]).end_caching()
    holder = IterableWrapper([]).on_disk_cache()
    holder.end_caching()
    with pytest.raises(RuntimeError, match="end_caching: can be invoked once per OnDiskCacheHolder"):
        EndOnDiskCacheHolder(holder)
    with pytest.raises(ValueError, match="mutually exclusive"):
        IterableWrapper([]).on_disk_cache().end_caching(filepath_fn=str, same_filepath_fn=True)


def _worker(root: str, names: list[str], out: multiprocessing.Queue) -> None:
    import time

    def slow_fetch(name: str) -> tuple[str, bytes]:
        time.sleep(0.002)
        return os.path.join(root, f"{name}.bin"), _content(name) * 200

    pipe = (
        IterableWrapper(names)
        .on_disk_cache(filepath_fn=lambda n: os.path.join(root, f"{n}.bin"))
        .map(slow_fetch)
        .end_caching(timeout=30)
    )
    out.put(list(pipe))


@pytest.mark.multiprocess
@pytest.mark.timeout(60)
def test_cache_with_concurrent_writers(tmp_path) -> None:
    names = [f"n{i}" for i in range(40)]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(str(tmp_path), order, queue)) for order in (names, names[::-1])
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=50) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    expected = [os.path.join(tmp_path, f"{n}.bin") for n in names]
    assert sorted(results) == sorted([expected, expected[::-1]])
    for n in names:
        with open(os.path.join(tmp_path, f"{n}.bin"), "rb") as f:
            assert f.read() == _content(n) * 200
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]
