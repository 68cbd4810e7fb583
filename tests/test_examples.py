"""Every script in examples/ runs at its small size (``--quick``) and passes its own check.

Each example compares Loom with the plain-PyTorch way and exits non-zero when they disagree, so this
test only needs the exit code and the closing ``check: OK`` line. Each runs in a subprocess with a
timeout; the DDP example is launched with ``python -m torch.distributed.run --nproc-per-node=2`` (Gloo), and
once more by two torchrun agents that meet through torchrun's c10d rendezvous, as two machines would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
# Examples that start processes of their own: launched with torchrun, or using DataLoader workers.
TORCHRUN = {"ddp_static_graph.py"}
MULTIPROCESS = {"custom_datapipe.py", *TORCHRUN}
TIMEOUT_S = 240


def _command(script: str) -> list[str]:
    path = str(EXAMPLES / script)
    if script in TORCHRUN:
        # Gloo on CPU whatever the machine: two NCCL ranks would need two GPUs.
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        return [*launcher, path, "--quick", "--device", "cpu"]
    return [sys.executable, path, "--quick"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(EXAMPLES.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def _params() -> list[object]:
    return [
        pytest.param(
            s, marks=[pytest.mark.multiprocess] if s in MULTIPROCESS else [], id=s.removesuffix(".py")
        )
        for s in SCRIPTS
    ]


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 30)
@pytest.mark.parametrize("script", _params())
def test_example_runs_and_passes_its_check(script: str) -> None:
    try:
        result = subprocess.run(
            _command(script),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=EXAMPLES.parent,
            env=_env(),
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(
            f"{script} --quick did not finish in {TIMEOUT_S} s; output so far:\n{err.stdout}\n{err.stderr}"
        )
    tail = f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{script} --quick exited with {result.returncode}\n{tail}"
    assert "check: OK" in result.stdout.splitlines(), f"{script} --quick printed no 'check: OK'\n{tail}"


def test_every_example_is_documented_and_takes_quick() -> None:
    assert len(SCRIPTS) >= 8, SCRIPTS
    for script in SCRIPTS:
        text = (EXAMPLES / script).read_text()
        assert text.startswith('"""'), f"{script}: starts with a docstring saying what it shows"
        assert "--quick" in text and "check:" in text, f"{script}: needs --quick and a printed check"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.timeout(TIMEOUT_S + 30)
def test_ddp_example_across_two_torchrun_agents() -> None:
    """Multi-node through torchrun's rendezvous: two agents (one rank each) find each other via c10d."""
    agent = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{_free_port()}",
        "--rdzv-id=loom-two-agents",
        "--max-restarts=0",
    ]
    command = [*agent, str(EXAMPLES / "ddp_static_graph.py"), "--quick", "--device", "cpu"]
    agents = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=EXAMPLES.parent,
            env=_env(),
        )
        for _ in range(2)
    ]
    outputs = []
    try:
        for proc in agents:
            out, err = proc.communicate(timeout=TIMEOUT_S)
            outputs.append((proc.returncode, out, err))
    except subprocess.TimeoutExpired:
        for proc in agents:
            proc.kill()
        pytest.fail(f"two torchrun agents did not finish the DDP example in {TIMEOUT_S} s")
    for k, (code, out, err) in enumerate(outputs):
        assert code == 0, f"agent {k} exited with {code}\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}"
    oks = [out.splitlines().count("check: OK") for _, out, _ in outputs]
    assert sorted(oks) == [0, 1], f"expected one 'check: OK' from global rank 0, got {oks}: {outputs}"
