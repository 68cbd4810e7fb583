"""Reading services: where DataLoader2 runs a pipeline (re-exported by ``loom.data``)."""

from __future__ import annotations

from loom.data._reading._base import (
    InProcessReadingService,
    ReadingServiceInterface,
    SequentialReadingService,
)
from loom.data._reading._distributed import DistributedReadingService
from loom.data._reading._multiprocessing import MultiProcessingReadingService

__all__ = [
    "DistributedReadingService",
    "InProcessReadingService",
    "MultiProcessingReadingService",
    "ReadingServiceInterface",
    "SequentialReadingService",
]
