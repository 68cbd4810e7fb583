from __future__ import annotations

import io
import os
import tarfile
import zipfile

import pytest

from loom.data.iter import Decompressor, IterableWrapper, TarArchiveLoader

from .._checks import assert_resumes_identically
from .._oracle import torchdata_iter
from ._archives import flip_byte, text_members, truncate, write_compressed, write_tar, write_zip


def _read_all(pairs):
    out = []
    for path, stream in pairs:
        out.append((path, stream.read()))
        stream.close()
    return out


@pytest.fixture
def archives(tmp_path):
    members = text_members(5)
    paths = {
        "tar": write_tar(str(tmp_path / "a.tar"), members),
        "tgz": write_tar(str(tmp_path / "b.tar.gz"), members, "w:gz"),
        "tbz": write_tar(str(tmp_path / "c.tar.bz2"), members, "w:bz2"),
        "zip": write_zip(str(tmp_path / "d.zip"), members),
    }
    return paths, members


@pytest.mark.parametrize("kind", ["tar", "tgz", "tbz"])
def test_tar_matches_torchdata_and_members(archives, kind) -> None:
    td = torchdata_iter()
    paths, members = archives
    ours = _read_all(IterableWrapper([paths[kind]]).open_files("b").load_from_tar())
    theirs = _read_all(td.TarArchiveLoader(td.FileOpener(td.IterableWrapper([paths[kind]]), mode="b")))
    assert ours == theirs
    assert ours == [(os.path.join(paths[kind], name), data) for name, data in members.items()]


def test_tar_skips_links_and_directories(tmp_path) -> None:
    path = str(tmp_path / "links.tar")
    with tarfile.open(path, "w") as tar:
        directory = tarfile.TarInfo("d")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        link = tarfile.TarInfo("evil")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
        info = tarfile.TarInfo("ok.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    out = _read_all(IterableWrapper([path]).open_files("b").load_from_tar())
    assert out == [(os.path.join(path, "ok.txt"), b"ok")]


def test_tar_streaming_mode(archives) -> None:
    paths, members = archives
    out = _read_all(IterableWrapper([paths["tgz"]]).open_files("b").load_from_tar(mode="r|*"))
    assert [d for _, d in out] == list(members.values())


def test_tar_resumes_at_every_member(archives) -> None:
    paths, _ = archives
    files = [paths["tar"], paths["tgz"], paths["tar"]]
    assert_resumes_identically(lambda: IterableWrapper(files).open_files("b").load_from_tar().map(_read_pair))
    assert_resumes_identically(
        lambda: IterableWrapper([paths["zip"], paths["zip"]]).open_files("b").load_from_zip().map(_read_pair)
    )


def _read_pair(pair):
    path, stream = pair
    return path, stream.read()


def test_zip_matches_torchdata(archives) -> None:
    td = torchdata_iter()
    paths, members = archives
    ours = _read_all(IterableWrapper([paths["zip"]]).open_files("b").load_from_zip())
    theirs = _read_all(td.ZipArchiveLoader(td.FileOpener(td.IterableWrapper([paths["zip"]]), mode="b")))
    assert ours == theirs
    assert [d for _, d in ours] == list(members.values())


@pytest.mark.parametrize("ext", [".xz", ".bz2"])
def test_xz_bz2_loaders_match_torchdata(tmp_path, ext) -> None:
    td = torchdata_iter()
    data = b"payload " * 1000
    path = write_compressed(str(tmp_path / f"data{ext}"), data)
    pipe = IterableWrapper([path]).open_files("b")
    ours = _read_all(pipe.load_from_xz() if ext == ".xz" else pipe.load_from_bz2())
    theirs_cls = td.XzFileLoader if ext == ".xz" else td.Bz2FileLoader
    theirs = _read_all(theirs_cls(td.FileOpener(td.IterableWrapper([path]), mode="b")))
    assert ours == theirs == [(str(tmp_path / "data"), data)]


@pytest.mark.parametrize("ext", [".gz", ".bz2", ".xz"])
@pytest.mark.parametrize("by", ["extension", "magic", "file_type"])
def test_decompressor_by_extension_magic_and_type(tmp_path, ext, by) -> None:
    data = b"decompress me\n" * 50
    name = f"f{ext}" if by == "extension" else "f.blob"
    path = write_compressed(str(tmp_path / f"tmp{ext}"), data)
    os.rename(path, tmp_path / name)
    file_type = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}[ext] if by == "file_type" else None
    out = _read_all(IterableWrapper([str(tmp_path / name)]).open_files("b").decompress(file_type))
    assert out == [(str(tmp_path / name), data)]
    if by == "extension":
        td = torchdata_iter()
        theirs = _read_all(
            td.Decompressor(td.FileOpener(td.IterableWrapper([str(tmp_path / name)]), mode="b"))
        )
        assert theirs == out


