"""The demo's data: the bundled digits, a deterministic train/test split, and tar shards webdataset style."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import torch

DIGITS_CSV = Path(__file__).with_name("data") / "digits.csv.gz"
NUM_CLASSES = 10
IMAGE = 8


def load_digits(path: Path = DIGITS_CSV) -> tuple[torch.Tensor, torch.Tensor]:
    """All images (uint8, N x 8 x 8, values 0..16) and labels (int64, N) of the bundled digits file."""
    rows = []
    with gzip.open(path, "rt") as f:
        for n, line in enumerate(f, start=1):
            values = [int(v) for v in line.split(",")]
            if len(values) != IMAGE * IMAGE + 1:
                raise ValueError(f"load_digits: {path} line {n} has {len(values)} values, expected 65")
            rows.append(values)
    table = torch.tensor(rows, dtype=torch.int64)
    return table[:, :-1].to(torch.uint8).view(-1, IMAGE, IMAGE), table[:, -1]


def split(
    images: torch.Tensor, labels: torch.Tensor, test_fraction: float, seed: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """A seeded permutation split into (train, test); the same seed gives the same split."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"split: test_fraction must be in (0, 1), got {test_fraction}")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = round(len(labels) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return (images[train], labels[train]), (images[test], labels[test])


def write_shards(out_dir: Path, images: torch.Tensor, labels: torch.Tensor, num_shards: int) -> list[Path]:
    """Write samples as ``shard-XXXX.tar`` files, each sample two members: ``NNNNNN.pix`` and ``NNNNNN.cls``.

    ``.pix`` holds the 64 pixel bytes, ``.cls`` the label as ASCII. Samples go to shards in contiguous runs.
    Each tar is written beside its final name and renamed, so an interrupted run leaves no partial shard.
    """
    if num_shards < 1 or num_shards > len(labels):
        raise ValueError(f"write_shards: num_shards must be in 1..{len(labels)}, got {num_shards}")
    out_dir.mkdir(parents=True, exist_ok=True)
    bounds = [round(i * len(labels) / num_shards) for i in range(num_shards + 1)]
    paths = []
    for s in range(num_shards):
        path = out_dir / f"shard-{s:04d}.tar"
        partial = path.with_name(path.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            for i in range(bounds[s], bounds[s + 1]):
                _add(tar, f"{i:06d}.pix", bytes(images[i].flatten().tolist()))
                _add(tar, f"{i:06d}.cls", str(int(labels[i])).encode())
        os.replace(partial, path)
        paths.append(path)
    return paths


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
