"""Composable data loading: DataPipes, a loader with reading services, checkpointable state.

API-compatible with torchdata 0.9 (``from loom.data import IterDataPipe`` replaces
``from torchdata.datapipes.iter import IterDataPipe``). Being built: see the project's issues.
"""

from __future__ import annotations

__all__: list[str] = []
