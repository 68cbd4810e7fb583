"""The only module that calls torch.distributed: collectives, process-group queries, clear failures."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

Work = Any  # torch.distributed's Work handle (its class moved between torch versions)
ProcessGroup = Any


def is_available() -> bool:
    return dist.is_available() and dist.is_initialized()


def resolve(group: ProcessGroup | None) -> ProcessGroup:
    return dist.group.WORLD if group is None else group


def rank(group: ProcessGroup) -> int:
    return dist.get_rank(group)


def world_size(group: ProcessGroup) -> int:
    return dist.get_world_size(group)


def backend(group: ProcessGroup) -> str:
    return str(dist.get_backend(group)).lower()


def supports_avg(group: ProcessGroup) -> bool:
    """NCCL averages inside the collective; Gloo has no AVG, so callers divide first."""
    return backend(group) == "nccl"


def global_rank(group: ProcessGroup, group_rank: int) -> int:
    if group is dist.group.WORLD or group is None:
        return group_rank
    return dist.get_global_rank(group, group_rank)


class CollectiveError(RuntimeError):
    """A collective failed or timed out: usually a peer rank died or stopped calling backward."""


def _fail(what: str, error: BaseException) -> CollectiveError:
    return CollectiveError(
        f"DistributedDataParallel: {what} failed; a peer rank may have died or stopped calling "
        f"backward (collectives time out after the process group's timeout). Original error: {error}"
    )


def all_reduce_async(tensor: torch.Tensor, group: ProcessGroup, avg: bool, what: str) -> Work:
    """Start an all-reduce (sum, or average where the backend has it) of ``tensor`` in place."""
    op = dist.ReduceOp.AVG if avg else dist.ReduceOp.SUM
    try:
        if tensor.is_complex():
            return dist.all_reduce(tensor, op=op, group=group, async_op=True)
        # the process group's own method: dist.all_reduce adds about 10 us of checks per call, on the
        # path of every bucket (see NOTE [when gradients are copied into buckets] in _fill.py)
        return group.allreduce([tensor], _allreduce_options(op))
    except RuntimeError as e:
        raise _fail(what, e) from e


_OPTIONS: dict[Any, Any] = {}


def _allreduce_options(op: Any) -> Any:
    options = _OPTIONS.get(op)
    if options is None:
        options = dist.AllreduceOptions()
        options.reduceOp = op
        if hasattr(options, "asyncOp"):  # torch >= 2.7 tells the backend the caller waits on the Work
            options.asyncOp = True
        _OPTIONS[op] = options
    return options


def wait(work: Work, what: str) -> None:
    try:
        work.wait()
    except RuntimeError as e:
        raise _fail(what, e) from e


def all_reduce_sum(tensor: torch.Tensor, group: ProcessGroup, what: str) -> None:
    wait(all_reduce_async(tensor, group, False, what), what)


def broadcast(tensor: torch.Tensor, src_group_rank: int, group: ProcessGroup, what: str) -> None:
    src = global_rank(group, src_group_rank)
    try:
        work = dist.broadcast(tensor, src=src, group=group, async_op=True)
    except RuntimeError as e:
        raise _fail(what, e) from e
    wait(work, what)


def broadcast_coalesced(
    tensors: list[torch.Tensor], src_group_rank: int, group: ProcessGroup, what: str
) -> None:
    """Broadcast ``tensors`` in place, one flat message per dtype and device."""
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for same in groups.values():
        flat = torch.cat([t.detach().reshape(-1) for t in same])
        broadcast(flat, src_group_rank, group, what)
        with torch.no_grad():
            torch._foreach_copy_(
                same, [c.view_as(t) for c, t in zip(torch.split(flat, [t.numel() for t in same]), same)]
            )


def all_gather_object(obj: Any, group: ProcessGroup, what: str) -> list[Any]:
    out: list[Any] = [None] * world_size(group)
    try:
        dist.all_gather_object(out, obj, group=group)
    except RuntimeError as e:
        raise _fail(what, e) from e
    return out


def broadcast_object(
    obj: Any, src_group_rank: int, group: ProcessGroup, device: torch.device, what: str
) -> Any:
    box = [obj]
    try:
        dist.broadcast_object_list(box, src=global_rank(group, src_group_rank), group=group, device=device)
    except RuntimeError as e:
        raise _fail(what, e) from e
    return box[0]


def future_of(work: Work) -> torch.futures.Future[Any]:
    future: torch.futures.Future[Any] = work.get_future()
    return future
