"""Iterable-style DataPipes (``from loom.data.iter import IterableWrapper, Mapper``), as torchdata's ``datapipes.iter``."""

from __future__ import annotations

from loom.data._datapipe import IterDataPipe
from loom.data.iter._combinatorics import Shuffler
from loom.data.iter._grouping import Batcher, UnBatcher
from loom.data.iter._sharding import ShardingFilter
from loom.data.iter._sources import IterableWrapper
from loom.data.iter._transforms import Collator, Filter, Header, Mapper

__all__ = [
    "Batcher",
    "Collator",
    "Filter",
    "Header",
    "IterDataPipe",
    "IterableWrapper",
    "Mapper",
    "ShardingFilter",
    "Shuffler",
    "UnBatcher",
]

for _name in __all__:
    if _name != "IterDataPipe":
        globals()[_name].__module__ = __name__
del _name
