"""Every script in examples/ runs at its small size (``--quick``) and passes its own check.

Each example compares Loom with the plain-PyTorch way and exits non-zero when they disagree, so this
test only needs the exit code and the closing ``check: OK`` line. Each runs in a subprocess with a
timeout; the DDP example is launched with ``python -m torch.distributed.run --nproc-per-node=2`` (Gloo).
"""

from __future__ import annotations

import os
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
