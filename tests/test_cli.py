"""The ``loom`` console script: --version, info, bench."""

from __future__ import annotations

import subprocess
import sys

import pytest
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


def test_bench_summary_and_plot_match_the_json(tmp_path) -> None:
    import json

    pytest.importorskip("matplotlib")
    out, chart = tmp_path / "bench.json", tmp_path / "ratios.png"
    result = _run("bench", "overhead", "--quick", "--json", str(out), "--plot", str(chart))
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text())
    # The summary repeats every ratio of the JSON (rounded as printed).
    summary = result.stdout.split("== summary")[1]
    for rec in records[0]["records"]:
        for who, ratio in rec["ratio_vs_loom"].items():
            assert any(
                line.split()[:2] == ["overhead", rec["name"].split()[0]]
                and f"{ratio:.2f}x" in line
                and who in line
                for line in summary.splitlines()
            ), (rec, summary)
    # A real PNG that matplotlib reads back, and no partial file left behind.
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    image = matplotlib.image.imread(str(chart))
    assert image.shape[0] > 50 and image.shape[1] > 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "ratios.png"]


def test_summary_table_lists_every_ratio() -> None:
    records = [
        {"suite": "a", "records": [{"name": "x", "ratio_vs_loom": {"torch": 2.0, "loop": 0.5}}]},
        {"suite": "b", "records": [{"name": "y", "ratio_vs_loom": {"torch": 1.234}}]},
    ]
    lines = cli.summary_table(records).splitlines()
    assert lines[0].split() == ["suite", "benchmark", "baseline", "baseline/loom"]
    assert [line.split() for line in lines[1:]] == [
        ["a", "x", "torch", "2.00x"],
        ["a", "x", "loop", "0.50x"],
        ["b", "y", "torch", "1.23x"],
    ]


def test_bench_plot_problems_are_reported_before_running(tmp_path, monkeypatch, capsys) -> None:
    import sys as _sys

    assert cli.main(["bench", "overhead", "--plot", str(tmp_path / "chart.txt")]) == 2
    assert "must end in .png" in capsys.readouterr().err
    assert cli.main(["bench", "overhead", "--plot", str(tmp_path / "missing" / "c.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setitem(_sys.modules, "matplotlib", None)  # as if not installed
    assert cli.main(["bench", "overhead", "--plot", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert "matplotlib is not installed" in err and "loom[plot]" in err
    assert list(tmp_path.iterdir()) == []
