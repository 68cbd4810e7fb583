"""Data-parallel training: DistributedDataParallel with bucketing, overlap and static graph.

API-compatible with ``torch.nn.parallel.DistributedDataParallel``: porting is an import change.
Communication hooks live in :mod:`loom.parallel.comm_hooks`.
"""

from __future__ import annotations

from loom.parallel._bucketing import BucketSpec, plan_buckets
from loom.parallel._ddp import DistributedDataParallel
from loom.parallel._grad_bucket import GradBucket

__all__ = ["BucketSpec", "DistributedDataParallel", "GradBucket", "plan_buckets"]

for _obj in (BucketSpec, DistributedDataParallel, GradBucket, plan_buckets):
    _obj.__module__ = __name__
del _obj
