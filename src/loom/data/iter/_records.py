"""Record files: TFRecordLoader (tf.train.Example, CRC32C-checked) and ParquetDataFrameLoader (pyarrow)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from loom.data._datapipe import functional_datapipe
from loom.data.iter._archives import _ArchiveLoader
from loom.data.iter._files import open_local
from loom.data.iter._fsspec import need
from loom.data.iter._streams import Runs, unwrap

__all__ = ["ParquetDataFrameLoader", "TFRecordLoader"]


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord uses."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    out = 0
    while True:
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """Protocol-buffer wire format: (field number, wire type, value) triples."""
    pos = 0
    end = len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value = buf[pos : pos + n]
            if len(value) != n:
                raise ValueError("truncated length-delimited field")
            pos += n
        elif wire == 5:
            value = buf[pos : pos + 4]
            pos += 4
        elif wire == 1:
            value = buf[pos : pos + 8]
            pos += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _feature(buf: bytes) -> tuple[str, list[Any]]:
    for field, _, value in _fields(buf):
        if field == 1:  # BytesList
            return "bytes", [v for f, _, v in _fields(value) if f == 1]
        if field == 2:  # FloatList, packed or not
            out: list[Any] = []
            for f, wire, v in _fields(value):
                if f == 1:
                    out.extend(struct.unpack(f"<{len(v) // 4}f", v) if wire == 2 else struct.unpack("<f", v))
            return "float", out
        if field == 3:  # Int64List
            ints: list[Any] = []
            for f, wire, v in _fields(value):
                if f == 1 and wire == 2:
                    p = 0
                    while p < len(v):
                        x, p = _varint(v, p)
                        ints.append(_signed64(x))
                elif f == 1:
                    ints.append(_signed64(v))
            return "int64", ints
    return "bytes", []


def parse_example(buf: bytes) -> dict[str, tuple[str, list[Any]]]:
    """A serialized ``tf.train.Example`` -> ``{name: (kind, values)}``."""
    out: dict[str, tuple[str, list[Any]]] = {}
    for field, _, features in _fields(buf):
        if field != 1:
            continue
        for f, _, entry in _fields(features):
            if f != 1:
                continue
            name, feature = "", b""
            for k, _, v in _fields(entry):
                if k == 1:
                    name = bytes(v).decode("utf-8")
                elif k == 2:
                    feature = v
            out[name] = _feature(feature)
    return out


def _to_values(kind: str, values: list[Any], spec: Any) -> Any:
    import torch

    if kind == "bytes":
        return values
    tensor = torch.tensor(values, dtype=torch.float32 if kind == "float" else torch.int64)
    if spec is not None:
        shape, dtype = spec
        if dtype is not None:
            tensor = tensor.to(dtype)
        if shape is not None:
            tensor = tensor.reshape(shape)
    return tensor


@functional_datapipe("load_from_tfrecord")
class TFRecordLoader(_ArchiveLoader):
    """Yields each ``tf.train.Example`` of TFRecord streams as a dict (functional name: ``load_from_tfrecord``).

    Every record's length and data CRC-32C are checked; a bad CRC or a truncated record raises a
    ValueError naming the file and record index (or with ``on_error="skip"`` skips the rest of that file).
    Byte features become lists of bytes, float and int64 features tensors. No TensorFlow or protobuf
    package is needed. Resumable at a record index (the restore reopens the file and skips records).

    Args:
        datapipe: yields ``(path, binary stream)``.
        spec: optional ``{name: (shape, dtype)}``: reshape/cast those features; other features are dropped.
        length: the value of ``len()``.
        on_error: ``"raise"`` or ``"skip"``.

    Example:
        >>> TFRecordLoader([]).spec is None
        True
    """

    _call = "load_from_tfrecord"
    _what = "TFRecord file"
    _unit = "record"
    _owns_stream = True  # records are decoded values: nothing refers to the stream afterwards

    def __init__(
        self, datapipe: Any, spec: dict[str, Any] | None = None, length: int = -1, on_error: str = "raise"
    ) -> None:
        super().__init__(datapipe, length, on_error)
        self.spec = spec

    def _members(self, path: str, stream: Any, pos: int, state: Runs) -> Iterator[Any]:
        f = unwrap(stream)
        index = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise ValueError(f"record {index}: truncated header")
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc(header[:8]) != length_crc:
                raise ValueError(f"record {index}: bad length CRC")
            if index < pos:
                f.seek(length + 4, 1) if f.seekable() else f.read(length + 4)
                index += 1
                continue
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise ValueError(f"record {index}: truncated data")
            if masked_crc(data) != struct.unpack("<I", footer)[0]:
                raise ValueError(f"record {index}: bad data CRC")
            index += 1
            yield self._example(data)

    def _example(self, data: bytes) -> dict[str, Any]:
        parsed = parse_example(data)
        if self.spec is None:
            return {name: _to_values(kind, values, None) for name, (kind, values) in parsed.items()}
        out = {}
        for name, feature_spec in self.spec.items():
            if name not in parsed:
                raise ValueError(f"feature {name!r} from spec is missing")
            kind, values = parsed[name]
            out[name] = _to_values(kind, values, feature_spec)
        return out


def write_tfrecord(f: Any, records: list[bytes]) -> None:
    """Write framed records (for tests and tools)."""
    for data in records:
        header = struct.pack("<Q", len(data))
        f.write(header + struct.pack("<I", masked_crc(header)) + data + struct.pack("<I", masked_crc(data)))


@functional_datapipe("load_parquet_as_df")
class ParquetDataFrameLoader(_ArchiveLoader):
    """Reads Parquet files with pyarrow, one ``pyarrow.Table`` per row group, or one dict per row (functional name: ``load_parquet_as_df``).

    torchdata yields torcharrow DataFrames (a discontinued library); this yields pyarrow Tables (call
    ``.to_pandas()`` or ``.to_pylist()`` on them), or with ``as_rows=True`` plain row dicts. Resumable at a
    row group (or row) index.

    Args:
        source_datapipe: yields file paths, or ``(path, stream)`` pairs.
        dtype: torchdata's torcharrow schema; only ``None`` (pyarrow's own types) is supported.
        columns: the columns to read (default: all).
        device: torchdata's torcharrow device; only ``""`` is supported.
        use_threads: let pyarrow decode with threads.
        as_rows: yield one dict per row.
        on_error: ``"raise"`` or ``"skip"`` a file that is not valid Parquet.

    Example:
        >>> ParquetDataFrameLoader([], as_rows=True).as_rows
        True
    """

    _call = "load_parquet_as_df"
    _what = "Parquet file"
    _unit = "output"
    _owns_stream = True

    def __init__(
        self,
        source_datapipe: Any,
        dtype: Any = None,
        columns: list[str] | None = None,
        device: str = "",
        use_threads: bool = False,
        *,
        as_rows: bool = False,
        on_error: str = "raise",
    ) -> None:
        if dtype is not None or device != "":
            raise ValueError(
                f"load_parquet_as_df: dtype={dtype!r} and device={device!r} are torcharrow options; Loom yields "
                "pyarrow Tables, so pass dtype=None and device='' (cast with Table.cast)"
            )
        super().__init__(source_datapipe, -1, on_error)
        self.columns = columns
        self.use_threads = use_threads
        self.as_rows = as_rows

    def _iterate(self, srcs: list[Iterator[Any]], state: Runs) -> Iterator[Any]:
        return super()._iterate([map(self._pair, srcs[0])], state)

    def _pair(self, item: Any) -> Any:
        return (item, open_local(item, "rb", None)) if isinstance(item, str) else item

    def _members(self, path: str, stream: Any, pos: int, state: Runs) -> Iterator[Any]:
        pq = need("pyarrow.parquet", "io", "load_parquet_as_df")
        pa = need("pyarrow", "io", "load_parquet_as_df")
        try:
            parquet = pq.ParquetFile(unwrap(stream))
        except (pa.ArrowInvalid, pa.ArrowIOError) as err:
            raise ValueError(f"not a Parquet file: {err}") from err
        index = 0
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=self.columns, use_threads=self.use_threads)
            if not self.as_rows:
                index += 1
                if index > pos:
                    yield table
                continue
            if index + table.num_rows <= pos:
                index += table.num_rows
                continue
            rows = table.to_pylist()
            yield from rows[max(0, pos - index) :]
            index += table.num_rows
