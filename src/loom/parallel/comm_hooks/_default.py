"""Default communication hooks: plain all-reduce, and fp16 / bf16 compressed all-reduce."""

from __future__ import annotations

from typing import Any

import torch

from loom.parallel import _comm
from loom.parallel._grad_bucket import GradBucket


def allreduce_hook(process_group: Any, bucket: GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Average the bucket across ranks with one all-reduce (what DDP does without a hook).

    Args:
        process_group: the group to average over; ``None`` for the world.
        bucket: the bucket to reduce.

    Returns:
        A future holding the averaged flat buffer.

    Example:
        >>> from loom.parallel.comm_hooks import allreduce_hook
        >>> # ddp_model.register_comm_hook(None, allreduce_hook)
    """
    group = _comm.resolve(process_group)
    buffer = bucket.buffer()
    buffer.div_(_comm.world_size(group))
    work = _comm.all_reduce_async(buffer, group, False, f"allreduce_hook on bucket {bucket.index()}")
    return _comm.future_of(work).then(lambda fut: fut.value()[0])


def _compress_hook(
    dtype: torch.dtype, name: str, process_group: Any, bucket: GradBucket
) -> torch.futures.Future[torch.Tensor]:
    group = _comm.resolve(process_group)
    buffer = bucket.buffer()
    compressed = buffer.to(dtype).div_(_comm.world_size(group))
    work = _comm.all_reduce_async(compressed, group, False, f"{name} on bucket {bucket.index()}")

    def decompress(fut: torch.futures.Future[Any]) -> torch.Tensor:
        buffer.copy_(fut.value()[0])
        return buffer

    return _comm.future_of(work).then(decompress)


def fp16_compress_hook(process_group: Any, bucket: GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Average the bucket in float16: half the bytes on the wire, some precision lost.

    Args:
        process_group: the group to average over; ``None`` for the world.
        bucket: the bucket to reduce.

    Returns:
        A future holding the averaged buffer, cast back to the bucket's dtype.

    Example:
        >>> from loom.parallel.comm_hooks import fp16_compress_hook
        >>> # ddp_model.register_comm_hook(None, fp16_compress_hook)
    """
    return _compress_hook(torch.float16, "fp16_compress_hook", process_group, bucket)


def bf16_compress_hook(process_group: Any, bucket: GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Average the bucket in bfloat16: half the bytes on the wire, float32's range, less precision.

    Args:
        process_group: the group to average over; ``None`` for the world.
        bucket: the bucket to reduce.

    Returns:
        A future holding the averaged buffer, cast back to the bucket's dtype.

    Example:
        >>> from loom.parallel.comm_hooks import bf16_compress_hook
        >>> # ddp_model.register_comm_hook(None, bf16_compress_hook)
    """
    return _compress_hook(torch.bfloat16, "bf16_compress_hook", process_group, bucket)
