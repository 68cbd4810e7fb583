"""join(): uneven inputs. A rank out of batches shadows the collectives of the ranks still training.

Every synchronized forward inside the context starts with one all-reduce of a vector: one slot per rank
(1 while that rank still has inputs) and a last slot saying whether the forward synchronizes gradients.
A rank that has left its loop contributes zeros, then repeats what the others do (buffer broadcast,
one all-reduce per bucket with zero gradients) until the vector sums to zero.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import torch

from loom.parallel import _comm

if TYPE_CHECKING:
    from loom.parallel._ddp import DistributedDataParallel


class Join:
    """The context manager returned by ``DistributedDataParallel.join``."""

    def __init__(
        self,
        ddp: DistributedDataParallel,
        divide_by_initial_world_size: bool,
        enable: bool,
        throw_on_early_termination: bool,
    ) -> None:
        self.ddp = ddp
        self.divide_by_initial_world_size = divide_by_initial_world_size
        self.enable = enable
        self.throw = throw_on_early_termination
        self._last_active: list[int] = []

    def __enter__(self) -> Join:
        if self.enable:
            self.ddp._join = self
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        ddp = self.ddp
        ddp._join = None
        if exc_type is not None or not self.enable:
            return
        try:
            self._shadow_until_all_joined()
        finally:
            ddp.reducer.divisor = ddp.world_size
            ddp._authoritative_rank = 0

    def _vote(self, still_training: bool, grad_sync: bool) -> tuple[list[int], bool]:
        ddp = self.ddp
        world = ddp.world_size
        device = ddp.reducer.buckets[0].buffer.device
        vote = torch.zeros(world + 1, device=device)
        if still_training:
            vote[_comm.rank(ddp.process_group)] = 1.0
            vote[world] = 1.0 if grad_sync else 0.0
        _comm.all_reduce_sum(vote, ddp.process_group, "join: all-reduce of the active ranks")
        flags = vote.tolist()
        active = [r for r in range(world) if flags[r] > 0]
        if active:
            self._last_active = active
        return active, flags[world] > 0

    def _adopt(self, active: list[int]) -> None:
        ddp = self.ddp
        ddp._authoritative_rank = max(active)
        if not self.divide_by_initial_world_size:
            ddp.reducer.divisor = len(active)

    def _early_termination(self, active: list[int]) -> RuntimeError:
        gone = sorted(set(range(self.ddp.world_size)) - set(active))
        return RuntimeError(
            f"DistributedDataParallel.join(throw_on_early_termination=True): rank(s) {gone} ran out of inputs; "
            "raising on every rank"
        )

    def notify(self, grad_sync: bool) -> None:
        """Called at the start of each forward of a rank that still has inputs."""
        active, _ = self._vote(True, grad_sync)
        if self.throw and len(active) < self.ddp.world_size:
            raise self._early_termination(active)
        self._adopt(active)

    def _shadow_until_all_joined(self) -> None:
        ddp = self.ddp
        while True:
            active, grad_sync = self._vote(False, False)
            if not active:
                self._sync_final_model()
                return
            if self.throw:
                raise self._early_termination(active)
            self._adopt(active)
            if ddp.broadcast_buffers and ddp.require_forward_param_sync and ddp._buffer_list:
                ddp._sync_buffers()
            ddp.require_forward_param_sync = grad_sync
            if grad_sync:
                ddp.reducer.shadow_backward()

    def _sync_final_model(self) -> None:
        """Every rank ends with the model of the last rank to join (its updates saw every step)."""
        ddp = self.ddp
        if self._last_active and ddp.world_size > 1:
            tensors = [p.detach() for p in ddp.module.parameters()] + ddp._buffer_list
            with torch.no_grad():
                _comm.broadcast_coalesced(
                    tensors, max(self._last_active), ddp.process_group, "join: final model sync"
                )
