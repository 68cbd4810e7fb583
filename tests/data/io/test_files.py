from __future__ import annotations

import os
import pickle
import re
import resource

import pytest
import torch

from loom.data.iter import FileLister, FileOpener, IterableWrapper, Saver, ShardExpander, StreamReader

from .._checks import assert_resumes_identically
from .._oracle import torchdata_iter


@pytest.fixture
def tree(tmp_path):
    files = {
        "b.txt": "bee\n",
        "a.txt": "ay\nay\n",
        "c.csv": "1,2\n",
        "sub/d.txt": "dee",
        "sub/deeper/e.txt": "e",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path), files


@pytest.mark.parametrize("masks", ["", "*.txt", ["*.csv", "b*"]])
@pytest.mark.parametrize("recursive", [False, True])
@pytest.mark.parametrize("abspath", [False, True])
def test_file_lister_matches_torchdata(tree, masks, recursive, abspath) -> None:
    td = torchdata_iter()
    root, _ = tree
    ours = list(FileLister(root, masks, recursive=recursive, abspath=abspath))
    theirs = list(td.FileLister(root, masks, recursive=recursive, abspath=abspath))
    assert ours == theirs


def test_file_lister_roots_and_errors(tree) -> None:
    root, _ = tree
    a = os.path.join(root, "a.txt")
    assert list(FileLister([a, root], "*.csv")) == [os.path.join(root, "c.csv")]
    assert list(IterableWrapper([root]).list_files("a*")) == [a]
    with pytest.raises(FileNotFoundError, match="nope"):
        list(FileLister(os.path.join(root, "nope")))
    with pytest.raises(TypeError, match="list_files: root must be"):
        FileLister(3)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="non_deterministic=True is not resumable"):
        iter(FileLister(root, non_deterministic=True)).state_dict()


def test_file_lister_resumes(tree) -> None:
    root, _ = tree
    assert_resumes_identically(lambda: FileLister([root, root], recursive=True))


@pytest.mark.parametrize("mode", ["r", "b", "rb", "t"])
def test_file_opener_matches_torchdata(tree, mode) -> None:
    td = torchdata_iter()
    root, _ = tree
    ours = [(p, s.read()) for p, s in FileLister(root, recursive=True).open_files(mode)]
    theirs = []
    for p, s in td.FileOpener(td.FileLister(root, recursive=True), mode=mode):
        theirs.append((p, s.read()))
        s.close()
    assert ours == theirs