def test_decompressor_archives_and_errors(archives, tmp_path) -> None:
    paths, members = archives
    ((_, tar),) = list(IterableWrapper([paths["tar"]]).open_files("b").decompress())
    assert sorted(tar.getnames()) == sorted(members)
    tar.close()
    ((_, z),) = list(IterableWrapper([paths["zip"]]).open_files("b").decompress())
    assert sorted(z.namelist()) == sorted(members)
    z.close()
    os.rename(paths["tar"], tmp_path / "noext")
    ((_, tar),) = list(IterableWrapper([str(tmp_path / "noext")]).open_files("b").decompress())
    assert sorted(tar.getnames()) == sorted(members)  # found by the "ustar" magic
    tar.close()
    (tmp_path / "plain").write_bytes(b"just text")
    with pytest.raises(ValueError, match=r"decompress: cannot detect the compression of '.*plain'"):
        list(IterableWrapper([str(tmp_path / "plain")]).open_files("b").decompress())
    with pytest.raises(ValueError, match="decompress: file_type must be None or one of"):
        Decompressor(IterableWrapper([]), "rar")
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match=r"decompress: '.*bad\.zip' is not a valid zip archive"):
        list(IterableWrapper([str(bad_zip)]).open_files("b").decompress())


@pytest.mark.parametrize("kind", ["tar", "tgz"])
def test_truncated_tar_raises_naming_the_archive_or_member(archives, tmp_path, kind) -> None:
    paths, _members = archives
    size = os.path.getsize(paths[kind])
    if kind == "tar":  # past the two end-of-archive blocks there is only padding: nothing is lost
        with tarfile.open(paths[kind]) as tar:
            last = tar.getmembers()[-1]
        size = last.offset_data + -(-last.size // 512) * 512 + 1024
    cuts = range(1, size, max(1, size // 40))
    for keep in cuts:
        cut = truncate(paths[kind], keep, str(tmp_path / f"cut{keep}.{kind}"))
        with pytest.raises(ValueError, match=rf"cut{keep}\.{kind}"):
            _read_all(IterableWrapper([cut]).open_files("b").load_from_tar())


def test_corrupt_archives_skip_and_count(archives, tmp_path) -> None:
    paths, members = archives
    cut = truncate(paths["tgz"], os.path.getsize(paths["tgz"]) // 2, str(tmp_path / "cut.tar.gz"))
    loader = IterableWrapper([paths["tar"], cut, paths["tar"]]).open_files("b").load_from_tar(on_error="skip")
    names = [p for p, _ in loader]
    assert len(names) >= 2 * len(members) and loader.num_skipped == 1
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        TarArchiveLoader(IterableWrapper([]), on_error="warn")
    with pytest.raises(ValueError, match="load_from_tar: mode must be a tarfile read mode"):
        TarArchiveLoader(IterableWrapper([]), mode="w")


def test_corrupt_zip_member_fails_its_crc(archives, tmp_path) -> None:
    paths, _members = archives
    with zipfile.ZipFile(paths["zip"]) as z:
        info = z.infolist()[-1]
        offset = info.header_offset + 30 + len(info.filename) + 1
    bad = flip_byte(paths["zip"], offset, str(tmp_path / "bad.zip"))
    with pytest.raises((ValueError, zipfile.BadZipFile), match=r"bad\.zip|CRC|Bad|invalid"):
        _read_all(IterableWrapper([bad]).open_files("b").load_from_zip())
    with pytest.raises(ValueError, match=r"load_from_zip: corrupt or truncated archive '.*trunc\.zip'"):
        list(
            IterableWrapper([truncate(paths["zip"], 50, str(tmp_path / "trunc.zip"))])
            .open_files("b")
            .load_from_zip()
        )


@pytest.mark.parametrize("ext", [".gz", ".bz2", ".xz"])
def test_truncated_or_corrupt_compressed_streams_name_the_file(tmp_path, ext) -> None:
    path = write_compressed(str(tmp_path / f"data{ext}"), bytes(range(256)) * 400)
    size = os.path.getsize(path)
    cut = truncate(path, size // 2, str(tmp_path / f"cut{ext}"))
    with pytest.raises(ValueError, match=rf"error reading '.*cut{ext}': corrupt or truncated data"):
        _read_all(IterableWrapper([cut]).open_files("b").decompress())
    bad = flip_byte(path, size // 2, str(tmp_path / f"bad{ext}"))
    with pytest.raises(ValueError, match=rf"error reading '.*bad{ext}': corrupt or truncated data"):
        _read_all(IterableWrapper([bad]).open_files("b").decompress())
    if ext != ".gz":
        loader = IterableWrapper([cut]).open_files("b")
        loader = loader.load_from_xz() if ext == ".xz" else loader.load_from_bz2()
        with pytest.raises(ValueError, match=r"error reading '.*cut': corrupt or truncated data"):
            _read_all(loader)
