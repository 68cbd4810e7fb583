from __future__ import annotations

import uuid

import pytest

from loom.data.iter import (
    FSSpecFileLister,
    FSSpecFileOpener,
    FSSpecSaver,
    IterableWrapper,
    S3FileLister,
    S3FileLoader,
)

from .._checks import assert_resumes_identically
from .._oracle import torchdata_iter
from ._servers import s3_server

fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def memdir():
    fs = fsspec.filesystem("memory")
    root = f"/loom-{uuid.uuid4().hex}"
    fs.pipe(
        {
            f"{root}/b.txt": b"b1\nb2\n",
            f"{root}/a.txt": b"a1\n",
            f"{root}/c.csv": b"x,y\n",
            f"{root}/sub/d.txt": b"d",
        }
    )
    yield f"memory://{root}", fs, root
    fs.rm(root, recursive=True)


def test_fsspec_lister_and_opener_on_memory(memdir) -> None:
    url, fs, root = memdir
    listed = list(FSSpecFileLister(url))
    assert listed == [f"memory://{root}/{n}" for n in ("a.txt", "b.txt", "c.csv")]
    assert list(IterableWrapper([url]).list_files_by_fsspec("*.txt")) == listed[:2]
    opened = [(u, s.read()) for u, s in FSSpecFileOpener(listed, mode="rb")]
    assert opened == [(u, fs.cat(u[len("memory://") :])) for u in listed]
    text = [(u, s.read()) for u, s in IterableWrapper(listed).open_files_by_fsspec()]
    assert text == [(u, d.decode()) for u, d in opened]


def test_fsspec_matches_torchdata_on_local_files(tmp_path) -> None:
    td = torchdata_iter()
    for name in ("x.txt", "y.txt", "z.bin"):
        (tmp_path / name).write_bytes(name.encode() * 3)
    ours = [(p, s.read()) for p, s in FSSpecFileLister(str(tmp_path), "*.txt").open_files_by_fsspec("rb")]
    theirs = [
        (p, s.read()) for p, s in td.FSSpecFileOpener(td.FSSpecFileLister(str(tmp_path), "*.txt"), mode="rb")
    ]
    assert ours == theirs


def test_fsspec_readers_resume_by_reopening(memdir) -> None:
    url, _, _ = memdir
    assert_resumes_identically(lambda: FSSpecFileLister([url, url]))
    assert_resumes_identically(lambda: FSSpecFileLister(url, "*.txt").open_files_by_fsspec("rb").readlines())


def test_fsspec_saver_on_memory_and_local(memdir, tmp_path) -> None:
    url, fs, root = memdir
    out = list(IterableWrapper([(f"{url}/new/o.bin", b"\x00\x01")]).save_by_fsspec(mode="wb"))
    assert out == [f"{url}/new/o.bin"] and fs.cat(f"{root}/new/o.bin") == b"\x00\x01"
    local = str(tmp_path / "deep" / "o.txt")
    assert list(FSSpecSaver(IterableWrapper([("o", "hello")]), filepath_fn=lambda _: local)) == [local]
    with open(local) as f:
        assert f.read() == "hello"


def test_fsspec_errors(memdir) -> None:
    url, _, _ = memdir
    with pytest.raises(
        FileNotFoundError, match=r"list_files_by_fsspec: .*missing.* is neither a file nor a directory"
    ):
        list(FSSpecFileLister(f"{url}/missing"))
    with pytest.raises(FileNotFoundError):
        list(FSSpecFileOpener([f"{url}/missing.txt"], mode="rb"))


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")  # moto[server], from the [test] extra
    boto3 = pytest.importorskip("boto3")
    with s3_server() as options:
        client = boto3.client(
            "s3",
            endpoint_url=options["client_kwargs"]["endpoint_url"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="loom")
        objects = {f"data/part-{i}.txt": (f"row {i}\n" * (i + 1)).encode() for i in range(4)}
        objects["data/nested/deep.txt"] = b"deep\n"
        objects["other/x.txt"] = b"x"
        for key, body in objects.items():
            client.put_object(Bucket="loom", Key=key, Body=body)
        yield options, objects


@pytest.mark.timeout(60)
def test_s3_listing_and_loading_through_moto(s3) -> None:
    options, objects = s3
    listed = list(S3FileLister(["s3://loom/data/"], -1, 5000, "us-east-1", **options))  # torchdata's order
    expected = sorted(f"s3://loom/{k}" for k in objects if k.startswith("data/"))
    assert listed == expected
    assert list(IterableWrapper(["s3://loom/data/part-"]).list_files_by_s3(**options)) == expected[1:]
    loaded = [(u, s.read()) for u, s in S3FileLoader(listed, 5000, "us-east-1", 1 << 20, **options)]
    assert loaded == [(u, objects[u[len("s3://loom/") :]]) for u in listed]
    assert list(FSSpecFileLister("s3://loom/data", "*.txt", **options)) == expected[1:]
    with pytest.raises(ValueError, match="list_files_by_s3: expected s3:// URLs, got 'loom/data'"):
        list(S3FileLister(["loom/data"], **options))


@pytest.mark.timeout(60)
def test_s3_resume_and_save(s3) -> None:
    options, _ = s3

    def pipe():
        return S3FileLister(["s3://loom/data/part-"], **options).load_files_by_s3(**options).readlines()

    assert_resumes_identically(pipe, every=3)
    out = list(IterableWrapper([("s3://loom/saved/o.bin", b"saved")]).save_by_fsspec(mode="wb", **options))
    assert [(u, s.read()) for u, s in S3FileLoader(out, **options)] == [("s3://loom/saved/o.bin", b"saved")]


def test_missing_optional_library_names_the_extra(monkeypatch) -> None:
    import sys

    from loom.data.iter._fsspec import need

    monkeypatch.setitem(sys.modules, "s3fs", None)  # makes `import s3fs` fail
    with pytest.raises(
        ImportError, match=r"list_files_by_s3 needs the `s3fs` package: pip install loom\[s3\]"
    ):
        list(S3FileLister(["s3://bucket/x"]))
    with pytest.raises(
        ImportError, match=r"demo needs the `no_such_lib_xyz` package: pip install loom\[io\]"
    ):
        need("no_such_lib_xyz", "io", "demo")
