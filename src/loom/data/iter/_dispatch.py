"""ShardingRoundRobinDispatcher: the part of a pipeline before it runs once and feeds the workers.

# NOTE [round-robin dispatch]
# In one process the dispatcher passes elements through. Under MultiProcessingReadingService the
# graph is cut at the dispatcher: the main process iterates the part before it (the "prefix", e.g. a
# stream that can be read only once) and deals its elements to the workers in turn, element k to
# worker k % num_workers; in each worker a _Receiver stands where the dispatcher was and yields what
# main fed it. A worker asks for input when its buffer runs dry (NEED), main answers with a chunk
# (FEED). The prefix's state, the elements dealt but not yet sent, and each receiver's buffer are all
# part of the loader state, so a resumed run deals exactly the same elements to the same workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loom.data._columns import check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe
from loom.data.iter._sharding import SHARDING_PRIORITIES

__all__ = ["ShardingRoundRobinDispatcher"]


@functional_datapipe("sharding_round_robin_dispatch")
class ShardingRoundRobinDispatcher(IterDataPipe):
    """Marks where a pipeline stops being run once and starts being run per worker (functional name: ``sharding_round_robin_dispatch``).

    With ``MultiProcessingReadingService`` the pipes before it run once, in the main process, and
    their elements go to the workers round-robin; the pipes after it run in every worker. Elsewhere it
    passes elements through unchanged. See NOTE [round-robin dispatch].

    Args:
        source_datapipe: the source pipe.
        sharding_group_filter: the sharding group it stands for; only
            ``SHARDING_PRIORITIES.MULTIPROCESSING`` is supported, as in torchdata.

    Raises:
        ValueError: another sharding group is given.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(4)).sharding_round_robin_dispatch().map(lambda x: x * 10))
        [0, 10, 20, 30]
    """

    _repr_fields = ("sharding_group_filter",)

    def __init__(
        self, source_datapipe: Any, sharding_group_filter: Any = SHARDING_PRIORITIES.MULTIPROCESSING
    ) -> None:
        check_source("sharding_round_robin_dispatch", source_datapipe)
        if sharding_group_filter != SHARDING_PRIORITIES.MULTIPROCESSING:
            raise ValueError(
                "sharding_round_robin_dispatch: only SHARDING_PRIORITIES.MULTIPROCESSING is supported, "
                f"got {sharding_group_filter!r}"
            )
        self.source_datapipe = source_datapipe
        self.sharding_group_filter = sharding_group_filter

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        return srcs[0]

    def __len__(self) -> int:
        return self._source_len()


class _Receiver(IterDataPipe):
    """Stands for the dispatcher inside a worker: yields what main fed this worker."""

    def __init__(self, feed: Any, num_workers: int, worker_id: int) -> None:
        self.feed = feed
        self.num_workers = num_workers
        self.worker_id = worker_id

    def _sources(self) -> tuple[Any, ...]:
        return ()

    def _init_state(self, ctx: Any) -> Any:
        ctx.shard = (self.num_workers, self.worker_id)  # pipes after it shuffle per worker
        return self.feed

    def _iterate(self, srcs: list[Iterator[Any]], state: Any) -> Iterator[Any]:
        feed = self.feed
        buffer = feed.buffer
        while True:
            while buffer:
                yield buffer.popleft()
            if not feed.refill():
                return

    def _save_state(self, state: Any) -> dict[str, Any]:
        return {"buffer": list(self.feed.buffer), "ended": self.feed.ended}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> Any:
        ctx.shard = (self.num_workers, self.worker_id)
        self.feed.buffer.clear()
        self.feed.buffer.extend(data["buffer"])
        self.feed.ended = bool(data["ended"])
        return self.feed
