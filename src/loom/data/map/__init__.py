"""Map-style DataPipes (``from loom.data.map import SequenceWrapper``), as torchdata's ``datapipes.map``."""

from __future__ import annotations

from loom.data._datapipe import MapDataPipe
from loom.data.map._combining import Concater, UnZipper, Zipper
from loom.data.map._pipes import Batcher, InMemoryCacheHolder, IterToMapConverter, Mapper, Shuffler
from loom.data.map._sources import SequenceWrapper

__all__ = [
    "Batcher",
    "Concater",
    "InMemoryCacheHolder",
    "IterToMapConverter",
    "MapDataPipe",
    "Mapper",
    "SequenceWrapper",
    "Shuffler",
    "UnZipper",
    "Zipper",
]

for _name in __all__:
    if _name != "MapDataPipe":
        globals()[_name].__module__ = __name__
del _name
