"""The ``loom`` console script: --version, info, bench."""

from __future__ import annotations

import subprocess
import sys

import torch

import loom
from loom import cli


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loom.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_version_flag() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"loom {loom.__version__}"


def test_info_reports_torch_cuda_and_backends() -> None:
    result = _run("info")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"torch {torch.__version__}" in out
    assert f"cuda available: {torch.cuda.is_available()}" in out
    import torch.distributed as dist

    if dist.is_available() and dist.is_gloo_available():
        assert "gloo" in out.split("distributed backends:")[1]


def test_info_lines_match_gpu_count() -> None:
    gpu_lines = [line for line in cli.info_lines() if line.startswith("gpu ")]
    assert len(gpu_lines) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


def test_bench_runs_a_suite_and_writes_json(tmp_path) -> None:
    out = tmp_path / "bench.json"
    result = _run("bench", "overhead", "--quick", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "baseline/loom" in result.stdout
    import json

    records = json.loads(out.read_text())
    assert records[0]["suite"] == "overhead"
    assert records[0]["machine"]["torch"] == torch.__version__


def test_bench_unknown_suite_is_a_clear_error() -> None:
    result = _run("bench", "no_such_suite")
    assert result.returncode == 2
    assert "no_such_suite" in result.stderr and "unknown suite" in result.stderr
