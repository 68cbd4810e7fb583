"""The used map: which parameters each rank gave a gradient, summed over ranks after backward.

``find_unused_parameters`` needs it every iteration (a parameter unused on every rank keeps ``grad=None``),
the static-graph record once. It travels in one of two ways:

- in the tail of the last bucket, behind the gradients (see NOTE [the used map rides in the last bucket]);
- in an all-reduce of its own, where a communication hook owns the buckets' contents or the last bucket
  cannot count exactly (half precision).
"""

from __future__ import annotations

from typing import Any

import torch

from loom.parallel import _comm

# NOTE [the used map rides in the last bucket]
# The used map is final when the last bucket launches: by then every parameter has fired its hook or
# been marked unused. Written into a tail of that bucket's buffer, it is reduced by the same collective
# as the gradients, so find_unused_parameters costs no collective of its own (torch's reducer launches a
# third one per step for it). On the 2-core CPU benchmark, dropping that collective took 4-7% off a
# recommendation model's step. A tail of float32 or float64 counts ranks exactly; with NCCL the tail is
# averaged rather than summed, which keeps "used somewhere" as "> 0".

# NOTE [the used map is read only where a parameter went unused]
# Reading the all-reduced map on the host waits for the GPU to finish backward, which stalls the CPU's
# run-ahead every iteration. A rank that used every parameter knows they are all globally used, so only
# ranks with a locally unused parameter (and the static-graph record) read it.

TAIL_DTYPES = (torch.float32, torch.float64)


class UsedMap:
    """One iteration's used map in flight, and the pinned host buffers that stage it on CUDA."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.values: torch.Tensor | None = None  # being reduced: a tensor of its own, or a bucket's tail
        self.work: Any = None  # its own all-reduce (None when it rides in a bucket)
        self.all_used_here = False
        self._pinned: list[torch.Tensor] = []  # two host buffers, used in turn
        self._copied: list[Any] = [None, None]
        self._turn = 0

    def write_into(self, tail: torch.Tensor, used: list[bool]) -> None:
        """Put this rank's map in ``tail`` (a bucket's, reduced with it); see NOTE [the used map rides ...]."""
        self._stage(tail, used)
        self.values = tail
        self.all_used_here = all(used)

    def launch(self, used: list[bool], device: torch.device, group: Any) -> None:
        """All-reduce this rank's map on its own, without a host-device synchronization."""
        values = torch.empty(self.n, dtype=torch.float32, device=device)
        self._stage(values, used)
        self.values = values
        self.all_used_here = all(used)
        self.work = _comm.all_reduce_async(values, group, False, "all-reduce of the used map")

    def launch_zeros(self, device: torch.device, group: Any) -> None:
        """A joined rank's part in the others' all-reduce of the map: nothing used."""
        self.values = torch.zeros(self.n, device=device)
        self.all_used_here = False
        self.work = _comm.all_reduce_async(self.values, group, False, "all-reduce of the used map")

    def must_read(self, recording: bool) -> bool:
        """Whether the reduced map is needed on the host (see NOTE [the used map is read only where ...])."""
        return self.values is not None and (recording or not self.all_used_here)

    def finish(self, recording: bool) -> list[bool] | None:
        """After the buckets were waited for: which parameters some rank used (None: all of them)."""
        if self.values is None:
            return None
        if self.work is not None:
            _comm.wait(self.work, "all-reduce of the used map")
        used = (self.values > 0).tolist() if self.must_read(recording) else None
        self.values = self.work = None
        return used

    def drain(self) -> None:
        """Wait for a map an aborted iteration left in flight, and forget it."""
        if self.work is not None:
            _comm.wait(self.work, "all-reduce of the used map (left by a failed backward)")
        self.values = self.work = None

    def _stage(self, dst: torch.Tensor, used: list[bool]) -> None:
        flags = torch.tensor(used, dtype=dst.dtype)
        if dst.device.type != "cuda":
            dst.copy_(flags)
            return
        if not self._pinned or self._pinned[0].dtype != dst.dtype:
            self._pinned = [torch.empty(self.n, dtype=dst.dtype, pin_memory=True) for _ in range(2)]
            self._copied = [None, None]
        turn = self._turn
        self._turn = 1 - turn
        copied = self._copied[turn]
        if copied is not None:
            # the copy out of this buffer two iterations ago is done (long ago, so no stall in practice)
            copied.synchronize()
        self._pinned[turn].copy_(flags)
        dst.copy_(self._pinned[turn], non_blocking=True)
        event = torch.cuda.Event()  # type: ignore[no-untyped-call]
        event.record()
        self._copied[turn] = event
