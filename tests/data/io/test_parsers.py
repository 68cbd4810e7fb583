from __future__ import annotations

import io
import json
import os

import pytest

from loom.data.iter import CSVDictParser, CSVParser, FileLister, IterableWrapper, JsonParser, LineReader

from .._checks import assert_resumes_identically
from .._oracle import torchdata_iter
from ._archives import write_compressed, write_tar

TEXTS = {
    "a.txt": "first\nsecond\r\nthird",
    "b.txt": "",
    "c.txt": '\n\nx,y\n1,2\n"multi\nline",3\n',
    "d.txt": "only one line\n",
}


@pytest.fixture
def texts(tmp_path):
    for name, text in TEXTS.items():
        with open(tmp_path / name, "w", newline="") as f:
            f.write(text)
    return str(tmp_path)


LINE_KWARGS = [{}, {"skip_lines": 1}, {"decode": True}, {"strip_newline": False, "return_path": False}]


@pytest.mark.parametrize("mode", ["r", "b"])
@pytest.mark.parametrize("kwargs", LINE_KWARGS)
def test_line_reader_matches_torchdata_and_resumes(texts, mode, kwargs) -> None:
    td = torchdata_iter()
    ours = list(LineReader(FileLister(texts).open_files(mode), **kwargs))
    theirs = list(td.LineReader(td.FileOpener(td.FileLister(texts), mode=mode), **kwargs))
    assert ours == theirs
    assert_resumes_identically(lambda: LineReader(FileLister(texts).open_files(mode), **kwargs))


def test_line_reader_matches_plain_python_on_memory_streams() -> None:
    text = "a\nb\r\n\nc"
    ours = list(IterableWrapper([("s", io.StringIO(text))], deepcopy=False).readlines())
    assert ours == [("s", line.strip("\r\n")) for line in io.StringIO(text)]


def test_line_reader_resumes_inside_compressed_and_archived_files(tmp_path) -> None:
    gz = write_compressed(str(tmp_path / "x.txt.gz"), b"".join(b"g%d\n" % i for i in range(7)))
    tar = write_tar(str(tmp_path / "t.tar.gz"), {"a.txt": b"1\n2\n3\n", "b.txt": b"4\n5"}, "w:gz")

    def gz_pipe():
        return IterableWrapper([gz]).open_files("b").decompress().readlines(decode=True)

    assert [line for _, line in gz_pipe()] == [f"g{i}" for i in range(7)]
    assert_resumes_identically(gz_pipe)

    def tar_pipe():
        return IterableWrapper([tar, tar]).open_files("b").load_from_tar().readlines()

    assert [line for _, line in tar_pipe()] == [b"1", b"2", b"3", b"4", b"5"] * 2
    assert_resumes_identically(tar_pipe)


def test_line_reader_state_of_a_stream_that_cannot_reopen() -> None:
    it = iter(IterableWrapper([("mem", io.StringIO("a\nb\n"))], deepcopy=False).readlines())
    next(it)
    with pytest.raises(RuntimeError, match=r"LineReader is in the middle of 'mem'.*cannot be reopened"):
        it.state_dict()


def test_line_reader_names_the_file_on_corrupt_data(tmp_path) -> None:
    gz = write_compressed(str(tmp_path / "x.txt.gz"), b"".join(b"line %d\n" % i for i in range(20000)))
    with open(gz, "rb") as f:
        data = f.read()
    with open(gz, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"readlines: error reading '.*x\.txt\.gz' after line \d+"):
        list(IterableWrapper([gz]).open_files("b").decompress().readlines())


CSV_KWARGS = [{}, {"skip_lines": 2, "return_path": True}, {"as_tuple": True}, {"delimiter": ";"}]


@pytest.mark.parametrize("mode", ["r", "b"])
@pytest.mark.parametrize("kwargs", CSV_KWARGS)
@pytest.mark.parametrize("as_dict", [False, True])
def test_csv_parsers_match_torchdata_and_resume(texts, mode, kwargs, as_dict) -> None:
    td = torchdata_iter()
    ours_cls, theirs_cls = (CSVDictParser, td.CSVDictParser) if as_dict else (CSVParser, td.CSVParser)
    ours = list(ours_cls(FileLister(texts).open_files(mode), **kwargs))
    theirs = list(theirs_cls(td.FileOpener(td.FileLister(texts), mode=mode), **kwargs))
    assert ours == theirs
    assert_resumes_identically(lambda: ours_cls(FileLister(texts).open_files(mode), **kwargs))


def test_csv_bad_row_raises_with_file_and_line_or_skips(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('a,b\n1,2\n3,"x"y\n4,5\n')
    pipe = FileLister(str(tmp_path)).open_files()
    with pytest.raises(ValueError, match=r"parse_csv: bad CSV row in '.*bad\.csv' at line 3"):
        list(pipe.parse_csv(strict=True))
    rows = list(FileLister(str(tmp_path)).open_files().parse_csv(strict=True, on_error="skip"))
    assert rows == [["a", "b"], ["1", "2"], ["4", "5"]]
    assert_resumes_identically(
        lambda: FileLister(str(tmp_path)).open_files().parse_csv(strict=True, on_error="skip")
    )
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        CSVParser(IterableWrapper([]), on_error="ignore")
    with pytest.raises(TypeError, match="parse_csv: bad CSV format parameters"):
        CSVParser(IterableWrapper([]), no_such_param=1)


def test_json_parser_matches_json_loads_and_names_bad_files(tmp_path) -> None:
    docs = {"1.json": {"a": [1, 2.5, None]}, "2.json": ["x", {"y": True}]}
    for name, doc in docs.items():
        (tmp_path / name).write_text(json.dumps(doc))
    ours = list(FileLister(str(tmp_path)).open_files().parse_json_files())
    assert ours == [(str(tmp_path / n), d) for n, d in docs.items()]
    (tmp_path / "3.json").write_text('{"broken": ')
    with pytest.raises(ValueError, match=r"parse_json_files: invalid JSON in '.*3\.json': .*line 1 column"):
        list(FileLister(str(tmp_path)).open_files().parse_json_files())
    pipe = FileLister(str(tmp_path)).open_files().parse_json_files(on_error="skip")
    assert [os.path.basename(p) for p, _ in pipe] == ["1.json", "2.json"]
    assert pipe.num_skipped == 1
    assert_resumes_identically(
        lambda: FileLister(str(tmp_path)).open_files().parse_json_files(on_error="skip")
    )
    assert isinstance(pipe, JsonParser)
