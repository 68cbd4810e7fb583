"""Failure job: a peer that stops calling backward, then one that dies, must make rank 0 fail clearly.

Each scenario runs on its own Gloo group with a short timeout, so one job covers all of them: rank 1
"stalls" by sleeping past rank 0's timeout, then joins the next scenario's group; finally it exits abruptly.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

import torch
import torch.distributed as dist
from _par_models import D_IN, MLP, B

from loom.parallel import DistributedDataParallel as LoomDDP

GROUP_TIMEOUT = 3.0
STALL = GROUP_TIMEOUT + 1.0


def _step(model: LoomDDP) -> None:
    model(torch.randn(B, D_IN)).sum().backward()


def _scenario(rank: int, peer_action: str, **kwargs: Any) -> dict[str, Any]:
    group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=GROUP_TIMEOUT))
    model = LoomDDP(MLP(), process_group=group, **kwargs)
    _step(model)
    _step(model)
    if rank == 1:
        if peer_action == "die":
            os._exit(3)
        time.sleep(STALL)  # stops calling backward for longer than rank 0's timeout
        return {}
    start = time.monotonic()
    try:
        for _ in range(3):
            _step(model)
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}", "seconds": time.monotonic() - start}
    return {"error": None, "seconds": time.monotonic() - start}


def run_failures(rank: int, world: int) -> dict[str, Any]:
    return {
        "peer_stalls": _scenario(rank, "stall"),
        "peer_stalls_static_grad_view": _scenario(
            rank, "stall", static_graph=True, gradient_as_bucket_view=True
        ),
        "peer_stalls_find_unused": _scenario(rank, "stall", find_unused_parameters=True),
        "peer_dies": _scenario(rank, "die"),
    }
