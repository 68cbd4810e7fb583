"""Iterable-style DataPipes (``from loom.data.iter import IterableWrapper, Mapper``), as torchdata's ``datapipes.iter``."""

from __future__ import annotations

from loom.data._datapipe import IterDataPipe
from loom.data.iter._callable import BatchMapper, Collator, Filter, FlatMapper, Mapper
from loom.data.iter._combinatorics import InBatchShuffler, Sampler, ShuffledFlatMapper, Shuffler
from loom.data.iter._combining import (
    Concater,
    Multiplexer,
    MultiplexerLongest,
    SampleMultiplexer,
    Zipper,
    ZipperLongest,
)
from loom.data.iter._groupby import Grouper
from loom.data.iter._grouping import Batcher, BucketBatcher, MaxTokenBucketizer, UnBatcher
from loom.data.iter._keyzipping import IterKeyZipper, MapKeyZipper
from loom.data.iter._random_split import RandomSplitter
from loom.data.iter._repeating import Cycler, InMemoryCacheHolder, Repeater
from loom.data.iter._sharding import ShardingFilter
from loom.data.iter._sources import IterableWrapper, MapToIterConverter
from loom.data.iter._splitting import Demultiplexer, Forker, RoundRobinDemultiplexer, UnZipper
from loom.data.iter._threads import PinMemory, Prefetcher, ThreadPoolMapper
from loom.data.iter._transforms import (
    Dropper,
    Enumerator,
    Flattener,
    Header,
    IndexAdder,
    LengthSetter,
    ParagraphAggregator,
    Rows2Columnar,
    Slicer,
)

__all__ = [
    "BatchMapper",
    "Batcher",
    "BucketBatcher",
    "Collator",
    "Concater",
    "Cycler",
    "Demultiplexer",
    "Dropper",
    "Enumerator",
    "Filter",
    "FlatMapper",
    "Flattener",
    "Forker",
    "Grouper",
    "Header",
    "InBatchShuffler",
    "InMemoryCacheHolder",
    "IndexAdder",
    "IterDataPipe",
    "IterKeyZipper",
    "IterableWrapper",
    "LengthSetter",
    "MapKeyZipper",
    "MapToIterConverter",
    "Mapper",
    "MaxTokenBucketizer",
    "Multiplexer",
    "MultiplexerLongest",
    "ParagraphAggregator",
    "PinMemory",
    "Prefetcher",
    "RandomSplitter",
    "Repeater",
    "RoundRobinDemultiplexer",
    "Rows2Columnar",
    "SampleMultiplexer",
    "Sampler",
    "ShardingFilter",
    "ShuffledFlatMapper",
    "Shuffler",
    "Slicer",
    "ThreadPoolMapper",
    "UnBatcher",
    "UnZipper",
    "Zipper",
    "ZipperLongest",
]

for _name in __all__:
    if _name != "IterDataPipe":
        globals()[_name].__module__ = __name__
del _name
