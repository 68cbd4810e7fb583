"""Failure jobs: a peer that dies or stops calling backward must make rank 0 fail clearly, not hang."""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from _par_models import D_IN, MLP, B

from loom.parallel import DistributedDataParallel as LoomDDP


def _step(model: LoomDDP) -> None:
    model(torch.randn(B, D_IN)).sum().backward()


def _run(rank: int, peer_action: str, **kwargs: Any) -> dict[str, Any]:
    model = LoomDDP(MLP(), **kwargs)
    _step(model)
    _step(model)
    if rank == 1:
        if peer_action == "die":
            os._exit(3)
        time.sleep(120)  # stops calling backward; the parent kills it
    start = time.monotonic()
    try:
        for _ in range(3):
            _step(model)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}", "seconds": time.monotonic() - start}
    return {"error": None, "seconds": time.monotonic() - start}


def peer_dies(rank: int, world: int) -> dict[str, Any]:
    return _run(rank, "die")


def peer_stalls(rank: int, world: int) -> dict[str, Any]:
    return _run(rank, "stall")


def peer_stalls_static(rank: int, world: int) -> dict[str, Any]:
    return _run(rank, "stall", static_graph=True, gradient_as_bucket_view=True)
