from __future__ import annotations

import struct

import pytest
import torch

from loom.data.iter import IterableWrapper, ParquetDataFrameLoader

from .._checks import assert_resumes_identically


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_example(features: dict) -> bytes:
    """A tf.train.Example in protobuf wire format, written independently of the loader's decoder."""
    entries = b""
    for name, values in features.items():
        if isinstance(values[0], bytes):
            feature = _field(1, b"".join(_field(1, v) for v in values))
        elif isinstance(values[0], float):
            feature = _field(2, _field(1, struct.pack(f"<{len(values)}f", *values)))
        else:
            feature = _field(3, _field(1, b"".join(_varint(v) for v in values)))
        entries += _field(1, _field(1, name.encode()) + _field(2, feature))
    return _field(1, entries)


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = _crc32c_bitwise(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_records(path, records: list[bytes]) -> None:
    with open(path, "wb") as f:
        for data in records:
            header = struct.pack("<Q", len(data))
            f.write(header + struct.pack("<I", _masked(header)) + data + struct.pack("<I", _masked(data)))


EXAMPLES = [
    {"img": [b"\x00\x01", b"raw"], "label": [3], "score": [0.5, -1.25]},
    {"img": [b"x"], "label": [-7], "score": [2.0, 4.0]},
    {"img": [b""], "label": [1 << 40], "score": [0.0, 1.0]},
]


def test_crc32c_check_value() -> None:
    from loom.data.iter._records import crc32c

    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert crc32c(b"loom tfrecord") == _crc32c_bitwise(b"loom tfrecord")


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a
    )


def test_tfrecord_loader_decodes_examples(tmp_path) -> None:
    path = tmp_path / "d.tfrecord"
    write_records(path, [encode_example(e) for e in EXAMPLES])
    out = list(IterableWrapper([str(path)]).open_files("b").load_from_tfrecord())
    expected = [
        {
            "img": e["img"],
            "label": torch.tensor(e["label"], dtype=torch.int64),
            "score": torch.tensor(e["score"], dtype=torch.float32),
        }
        for e in EXAMPLES
    ]
    assert len(out) == len(expected) and all(_same(a, b) for a, b in zip(out, expected))
    spec = {"score": ((2, 1), torch.float64)}
    shaped = list(IterableWrapper([str(path)]).open_files("b").load_from_tfrecord(spec))
    assert [list(s) for s in shaped] == [["score"]] * 3
    assert torch.equal(shaped[0]["score"], torch.tensor([[0.5], [-1.25]], dtype=torch.float64))


def test_tfrecord_resumes_at_every_record(tmp_path) -> None:
    path = tmp_path / "d.tfrecord"
    write_records(path, [encode_example({"label": [i]}) for i in range(6)])

    def pipe():
        return (
            IterableWrapper([str(path), str(path)])
            .open_files("b")
            .load_from_tfrecord()
            .map(lambda e: e["label"])
        )

    assert_resumes_identically(pipe)


def test_tfrecord_bad_crc_and_truncation(tmp_path) -> None:
    path = tmp_path / "d.tfrecord"
    write_records(path, [encode_example(e) for e in EXAMPLES])
    data = bytearray(path.read_bytes())
    bad = tmp_path / "bad.tfrecord"
    data[20] ^= 0x01  # inside the first record's payload
    bad.write_bytes(bytes(data))
    with pytest.raises(
        ValueError,
        match=r"load_from_tfrecord: corrupt or truncated TFRecord file '.*bad\.tfrecord' after record 0: record 0: bad data CRC",
    ):
        list(IterableWrapper([str(bad)]).open_files("b").load_from_tfrecord())
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"cut\.tfrecord' after record 2: record 2: truncated data"):
        list(IterableWrapper([str(cut)]).open_files("b").load_from_tfrecord())
    loader = (
        IterableWrapper([str(path), str(cut), str(path)]).open_files("b").load_from_tfrecord(on_error="skip")
    )
    assert len(list(loader)) == 3 + 2 + 3 and loader.num_skipped == 1


def test_parquet_tables_and_rows_match_pyarrow(tmp_path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"a": list(range(25)), "b": [f"s{i}" for i in range(25)]})
    path = str(tmp_path / "t.parquet")
    pq.write_table(table, path, row_group_size=10)
    tables = list(ParquetDataFrameLoader(IterableWrapper([path])))
    assert [t.num_rows for t in tables] == [10, 10, 5]
    assert pa.concat_tables(tables).equals(pq.read_table(path))
    rows = list(IterableWrapper([path]).load_parquet_as_df(columns=["b"], as_rows=True))
    assert rows == pq.read_table(path, columns=["b"]).to_pylist()
    assert_resumes_identically(lambda: IterableWrapper([path, path]).load_parquet_as_df(as_rows=True))
    with pytest.raises(
        ValueError, match="load_parquet_as_df: dtype='x' and device='' are torcharrow options"
    ):
        ParquetDataFrameLoader(IterableWrapper([path]), "x")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 nope")
    with pytest.raises(
        ValueError, match=r"load_parquet_as_df: corrupt or truncated Parquet file '.*bad\.parquet'"
    ):
        list(IterableWrapper([str(bad)]).load_parquet_as_df())
