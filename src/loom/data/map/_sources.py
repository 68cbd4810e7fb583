"""Map-style sources: SequenceWrapper."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

from loom.data._datapipe import MapDataPipe

__all__ = ["SequenceWrapper"]


class SequenceWrapper(MapDataPipe):
    """Wraps a sequence (or a mapping) as a MapDataPipe (torchdata's ``SequenceWrapper``).

    Args:
        sequence: anything with ``__getitem__`` and ``__len__``.
        deepcopy: copy it once now, so later changes to the original do not show.

    Example:
        >>> from loom.data.map import SequenceWrapper
        >>> dp = SequenceWrapper(range(10))
        >>> len(dp), dp[3]
        (10, 3)
    """

    _data_attrs = ("sequence",)

    def __init__(self, sequence: Sequence[Any], deepcopy: bool = True) -> None:
        if not hasattr(sequence, "__getitem__") or not hasattr(sequence, "__len__"):
            raise TypeError(
                f"SequenceWrapper: sequence must have __getitem__ and __len__, got {type(sequence).__name__}"
            )
        if deepcopy:
            try:
                sequence = copy.deepcopy(sequence)
            except TypeError:
                warnings.warn(
                    "SequenceWrapper: the input sequence can not be deepcopied, so in-place modification "
                    "would affect the source data",
                    UserWarning,
                    stacklevel=2,
                )
        self.sequence = sequence

    def __getitem__(self, index: Any) -> Any:
        return self.sequence[index]

    def __len__(self) -> int:
        return len(self.sequence)