def test_file_opener_encoding_and_errors(tmp_path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("café".encode("latin-1"))
    ((_, stream),) = list(IterableWrapper([str(path)]).open_files(encoding="latin-1"))
    assert stream.read() == "café"
    stream.close()
    with pytest.raises(ValueError, match="open_files: mode must be one of"):
        FileOpener(IterableWrapper([]), mode="w")
    with pytest.raises(ValueError, match="binary mode doesn't take an encoding"):
        FileOpener(IterableWrapper([]), mode="b", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        list(FileOpener(IterableWrapper([str(tmp_path / "missing.txt")])))
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        list(FileOpener(IterableWrapper([str(tmp_path)])))


def test_streams_close_on_consumption_and_collection(tree) -> None:
    root, _ = tree
    it = iter(FileLister(root).open_files("b"))
    _, stream = next(it)
    raw = stream.file_obj
    assert not raw.closed
    del stream
    assert raw.closed  # dropped -> closed at once (reference counting)
    _, stream = next(it)
    assert list(stream)  # iterating a StreamWrapper to the end closes it
    assert stream.closed


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_ten_thousand_small_files_with_few_descriptors(tmp_path) -> None:
    for i in range(10_000):
        _write(os.path.join(tmp_path, f"{i:05d}.txt"), f"{i}\n".encode())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    try:
        lines = list(FileLister(str(tmp_path)).open_files().readlines(return_path=False))
        reads = [s.read() for _, s in FileLister(str(tmp_path)).open_files("b")]
        # 10,000 pairs waiting in a shuffle buffer, or in a list, hold no descriptors until read
        shuffled = [
            s.read() for _, s in FileLister(str(tmp_path)).open_files("b").shuffle(buffer_size=10_000)
        ]
        held = list(FileLister(str(tmp_path)).open_files("b"))
        held_reads = []
        for _, s in held:
            with s:
                held_reads.append(s.read())
        del held
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert lines == [str(i) for i in range(10_000)]
    assert reads == held_reads == [f"{i}\n".encode() for i in range(10_000)]
    assert sorted(shuffled) == sorted(reads)


@pytest.mark.parametrize("chunk", [None, 1, 3, 100])
def test_stream_reader_matches_torchdata_and_resumes(tree, chunk) -> None:
    td = torchdata_iter()
    root, _ = tree
    ours = list(FileLister(root, recursive=True).open_files("b").read_from_stream(chunk))
    theirs = list(td.StreamReader(td.FileOpener(td.FileLister(root, recursive=True), mode="b"), chunk=chunk))
    assert ours == theirs
    assert_resumes_identically(
        lambda: FileLister(root, recursive=True).open_files("b").read_from_stream(chunk)
    )
    with pytest.raises(ValueError, match="chunk must be None or an int >= 1, got 0"):
        StreamReader(IterableWrapper([]), 0)


def test_saver_writes_atomically(tmp_path) -> None:
    items = [(str(tmp_path / "x" / f"{i}.bin"), bytes([i]) * 10) for i in range(5)]
    out = list(IterableWrapper(items).save_to_disk(mode="wb"))
    assert out == [p for p, _ in items]
    for p, data in items:
        with open(p, "rb") as f:
            assert f.read() == data

    class Failing:
        def read(self, n: int) -> bytes:
            raise OSError("disk on fire")

    target = tmp_path / "x" / "broken.bin"
    with pytest.raises(OSError, match="disk on fire"):
        list(IterableWrapper([(str(target), Failing())]).save_to_disk(mode="wb"))
    assert not target.exists()
    assert sorted(os.listdir(tmp_path / "x")) == sorted(os.path.basename(p) for p, _ in items)
    named = list(
        IterableWrapper([("k", "text")]).save_to_disk(filepath_fn=lambda k: str(tmp_path / f"{k}.txt"))
    )
    assert named == [str(tmp_path / "k.txt")] and (tmp_path / "k.txt").read_text() == "text"
    with pytest.raises(ValueError, match="save_to_disk: mode must be one of"):
        Saver(IterableWrapper([]), mode="r")


@pytest.mark.parametrize(
    "patterns", [["data-{000..011}.tar"], ["a{0..2}b{7..9}", "plain"], ["s-{8..12}.tar", "x{05..15}"]]
)
def test_shard_expander_matches_torchdata_and_resumes(patterns) -> None:
    td = torchdata_iter()
    assert list(ShardExpander(IterableWrapper(patterns))) == list(
        td.ShardExpander(td.IterableWrapper(patterns))
    )
    assert_resumes_identically(lambda: IterableWrapper(patterns).shard_expand())


def test_shard_expander_bad_patterns() -> None:
    with pytest.raises(ValueError, match=r"shard_expand: empty range \{5..1\}"):
        list(IterableWrapper(["a{5..1}"]).shard_expand())
    with pytest.raises(ValueError, match="low bound is longer"):
        list(IterableWrapper(["a{05..5}"]).shard_expand())
    with pytest.raises(ValueError, match="zero-padded low bound"):
        list(IterableWrapper(["a{05..100}"]).shard_expand())
    with pytest.raises(ValueError, match="malformed brace range"):
        list(IterableWrapper(["a{1..}"]).shard_expand())


def test_pipelines_pickle_and_run_in_dataloader_workers(tree) -> None:
    root, _ = tree
    pipe = FileLister(root, recursive=True).sharding_filter().open_files().readlines()
    expected = list(pipe)
    assert list(pickle.loads(pickle.dumps(pipe))) == expected
    loader = torch.utils.data.DataLoader(pipe, batch_size=None, num_workers=2, multiprocessing_context="fork")
    assert sorted(tuple(x) for x in loader) == sorted(expected)  # default_convert makes lists
