"""Starts the demo's ranks as subprocesses on a free port and waits for all of them, with a deadline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import loom


def free_port() -> int:
    """A TCP port free on localhost right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(config: Path, world_size: int, timeout: float) -> list[int]:
    """Run ``python -m loom._demo._train config`` as ranks 0..world_size-1; return their exit codes.

    If a rank fails, the others are stopped rather than left waiting at a collective, and all are stopped
    at the deadline (their code is then -9 or the signal's).
    """
    env = dict(os.environ)
    # The ranks import loom from where this process did (a source tree without installation included).
    src = str(Path(loom.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(world_size))
    procs = []
    for rank in range(world_size):
        env_r = {**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}
        procs.append(subprocess.Popen([sys.executable, "-m", "loom._demo._train", str(config)], env=env_r))
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs):
            failed = any(p.returncode not in (None, 0) for p in procs)
            if failed or time.monotonic() > deadline:
                if not failed:
                    print(f"loom demo: the ranks ran past {timeout:.0f} s; stopping them", file=sys.stderr)
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return [int(p.returncode) for p in procs]
