"""Flat gradient buffers: allocation, views shaped like the parameters, waiting, and writing back."""

from __future__ import annotations

from typing import Any

import torch

from loom.parallel import _comm
from loom.parallel._bucketing import BucketSpec


class Bucket:
    """One bucket at run time: its flat buffer, per-parameter views, and the reduction in flight.

    ``buffer`` holds the gradients. The last bucket may have a ``tail`` after them, for the used map (see
    NOTE [the used map rides in the last bucket] in _used_map.py); ``flat`` is buffer and tail together.
    """

    __slots__ = ("buffer", "flat", "future", "index", "indices", "params", "tail", "views", "work")

    def __init__(
        self, index: int, indices: tuple[int, ...], params: list[torch.Tensor], flat: torch.Tensor, numel: int
    ) -> None:
        self.index = index
        self.indices = indices
        self.params = params
        self.flat = flat
        self.buffer = flat if flat.numel() == numel else flat[:numel]
        self.tail = flat[numel:] if flat.numel() > numel else None
        self.views: list[torch.Tensor] = []
        self.work: Any = None
        self.future: Any = None


def make_buckets(
    specs: list[BucketSpec], params: list[torch.nn.Parameter], view_mode: bool, tail: int = 0
) -> list[Bucket]:
    """Allocate the buffers of ``specs`` (the last with ``tail`` more elements); in view mode gradients move in."""
    buckets = []
    for b, spec in enumerate(specs):
        members: list[torch.Tensor] = [params[i] for i in spec.indices]
        extra = tail if b == len(specs) - 1 else 0
        flat = torch.zeros(spec.numel + extra, dtype=spec.dtype, device=spec.device)
        bucket = Bucket(b, spec.indices, members, flat, spec.numel)
        buffer = bucket.buffer
        bucket.views = [_view(buffer, off, p) for off, p in zip(spec.offsets, members)]
        if view_mode:
            for p, v in zip(members, bucket.views):
                if p.grad is not None:
                    v.copy_(p.grad.detach())
                    p.grad = v
        buckets.append(bucket)
    return buckets


def _view(buffer: torch.Tensor, offset: int, param: torch.Tensor) -> torch.Tensor:
    """A view of ``buffer`` shaped (and, when dense, strided) like ``param`` (channels_last stays so)."""
    if _dense(param):
        return buffer.as_strided(param.shape, param.stride(), offset)
    return buffer[offset : offset + param.numel()].view(param.shape)


def _dense(t: torch.Tensor) -> bool:
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride()), key=lambda d: d[1]):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def wait_buckets(buckets: list[Bucket]) -> None:
    """Wait for every bucket's reduction, in order."""
    for bucket in buckets:
        wait_bucket(bucket)


def wait_bucket(bucket: Bucket) -> None:
    """Wait for the bucket's reduction; a hook's result is copied into the buffer if it is elsewhere."""
    if bucket.future is not None:
        try:
            result = bucket.future.wait()
        except RuntimeError as e:
            raise _comm.CollectiveError(
                f"DistributedDataParallel: communication hook of gradient bucket {bucket.index} failed; a "
                f"peer rank may have died or stopped calling backward. Original error: {e}"
            ) from e
        if isinstance(result, (list, tuple)):
            result = result[0]
        if result is not bucket.buffer:
            bucket.buffer.copy_(result)
        bucket.future = None
    elif bucket.work is not None:
        _comm.wait(bucket.work, f"all-reduce of gradient bucket {bucket.index}")
        bucket.work = None


def write_back(bucket: Bucket, view_mode: bool, global_used: list[bool] | None) -> None:
    """Averaged buffer -> ``.grad`` (views bound, or one copy); globally unused parameters untouched."""
    views = bucket.views
    if view_mode:
        for k, p in enumerate(bucket.params):
            if p.grad is not views[k] and (global_used is None or global_used[bucket.indices[k]]):
                p.grad = views[k]
        return
    dst: list[torch.Tensor] = []
    src: list[torch.Tensor] = []
    for k, p in enumerate(bucket.params):
        if global_used is not None and not global_used[bucket.indices[k]]:
            continue
        if p.grad is None:
            p.grad = views[k].clone()
        else:
            dst.append(p.grad)
            src.append(views[k])
    if dst:
        torch._foreach_copy_(dst, src)


def write_back_create_graph(
    buckets: list[Bucket], differentiable: bool, global_used: list[bool] | None
) -> None:
    """After ``backward(create_graph=True)``: averaged values, differentiable through the local gradient."""
    for bucket in buckets:
        for k, p in enumerate(bucket.params):
            if global_used is not None and not global_used[bucket.indices[k]]:
                continue
            avg = bucket.views[k].detach().clone()
            g = p.grad
            if differentiable and g is not None and g.requires_grad:
                # the value of the average, the derivative of the local gradient: a second synchronized
                # backward then averages the local second-order terms, which is the exact derivative
                p.grad = g + (avg - g.detach())
            else:
                p.grad = avg
