"""The demo's input pipeline: tar shards -> loom.data pipes -> DataLoader2 with worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from loom.data import (
    DataLoader2,
    DistributedReadingService,
    MultiProcessingReadingService,
    SequentialReadingService,
)
from loom.data.iter import FileLister, FileOpener, IterDataPipe

# Pixels are 0..16; scaled to 0..1 and centred with the training set's usual mean and spread.
_PIXEL_MAX = 16.0
_MEAN, _STD = 0.30, 0.38


def decode(sample: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """A webdataset sample ``{"__key__", ".pix", ".cls"}`` (member streams) -> (1 x 8 x 8 float image, label)."""
    pixels = sample[".pix"].read()
    label = int(sample[".cls"].read())
    if len(pixels) != 64:
        raise ValueError(f"decode: sample {sample['__key__']!r} has {len(pixels)} pixel bytes, expected 64")
    image = torch.tensor(list(pixels), dtype=torch.float32).view(1, 8, 8)
    return (image / _PIXEL_MAX - _MEAN) / _STD, label


def collate(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A list of (image, label) -> (B x 1 x 8 x 8 images, B labels)."""
    images, labels = zip(*batch)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def build_pipeline(shard_dir: Path, batch_size: int, shuffle_buffer: int = 10_000) -> IterDataPipe:
    """List the tar shards, open them, read their members, group them into samples, decode, shuffle, shard,
    batch and collate.

    Decoding happens before the shuffle: the members' streams belong to the open tar and must be read in
    order. The shuffle comes before ``sharding_filter`` and draws the same order on every worker and rank
    (see NOTE [loader seeds and epochs] in loom/data/_loader.py), so the shards partition the epoch.
    """
    pipe: Any = FileLister(str(shard_dir), masks="*.tar")
    opened: Any = FileOpener(pipe, mode="b")  # the functional names are registered at run time
    pipe = opened.load_from_tar().webdataset().map(decode)
    pipe = pipe.shuffle(buffer_size=shuffle_buffer).sharding_filter()
    batched: IterDataPipe = pipe.batch(batch_size, drop_last=True).collate(collate_fn=collate)
    return batched


def make_loader(pipe: IterDataPipe, workers: int, distributed: bool) -> DataLoader2:
    """DataLoader2 over ``pipe``: ``workers`` worker processes, and across ranks when ``distributed``."""
    service: Any = MultiProcessingReadingService(num_workers=workers)
    if distributed:
        service = SequentialReadingService(DistributedReadingService(timeout=120), service)
    return DataLoader2(pipe, reading_service=service)
