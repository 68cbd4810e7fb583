"""Start Gloo jobs of a few processes from a test, with timeouts everywhere, and collect their results.

A job is ``module:function``; each rank calls ``function(rank, world_size)`` after joining a Gloo group on
a free port and sends back what it returns (usually ``{case name: result}``). Nothing can hang: the
process group has a short timeout, results are awaited with a deadline, and stragglers are killed.
"""

from __future__ import annotations

import datetime
import importlib
import multiprocessing as mp
import os
import queue
import socket
import time
import traceback
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world: int, port: int, target: str, results: Any, pg_timeout: float) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    try:
        dist.init_process_group(
            "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=pg_timeout)
        )
        module_name, function_name = target.split(":")
        value = getattr(importlib.import_module(module_name), function_name)(rank, world)
        results.put((rank, value))
    except BaseException:
        results.put((rank, {"__job_error__": traceback.format_exc()}))
    # no destroy_process_group: a peer may be dead on purpose; the parent ends us
    results.close()
    results.join_thread()
    os._exit(0)


def run_job(
    target: str,
    world: int = 2,
    timeout: float = 150.0,
    pg_timeout: float = 30.0,
    wait_for: tuple[int, ...] | None = None,
) -> dict[int, Any]:
    """Run ``target`` on ``world`` Gloo ranks; returns ``{rank: result}`` for the ranks that reported.

    Waits for the ranks in ``wait_for`` (default: all) or until ``timeout`` seconds have passed, then kills
    whatever still runs.
    """
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(target=_entry, args=(r, world, port, target, results, pg_timeout), daemon=True)
        for r in range(world)
    ]
    for p in procs:
        p.start()
    wanted = set(range(world) if wait_for is None else wait_for)
    got: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        while not wanted <= set(got) and time.monotonic() < deadline:
            try:
                rank, value = results.get(timeout=0.5)
            except queue.Empty:
                if all(not p.is_alive() for p in procs) and results.empty():
                    break
                continue
            got[rank] = value
    finally:
        for rank, p in enumerate(procs):
            grace = 5.0 if rank in wanted else 0.5  # ranks we do not wait for may be stalled on purpose
            p.join(timeout=max(0.1, min(grace, deadline - time.monotonic())))
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    return got
