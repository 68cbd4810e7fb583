"""The reading-service interface, the in-process service, and chaining services.

# NOTE [reading services]
# A reading service decides where a pipeline runs. DataLoader2 calls, in order:
#   initialize(datapipe) -> datapipe         once: adapt the graph (sharding), start processes
#   share_seed(seed) -> seed                 once per loader seed: make every rank use rank 0's
#   initialize_iteration(seed, state)        per epoch: an iterator with state_dict(); ``seed`` is the
#                                            loader's seed for this epoch, ``state`` a saved position
#                                            (from that iterator's state_dict()) to resume from, or None
#   finalize_iteration()                     when an epoch ends or is abandoned
#   finalize()                               at shutdown
# Unlike torchdata's interface, the epoch seed and the saved state go straight to
# initialize_iteration, and the returned iterator itself reports its position; that is all that
# exact mid-epoch resume needs.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["InProcessReadingService", "ReadingServiceInterface", "SequentialReadingService"]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Start iterations with the loader's epoch seed as base seed (see NOTE [seeds] in _random.py).

    The seed is shared by every worker and rank (DistributedReadingService broadcasts rank 0's), so
    the warning about unseeded random pipes before a cross-rank sharding point does not apply.
    """
    from loom.data._random import loader_seed

    with loader_seed(seed), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*comes before a sharding_filter sharded across ranks")
        yield


class ReadingServiceInterface:
    """Base class of reading services: where and how DataLoader2 runs a pipeline.

    Subclasses override the hooks below; see NOTE [reading services] in
    ``loom/data/_reading/_base.py`` for the order DataLoader2 calls them in.

    Example:
        >>> from loom.data import DataLoader2, ReadingServiceInterface
        >>> from loom.data.iter import IterableWrapper
        >>> class Doubling(ReadingServiceInterface):
        ...     def initialize(self, datapipe):
        ...         return datapipe.map(lambda x: 2 * x)
        >>> list(DataLoader2(IterableWrapper(range(3)), reading_service=Doubling()))
        [0, 2, 4]
    """

    def initialize(self, datapipe: Any) -> Any:
        """Adapt the graph and start what runs it; returns the pipe that will be iterated."""
        self._datapipe = datapipe
        return datapipe

    def share_seed(self, seed: int) -> int:
        """The loader seed every participant uses (the distributed service returns rank 0's)."""
        return seed

    def initialize_iteration(self, seed: int, state: dict[str, Any] | None = None) -> Iterator[Any]:
        """An iterator over one epoch, seeded with ``seed``, resumed from ``state`` if given."""
        from loom.data._iterator import PipeIterator

        with seeded(seed):
            it = PipeIterator(self._datapipe)
        if state is not None:
            it.load_state_dict(state)
        return it

    def finalize_iteration(self) -> None:
        """Called when an epoch ends or is abandoned."""

    def finalize(self) -> None:
        """Release processes and other resources; called by ``DataLoader2.shutdown()``."""

    def stats(self) -> dict[str, Any]:
        """Counters and timings of the service (when the loader's stats are on)."""
        return {}


class InProcessReadingService(ReadingServiceInterface):
    """Runs the pipeline in the calling process (the default of DataLoader2).

    Args:
        prefetch_cnt: if > 0, a background thread reads that many elements ahead (``.prefetch``).
        init_fn: ``init_fn(datapipe) -> datapipe``, applied once at initialization.
        reset_fn: ``reset_fn(datapipe, seed) -> datapipe``, applied at the start of every epoch.

    Raises:
        ValueError: ``prefetch_cnt`` < 0.

    Example:
        >>> from loom.data import DataLoader2, InProcessReadingService
        >>> from loom.data.iter import IterableWrapper
        >>> list(DataLoader2(IterableWrapper(range(3)), reading_service=InProcessReadingService()))
        [0, 1, 2]
    """

    def __init__(
        self,
        prefetch_cnt: int = 0,
        init_fn: Callable[[Any], Any] | None = None,
        reset_fn: Callable[[Any, int], Any] | None = None,
    ) -> None:
        if isinstance(prefetch_cnt, bool) or not isinstance(prefetch_cnt, int) or prefetch_cnt < 0:
            raise ValueError(
                f"InProcessReadingService: prefetch_cnt must be an int >= 0, got {prefetch_cnt!r}"
            )
        self.prefetch_cnt = prefetch_cnt
        self.init_fn = init_fn
        self.reset_fn = reset_fn

    def initialize(self, datapipe: Any) -> Any:
        if self.init_fn is not None:
            datapipe = self.init_fn(datapipe)
        if self.prefetch_cnt > 0:
            datapipe = datapipe.prefetch(self.prefetch_cnt)
        return super().initialize(datapipe)

    def initialize_iteration(self, seed: int, state: dict[str, Any] | None = None) -> Iterator[Any]:
        if self.reset_fn is not None:
            self._datapipe = self.reset_fn(self._datapipe, seed)
        return super().initialize_iteration(seed, state)


class SequentialReadingService(ReadingServiceInterface):
    """Chains reading services: each adapts the graph in turn, and the last one runs it.

    The usual chain is ``SequentialReadingService(DistributedReadingService(), MultiProcessingReadingService(k))``:
    shard across ranks, then across each rank's workers.

    Args:
        *reading_services: the services, the one that runs the pipeline last.

    Raises:
        ValueError: no service is given.
        TypeError: an argument is not a ReadingServiceInterface.

    Example:
        >>> from loom.data import DataLoader2, InProcessReadingService, SequentialReadingService
        >>> from loom.data.iter import IterableWrapper
        >>> rs = SequentialReadingService(InProcessReadingService(), InProcessReadingService())
        >>> list(DataLoader2(IterableWrapper(range(3)), reading_service=rs))
        [0, 1, 2]
    """

    def __init__(self, *reading_services: ReadingServiceInterface) -> None:
        if not reading_services:
            raise ValueError("SequentialReadingService: give at least one reading service")
        for rs in reading_services:
            if not isinstance(rs, ReadingServiceInterface):
                raise TypeError(
                    f"SequentialReadingService: expected ReadingServiceInterface instances, got {type(rs).__name__}"
                )
        self.reading_services = reading_services

    def initialize(self, datapipe: Any) -> Any:
        for rs in self.reading_services:
            datapipe = rs.initialize(datapipe)
        return datapipe

    def share_seed(self, seed: int) -> int:
        for rs in self.reading_services:
            seed = rs.share_seed(seed)
        return seed

    def initialize_iteration(self, seed: int, state: dict[str, Any] | None = None) -> Iterator[Any]:
        return self.reading_services[-1].initialize_iteration(seed, state)

    def finalize_iteration(self) -> None:
        for rs in self.reading_services:
            rs.finalize_iteration()

    def finalize(self) -> None:
        for rs in reversed(self.reading_services):
            rs.finalize()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for rs in self.reading_services:
            out.update(rs.stats())
        return out
