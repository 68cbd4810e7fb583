"""Gradients into their bucket slots, scaled on the way: per parameter when final, or per bucket at launch.

NOTE [when gradients are copied into buckets]
On CPU a copy runs on the thread that runs backward. Copying a whole bucket when its last gradient
arrives put the copies of all its other gradients between that gradient and the bucket's all-reduce: for
the last bucket, whose all-reduce backward ends up waiting for, that delayed the launch by the time to
copy the bucket (about 0.2 ms for 4 MiB). So on CPU each gradient is copied (and scaled) into its slot as
soon as it is final, as torch's reducer does, while it is still in cache (the reducer's _copy_into_slot).
On CUDA a copy is a kernel queued on the stream that the GPU runs in microseconds; there one
_foreach_copy_ per bucket at launch (fill_bucket) saves the host a launch per parameter.

In view mode a gradient then becomes its slot, as in torch: the tensor autograd made is freed at once
rather than at the end of backward.
"""

from __future__ import annotations

from typing import Any, NoReturn

import torch

from loom.parallel._buckets import Bucket

SCALAR_DTYPES = (torch.float32, torch.float64)


def scale_operand(scale: float | None, buffer: torch.Tensor) -> Any:
    """``scale`` as a multiplication takes it fastest on ``buffer``'s device and dtype.

    A 0-dim tensor of a float32/float64 CPU bucket's dtype costs 1.2 us a call against 2.8 us for a Python
    number, with bitwise the same products; other buckets keep the number (half-precision products would
    differ).
    """
    if scale is not None and buffer.device.type == "cpu" and buffer.dtype in SCALAR_DTYPES:
        return torch.tensor(scale, dtype=buffer.dtype)
    return scale


def reject_layout(name: str, grad: torch.Tensor) -> NoReturn:
    raise NotImplementedError(
        f"DistributedDataParallel: parameter {name!r} has a {grad.layout} gradient; only dense gradients "
        "are supported (use sparse=False)"
    )


def fill_bucket(
    bucket: Bucket, zero: list[int] | None, scale: float | None, rebind: bool, names: list[str]
) -> None:
    """Every gradient of ``bucket`` into its slot at once (zeros for the slots in ``zero``), scaled.

    ``rebind``: gradients that were copied become their slots (view mode, outside create_graph).
    """
    views = bucket.views
    dst: list[torch.Tensor] = []
    src: list[torch.Tensor] = []
    in_place: list[torch.Tensor] = []
    for k, p in enumerate(bucket.params):
        g = p.grad
        if zero is not None and k in zero:
            views[k].zero_()
        elif g is views[k]:
            in_place.append(g)
        else:
            if g is not None and g.layout != torch.strided:
                reject_layout(names[bucket.indices[k]], g)
            dst.append(views[k])
            src.append(g.detach() if g is not None and g.requires_grad else g)  # type: ignore[arg-type]
    if scale is None:
        if src:
            torch._foreach_copy_(dst, src)
    else:
        for d, g in zip(dst, src):
            torch.mul(g, scale, out=d)
        if len(in_place) == len(views):
            bucket.buffer.mul_(scale)
        elif in_place:
            torch._foreach_mul_(in_place, scale)
    if rebind:
        for k, p in enumerate(bucket.params):  # zeroed slots had no gradient
            if p.grad is not None and p.grad is not views[k] and (zero is None or k not in zero):
                p.grad = views[k]
