"""FullSync: distributed ranks stop together when their shards are uneven.

# NOTE [fullsync in chunks]
# Syncing every element costs one collective per element. Instead each rank reads up to ``chunk``
# elements ahead into a buffer, and one all-reduce (MIN) of the buffer sizes tells every rank how many
# of them all ranks have: each yields that many. A minimum below ``chunk`` means the shortest rank
# ran dry, so every rank ends after those. The result is the same as syncing per element; the
# buffered elements and the count still to yield are the state, so ranks that snapshot after the
# same number of elements resume in step.
"""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Iterator
from itertools import islice
from typing import Any

from loom.data._columns import check_int, check_source
from loom.data._datapipe import IterDataPipe, functional_datapipe

__all__ = ["FullSync"]


class _SyncState:
    __slots__ = ("buffer", "ended", "ready")

    def __init__(self, buffer: deque[Any], ready: int, ended: bool) -> None:
        self.buffer = buffer
        self.ready = ready
        self.ended = ended


def collective_device() -> Any:
    """Where the default group's collectives take their tensors: CUDA for a plain NCCL group, else CPU."""
    import torch
    import torch.distributed as dist

    if str(dist.get_backend()) == "nccl":  # NCCL carries CUDA tensors only; "cpu:gloo,cuda:nccl" takes CPU
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _min_across_ranks(count: int, timeout: float) -> int:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return count
    value = torch.tensor([count], dtype=torch.int64, device=collective_device())
    work = dist.all_reduce(value, op=dist.ReduceOp.MIN, async_op=True)
    try:
        work.wait(datetime.timedelta(seconds=timeout))
    except RuntimeError as err:
        raise RuntimeError(
            f"fullsync: rank {dist.get_rank()} waited more than {timeout}s for the other ranks: {err}"
        ) from err
    return int(value.item())


@functional_datapipe("fullsync")
class FullSync(IterDataPipe):
    """Ends every distributed rank's iteration when the shortest rank's ends (functional name: ``fullsync``).

    Without ``torch.distributed`` initialized (or with one rank) it passes elements through. See NOTE
    [fullsync in chunks].

    Args:
        datapipe: the source pipe.
        timeout: seconds to wait for the other ranks at a sync point before raising.
        chunk: elements read ahead per sync (one collective per ``chunk`` elements).

    Raises:
        ValueError: ``timeout`` is not positive or ``chunk`` < 1.
        RuntimeError: while iterating, another rank did not reach a sync point within ``timeout``.

    Example:
        >>> from loom.data.iter import IterableWrapper
        >>> list(IterableWrapper(range(5)).fullsync())
        [0, 1, 2, 3, 4]
    """

    _repr_fields = ("timeout", "chunk")

    def __init__(self, datapipe: Any, timeout: float = 1800, chunk: int = 64) -> None:
        check_source("fullsync", datapipe)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"fullsync: timeout must be a positive number of seconds, got {timeout!r}")
        check_int("fullsync", "chunk", chunk, 1)
        self.source_datapipe = datapipe
        self.timeout = timeout
        self.chunk = chunk

    def _init_state(self, ctx: Any) -> _SyncState:
        return _SyncState(deque(), 0, False)

    def _iterate(self, srcs: list[Iterator[Any]], state: _SyncState) -> Iterator[Any]:
        src = srcs[0]
        buffer = state.buffer
        while True:
            if state.ready > 0:
                x = buffer.popleft()
                state.ready -= 1
                yield x
                continue
            if state.ended:
                return
            buffer.extend(islice(src, self.chunk - len(buffer)))
            ready = _min_across_ranks(len(buffer), self.timeout)
            state.ended = ready < self.chunk
            state.ready = ready

    def _save_state(self, state: _SyncState) -> dict[str, Any]:
        return {"buffer": list(state.buffer), "ready": state.ready, "ended": state.ended}

    def _load_state(self, data: dict[str, Any], ctx: Any) -> _SyncState:
        try:
            return _SyncState(deque(data["buffer"]), int(data["ready"]), bool(data["ended"]))
        except KeyError as err:
            raise RuntimeError(f"load_state_dict: FullSync state lacks {err}") from err
