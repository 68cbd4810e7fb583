"""Composable data loading: DataPipes with exact checkpoint/resume, API-compatible with torchdata 0.9.

``from loom.data import IterDataPipe`` replaces ``from torchdata.datapipes.iter import IterDataPipe``;
the pipes live in ``loom.data.iter`` and ``loom.data.map``. Every built-in pipe's iterator has
``state_dict()``/``load_state_dict()``; see NOTE [how a built-in pipe is written] in
``loom/data/_datapipe.py`` for writing new ones.

Example:
    >>> from loom.data.iter import IterableWrapper
    >>> it = iter(IterableWrapper(range(10)).map(lambda x: x * 2).batch(4))
    >>> next(it)
    [0, 2, 4, 6]
"""

from __future__ import annotations

# Importing the pipe packages registers their functional names (.map, .batch, ...).
import loom.data.iter
import loom.data.map  # noqa: F401
from loom.data._datapipe import DataChunk, IterDataPipe, MapDataPipe, functional_datapipe
from loom.data._graph import find_dps, list_dps, remove_dp, replace_dp, to_graph, traverse_dps
from loom.data._iterator import PipeIterator, profiling
from loom.data._loader import DataLoader2
from loom.data._random import set_graph_random_seed
from loom.data._reading import (
    DistributedReadingService,
    InProcessReadingService,
    MultiProcessingReadingService,
    ReadingServiceInterface,
    SequentialReadingService,
)
from loom.data.iter._sharding import SHARDING_PRIORITIES, apply_sharding

__all__ = [  # noqa: RUF022 (sorted as Python sorts, which tests/test_public_api.py checks)
    "DataChunk",
    "DataLoader2",
    "DistributedReadingService",
    "InProcessReadingService",
    "IterDataPipe",
    "MapDataPipe",
    "MultiProcessingReadingService",
    "PipeIterator",
    "ReadingServiceInterface",
    "SHARDING_PRIORITIES",
    "SequentialReadingService",
    "apply_sharding",
    "find_dps",
    "functional_datapipe",
    "list_dps",
    "profiling",
    "remove_dp",
    "replace_dp",
    "set_graph_random_seed",
    "to_graph",
    "traverse_dps",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
