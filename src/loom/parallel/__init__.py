"""Data-parallel training: DistributedDataParallel with bucketing, overlap and static graph.

API-compatible with ``torch.nn.parallel.DistributedDataParallel``. Being built: see the project's issues.
"""

from __future__ import annotations

__all__: list[str] = []
