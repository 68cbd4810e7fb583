"""Map-style DataPipes (``from loom.data.map import SequenceWrapper``), as torchdata's ``datapipes.map``."""

from __future__ import annotations

from loom.data.map._sources import SequenceWrapper

__all__ = ["SequenceWrapper"]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
