from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
import torch

from loom.data.iter import HashChecker, IterableWrapper, RoutedDecoder

from .._checks import assert_resumes_identically
from .._oracle import torchdata_iter
from ._archives import write_tar


def _png(seed: int) -> tuple[bytes, np.ndarray]:
    from PIL import Image

    arr = np.random.default_rng(seed).integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue(), arr


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@pytest.fixture
def shards(tmp_path):
    members, arrays = {}, {}
    for i in range(6):
        png, arr = _png(i)
        arrays[f"s{i:03d}"] = arr
        members[f"s{i:03d}.png"] = png
        members[f"s{i:03d}.cls"] = str(i % 3).encode()
        members[f"s{i:03d}.meta.json"] = json.dumps({"i": i}).encode()
        if i % 2:
            members[f"s{i:03d}.feat.npy"] = _npy(np.arange(i, dtype=np.float32))
    paths = [
        write_tar(str(tmp_path / "a.tar"), dict(list(members.items())[:10])),
        write_tar(str(tmp_path / "b.tar"), dict(list(members.items())[10:])),
    ]
    return paths, arrays


def _read(pair):
    return pair[0], pair[1].read()


def test_webdataset_matches_torchdata(shards) -> None:
    td = torchdata_iter()
    paths, _ = shards
    ours = list(IterableWrapper(paths).open_files("b").load_from_tar().map(_read).webdataset())
    theirs = list(
        td.WebDataset(td.TarArchiveLoader(td.FileOpener(td.IterableWrapper(paths), mode="b")).map(_read))
    )
    assert ours == theirs
    assert [s["__key__"].rsplit("/", 1)[1] for s in ours] == ["s000", "s001", "s002", "s003", "s004", "s005"]


def test_webdataset_resumes_with_streams_and_bytes(shards) -> None:
    paths, _ = shards

    def with_bytes():
        return IterableWrapper(paths).open_files("b").load_from_tar().map(_read).webdataset()

    def with_streams():
        return IterableWrapper(paths).open_files("b").load_from_tar().webdataset().map(_read_sample)

    assert_resumes_identically(with_bytes)
    assert list(with_streams()) == list(with_bytes())
    assert_resumes_identically(with_streams)


def _read_sample(sample):
    return {k: v if k == "__key__" else v.read() for k, v in sample.items()}


def test_routed_decoder_by_extension(shards) -> None:
    paths, arrays = shards
    decoded = list(IterableWrapper(paths).open_files("b").load_from_tar().routed_decode())
    by_name = {p.rsplit("/", 1)[1]: v for p, v in decoded}
    key = "s004"
    expected = torch.from_numpy(arrays[key]).permute(2, 0, 1).float() / 255
    assert torch.allclose(by_name[f"{key}.png"], expected)
    assert by_name[f"{key}.cls"] == 1
    assert by_name[f"{key}.meta.json"] == {"i": 4}
    assert np.array_equal(by_name["s003.feat.npy"], np.arange(3, dtype=np.float32))
    from loom.data.iter import decoder_basichandlers, decoder_imagehandler

    raw = list(
        IterableWrapper(paths)
        .open_files("b")
        .load_from_tar()
        .routed_decode(decoder_imagehandler("numpyuint8"), decoder_basichandlers)
    )
    assert np.array_equal(dict(raw)[f"{paths[0]}/s000.png"], arrays["s000"])


def test_routed_decoder_custom_handlers_and_errors() -> None:
    def upper(ext, data):
        return data.decode().upper() if ext == "txt" else None

    pipe = IterableWrapper([("a.txt", b"hi"), ("b.bin", b"\x00")]).routed_decode()
    pipe.add_handler(upper)
    assert list(pipe) == [("a.txt", "HI"), ("b.bin", b"\x00")]
    with pytest.raises(ValueError, match=r"routed_decode: cannot decode 'x\.json'"):
        list(IterableWrapper([("x.json", b"{not json")]).routed_decode())
    with pytest.raises(ValueError, match=r"routed_decode: cannot decode 'p\.npy'"):
        arr = np.array([{"a": 1}], dtype=object)
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=True)
        list(IterableWrapper([("p.npy", buf.getvalue())]).routed_decode())  # pickled arrays are refused
    with pytest.raises(TypeError, match="routed_decode: handlers must be callable"):
        RoutedDecoder(IterableWrapper([]), "nope")


@pytest.mark.parametrize("hash_type", ["md5", "sha256"])
def test_hash_checker(tmp_path, hash_type) -> None:
    files = {name: name.encode() * 100 for name in ("x", "y")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    hashes = {str(tmp_path / n): hashlib.new(hash_type, d).hexdigest() for n, d in files.items()}
    out = [
        (p, s.read())
        for p, s in IterableWrapper(sorted(hashes)).open_files("b").check_hash(hashes, hash_type)
    ]
    assert out == [(str(tmp_path / n), d) for n, d in sorted(files.items())]
    td = torchdata_iter()
    theirs = [
        (p, s.read())
        for p, s in td.HashChecker(
            td.FileOpener(td.IterableWrapper(sorted(hashes)), mode="b"), hashes, hash_type
        )
    ]
    assert theirs == out
    wrong = dict(hashes)
    wrong[str(tmp_path / "y")] = "0" * 64
    with pytest.raises(
        RuntimeError, match=rf"check_hash: the {hash_type} of '.*y' is [0-9a-f]+, expected 0+"
    ):
        list(IterableWrapper(sorted(hashes)).open_files("b").check_hash(wrong, hash_type))
    with pytest.raises(RuntimeError, match="check_hash: no expected hash for 'z'"):
        list(IterableWrapper([("z", b"")]).check_hash(hashes, hash_type))
    with pytest.raises(ValueError, match="check_hash: hash_type must be one of"):
        HashChecker(IterableWrapper([]), {}, "sha1")
