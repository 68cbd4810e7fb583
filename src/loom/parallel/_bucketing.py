"""Bucket planning: which gradients share one flat buffer and one all-reduce.

Pure functions: they read shapes, dtypes and devices only, allocate nothing and never communicate,
so they are tested without starting processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

MIB = 1024 * 1024
DEFAULT_CAP_MB = 25.0
FIRST_BUCKET_CAP_MB = 1.0

# NOTE [bucket order is reverse registration order]
# Autograd produces gradients roughly in the reverse of the forward order, and modules usually register
# their parameters in forward order. Planning buckets over the parameters in reverse registration order
# therefore makes the first bucket the first to fill during backward, so its all-reduce starts while the
# rest of backward still runs. The first bucket is kept small (about 1 MiB) so communication starts
# early; later ones use `bucket_cap_mb`. Static graph replaces this guess with the order recorded in the
# first iteration (see NOTE [static graph] in _reducer.py). Buckets launch strictly in plan order on
# every rank, which keeps the collectives of all ranks matched.


@dataclass(frozen=True)
class BucketSpec:
    """One planned bucket: a flat buffer holding the gradients of some parameters of one dtype and device.

    Attributes:
        indices: positions of the parameters (in the list given to :func:`plan_buckets`), in bucket order.
        offsets: element offset of each parameter's gradient inside the flat buffer.
        numel: total number of elements in the buffer.
        dtype: dtype shared by all parameters of the bucket.
        device: device shared by all parameters of the bucket.

    Example:
        >>> import torch
        >>> from loom.parallel import plan_buckets
        >>> spec = plan_buckets([torch.zeros(3), torch.zeros(2, 2)])[0]
        >>> spec.indices, spec.offsets, spec.numel
        ((1, 0), (0, 4), 7)
    """

    indices: tuple[int, ...]
    offsets: tuple[int, ...]
    numel: int
    dtype: torch.dtype
    device: torch.device

    @property
    def nbytes(self) -> int:
        """Size of the flat buffer in bytes."""
        return self.numel * _itemsize(self.dtype)


def plan_buckets(
    params: Sequence[torch.Tensor],
    bucket_cap_mb: float = DEFAULT_CAP_MB,
    first_bucket_cap_mb: float = FIRST_BUCKET_CAP_MB,
    order: Sequence[int] | None = None,
) -> list[BucketSpec]:
    """Group parameters into gradient buckets by size, dtype and device.

    Parameters are visited in ``order`` (default: reverse registration order, see
    NOTE [bucket order is reverse registration order]). Each (dtype, device) pair fills its own open
    bucket; a bucket closes once it holds at least its cap, about ``first_bucket_cap_mb`` for the first
    bucket of each pair and ``bucket_cap_mb`` afterwards. Buckets are returned in the order their first
    parameter is visited, which is the order they launch in.

    Args:
        params: the parameters (only shape, dtype and device are read; meta tensors work).
        bucket_cap_mb: cap of every bucket after the first, in MiB; must be > 0.
        first_bucket_cap_mb: cap of the first bucket of each dtype and device, in MiB; must be > 0.
        order: the visiting order, a permutation of ``range(len(params))``.

    Returns:
        The buckets, each a :class:`BucketSpec`.

    Raises:
        ValueError: if a cap is not positive or ``order`` is not a permutation.

    Example:
        >>> import torch
        >>> from loom.parallel import plan_buckets
        >>> ps = [torch.zeros(1000, device="meta") for _ in range(4)]
        >>> [s.indices for s in plan_buckets(ps, bucket_cap_mb=0.007, first_bucket_cap_mb=0.003)]
        [(3,), (2, 1), (0,)]
    """
    if not bucket_cap_mb > 0:
        raise ValueError(f"plan_buckets: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
    if not first_bucket_cap_mb > 0:
        raise ValueError(f"plan_buckets: first_bucket_cap_mb must be > 0, got {first_bucket_cap_mb}")
    n = len(params)
    visit = list(range(n - 1, -1, -1)) if order is None else [int(i) for i in order]
    if sorted(visit) != list(range(n)):
        raise ValueError(f"plan_buckets: order must be a permutation of range({n}), got {list(order or [])}")
    cap = int(bucket_cap_mb * MIB)
    first_cap = int(first_bucket_cap_mb * MIB)
    open_buckets: dict[tuple[torch.dtype, torch.device], list[int]] = {}
    open_bytes: dict[tuple[torch.dtype, torch.device], int] = {}
    limits: dict[tuple[torch.dtype, torch.device], int] = {}
    closed: list[list[int]] = []
    for i in visit:
        p = params[i]
        key = (p.dtype, p.device)
        members = open_buckets.setdefault(key, [])
        members.append(i)
        open_bytes[key] = open_bytes.get(key, 0) + p.numel() * _itemsize(p.dtype)
        if open_bytes[key] >= limits.setdefault(key, first_cap):
            closed.append(members)
            limits[key] = cap
            del open_buckets[key]
            open_bytes[key] = 0
    closed.extend(members for members in open_buckets.values() if members)
    position = {index: pos for pos, index in enumerate(visit)}
    closed.sort(key=lambda members: position[members[0]])
    return [_spec(params, members) for members in closed]


def _spec(params: Sequence[torch.Tensor], members: list[int]) -> BucketSpec:
    offsets = []
    total = 0
    for i in members:
        offsets.append(total)
        total += params[i].numel()
    first = params[members[0]]
    return BucketSpec(tuple(members), tuple(offsets), total, first.dtype, first.device)


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype, device="meta").element_size()
