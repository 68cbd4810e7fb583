"""DistributedReadingService: shards across torch.distributed ranks, shares the seed, ends ranks together."""

from __future__ import annotations

from typing import Any

from loom.data._reading._base import ReadingServiceInterface

__all__ = ["DistributedReadingService"]


class DistributedReadingService(ReadingServiceInterface):
    """Shards the pipeline across ``torch.distributed`` ranks and ends every rank's epoch together.

    At initialization each ``sharding_filter`` takes this rank's shard (group DISTRIBUTED), and a
    ``fullsync`` is appended so that ranks with uneven shards stop after the same number of elements.
    The loader seed is rank 0's, so pipes before the sharding point shuffle identically on every rank.
    Chain it before a ``MultiProcessingReadingService`` with ``SequentialReadingService`` to use
    workers on every rank. The process group must be initialized first.

    Args:
        timeout: seconds a rank waits for the others at a sync point.

    Raises:
        ValueError: ``timeout`` is not positive.
        RuntimeError: at initialization, ``torch.distributed`` is not initialized.

    Example:
        >>> from loom.data import DistributedReadingService
        >>> DistributedReadingService(timeout=60).timeout
        60
    """

    def __init__(self, timeout: float = 1800) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"DistributedReadingService: timeout must be a positive number, got {timeout!r}")
        self.timeout = timeout
        self.rank = 0
        self.world_size = 1

    def initialize(self, datapipe: Any) -> Any:
        import torch.distributed as dist

        from loom.data.iter._fullsync import FullSync
        from loom.data.iter._sharding import SHARDING_PRIORITIES, apply_sharding

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "DistributedReadingService: torch.distributed is not initialized; call "
                "torch.distributed.init_process_group first"
            )
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        apply_sharding(datapipe, self.world_size, self.rank, SHARDING_PRIORITIES.DISTRIBUTED)
        if not isinstance(datapipe, FullSync):
            datapipe = FullSync(datapipe, timeout=self.timeout)
        return super().initialize(datapipe)

    def share_seed(self, seed: int) -> int:
        import torch.distributed as dist

        box = [seed]
        dist.broadcast_object_list(box, src=0)
        return int(box[0])
