"""Builders for archives and compressed files used by the I/O tests (all made with the standard library)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zipfile


def text_members(n: int) -> dict[str, bytes]:
    """``n`` small text members of different line counts (one empty, one without a final newline)."""
    out = {}
    for i in range(n):
        lines = "".join(
            f"member {i} line {j}\r\n" if j % 3 == 2 else f"member {i} line {j}\n" for j in range(i)
        )
        out[f"dir/m{i}.txt"] = (lines + ("tail" if i % 2 else "")).encode()
    return out


def write_tar(path: str, members: dict[str, bytes], mode: str = "w") -> str:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_zip(path: str, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


COMPRESSORS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


def write_compressed(path: str, data: bytes) -> str:
    ext = os.path.splitext(path)[1]
    with open(path, "wb") as f:
        f.write(COMPRESSORS[ext](data))
    return path


def truncate(path: str, keep: int, out: str) -> str:
    with open(path, "rb") as f:
        data = f.read()
    with open(out, "wb") as f:
        f.write(data[:keep])
    return out


def flip_byte(path: str, offset: int, out: str) -> str:
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[offset] ^= 0xFF
    with open(out, "wb") as f:
        f.write(bytes(data))
    return out
