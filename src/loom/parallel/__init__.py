"""Data-parallel training: DistributedDataParallel with bucketing, overlap and static graph.

API-compatible with ``torch.nn.parallel.DistributedDataParallel``: porting is an import change.
"""

from __future__ import annotations

from loom.parallel._bucketing import BucketSpec, plan_buckets

__all__ = ["BucketSpec", "plan_buckets"]

for _obj in (BucketSpec, plan_buckets):
    _obj.__module__ = __name__
del _obj
