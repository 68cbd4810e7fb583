"""DistributedReadingService on 2 Gloo ranks: shared seed, disjoint shards, uneven shards end together, resume."""

from __future__ import annotations

import multiprocessing
import queue
import socket
import time
from typing import Any

import pytest

from loom.data._random import mix

from . import _dist_jobs
from ._pipes import round_robin, shard_run

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(120)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(world: int, cut: int, timeout: float = 90.0) -> dict[int, Any]:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    port = _free_port()
    # Not daemonic: a rank starts worker processes of its own.
    procs = [
        ctx.Process(target=_dist_jobs.rank_main, args=(r, world, port, cut, results)) for r in range(world)
    ]
    for p in procs:
        p.start()
    got: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(got) < world and time.monotonic() < deadline:
            try:
                rank, value = results.get(timeout=0.5)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    break
                continue
            got[rank] = value
    finally:
        for p in procs:
            p.join(max(0.1, min(5.0, deadline - time.monotonic())))
            if p.is_alive():
                p.kill()
                p.join(5)
    assert len(got) == world, (
        f"ranks did not report in time: {sorted(got)}, exit codes {[p.exitcode for p in procs]}"
    )
    for value in got.values():
        assert isinstance(value, dict), value
    return got


def test_two_ranks_with_and_without_workers() -> None:
    cut = 7
    got = _run(2, cut)
    shortest = _dist_jobs.N // 2  # 11: the longer shard (12) is cut to it
    # Alone: the seed is rank 0's although torch's seed differs per rank, so the shards are disjoint.
    for epoch in range(2):
        a, b = got[0]["alone"][epoch], got[1]["alone"][epoch]
        assert len(a) == len(b) == shortest
        assert not set(a) & set(b)
        assert set(a) | set(b) <= {x * 10 for x in range(_dist_jobs.N)}
    assert got[0]["alone"][0] != got[0]["alone"][1]
    # With 2 workers per rank: rank r, worker w is shard w + 2r of 4, read round-robin, cut to the shortest.
    for epoch in range(2):
        seed = mix(5, epoch)
        per_rank = [
            round_robin([shard_run(_dist_jobs.build(), 4, w + 2 * r, seed) for w in range(2)])
            for r in range(2)
        ]
        length = min(len(x) for x in per_rank)
        for r in range(2):
            assert got[r]["workers"][epoch] == per_rank[r][:length]
    # Resume mid-epoch on both ranks: nothing lost, nothing repeated, later epoch identical.
    for r in range(2):
        assert got[r]["taken"] + got[r]["rest"] == got[r]["workers"][0] + got[r]["workers"][1]
