"""GradBucket: what a communication hook sees of one bucket (same methods as torch's GradBucket)."""

from __future__ import annotations

import torch


class GradBucket:
    """One bucket of flattened gradients handed to a communication hook.

    A hook takes ``(state, bucket)`` and returns a ``torch.futures.Future`` whose value is the reduced
    flat tensor (or a one-element list holding it), as with torch's DDP communication hooks.

    Example:
        >>> import torch
        >>> from loom.parallel import GradBucket
        >>> b = GradBucket(0, torch.zeros(4), [torch.nn.Parameter(torch.ones(4))], [torch.zeros(4)], True)
        >>> b.index(), b.is_last(), b.buffer().numel()
        (0, True, 4)
    """

    __slots__ = ("_buffer", "_index", "_is_last", "_params", "_views")

    def __init__(
        self,
        index: int,
        buffer: torch.Tensor,
        params: list[torch.Tensor],
        views: list[torch.Tensor],
        is_last: bool,
    ) -> None:
        self._index = index
        self._buffer = buffer
        self._params = params
        self._views = views
        self._is_last = is_last

    def index(self) -> int:
        """Position of this bucket in launch order; bucket 0 launches first."""
        return self._index

    def buffer(self) -> torch.Tensor:
        """The flat gradient buffer (local gradients, not yet averaged)."""
        return self._buffer

    def gradients(self) -> list[torch.Tensor]:
        """Per-parameter views into :meth:`buffer`, shaped like the parameters."""
        return self._views

    def parameters(self) -> list[torch.Tensor]:
        """The parameters whose gradients this bucket holds, in bucket order."""
        return self._params

    def is_last(self) -> bool:
        """Whether this is the last bucket to launch in an iteration."""
        return self._is_last

    def set_buffer(self, tensor: torch.Tensor) -> None:
        """Overwrite the buffer's contents with ``tensor`` (same shape and dtype)."""
        self._buffer.copy_(tensor)
