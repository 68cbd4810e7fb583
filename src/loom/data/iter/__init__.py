"""Iterable-style DataPipes (``from loom.data.iter import IterableWrapper, Mapper``), as torchdata's ``datapipes.iter``."""

from __future__ import annotations

from loom.data._datapipe import IterDataPipe
from loom.data.iter._archives import TarArchiveLoader, ZipArchiveLoader
from loom.data.iter._caching import EndOnDiskCacheHolder, OnDiskCacheHolder
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
from loom.data.iter._compression import Bz2FileLoader, Decompressor, XzFileLoader
from loom.data.iter._decoders import (
    HashChecker,
    RoutedDecoder,
    decoder_basichandlers,
    decoder_imagehandler,
    extension_extract_fn,
)
from loom.data.iter._dispatch import ShardingRoundRobinDispatcher
from loom.data.iter._files import FileLister, FileOpener, Saver, ShardExpander, StreamReader
from loom.data.iter._fsspec import FSSpecFileLister, FSSpecFileOpener, FSSpecSaver, S3FileLister, S3FileLoader
from loom.data.iter._fullsync import FullSync
from loom.data.iter._groupby import Grouper
from loom.data.iter._grouping import Batcher, BucketBatcher, MaxTokenBucketizer, UnBatcher
from loom.data.iter._http import HttpReader, OnlineReader
from loom.data.iter._keyzipping import IterKeyZipper, MapKeyZipper
from loom.data.iter._parsers import CSVDictParser, CSVParser, JsonParser, LineReader
from loom.data.iter._random_split import RandomSplitter
from loom.data.iter._records import ParquetDataFrameLoader, TFRecordLoader
from loom.data.iter._repeating import Cycler, InMemoryCacheHolder, Repeater
from loom.data.iter._reshaping import Dropper, Flattener, Rows2Columnar, Slicer
from loom.data.iter._sharding import ShardingFilter
from loom.data.iter._sources import IterableWrapper, MapToIterConverter
from loom.data.iter._splitting import Demultiplexer, Forker, RoundRobinDemultiplexer, UnZipper
from loom.data.iter._streams import StreamWrapper
from loom.data.iter._threads import PinMemory, Prefetcher, ThreadPoolMapper
from loom.data.iter._transforms import Enumerator, Header, IndexAdder, LengthSetter, ParagraphAggregator
from loom.data.iter._webdataset import WebDataset

__all__ = [
    "BatchMapper",
    "Batcher",
    "BucketBatcher",
    "Bz2FileLoader",
    "CSVDictParser",
    "CSVParser",
    "Collator",
    "Concater",
    "Cycler",
    "Decompressor",
    "Demultiplexer",
    "Dropper",
    "EndOnDiskCacheHolder",
    "Enumerator",
    "FSSpecFileLister",
    "FSSpecFileOpener",
    "FSSpecSaver",
    "FileLister",
    "FileOpener",
    "Filter",
    "FlatMapper",
    "Flattener",
    "Forker",
    "FullSync",
    "Grouper",
    "HashChecker",
    "Header",
    "HttpReader",
    "InBatchShuffler",
    "InMemoryCacheHolder",
    "IndexAdder",
    "IterDataPipe",
    "IterKeyZipper",
    "IterableWrapper",
    "JsonParser",
    "LengthSetter",
    "LineReader",
    "MapKeyZipper",
    "MapToIterConverter",
    "Mapper",
    "MaxTokenBucketizer",
    "Multiplexer",
    "MultiplexerLongest",
    "OnDiskCacheHolder",
    "OnlineReader",
    "ParagraphAggregator",
    "ParquetDataFrameLoader",
    "PinMemory",
    "Prefetcher",
    "RandomSplitter",
    "Repeater",
    "RoundRobinDemultiplexer",
    "RoutedDecoder",
    "Rows2Columnar",
    "S3FileLister",
    "S3FileLoader",
    "SampleMultiplexer",
    "Sampler",
    "Saver",
    "ShardExpander",
    "ShardingFilter",
    "ShardingRoundRobinDispatcher",
    "ShuffledFlatMapper",
    "Shuffler",
    "Slicer",
    "StreamReader",
    "StreamWrapper",
    "TFRecordLoader",
    "TarArchiveLoader",
    "ThreadPoolMapper",
    "UnBatcher",
    "UnZipper",
    "WebDataset",
    "XzFileLoader",
    "ZipArchiveLoader",
    "Zipper",
    "ZipperLongest",
    "decoder_basichandlers",
    "decoder_imagehandler",
    "extension_extract_fn",
]

for _name in __all__:
    if _name != "IterDataPipe":
        globals()[_name].__module__ = __name__
del _name
