"""The ``loom`` command: ``loom --version``, ``loom info``, ``loom demo``, ``loom bench``.

Example:
    $ loom info
    loom 0.1.0.dev0
    python 3.11.7
    torch 2.13.0+cpu
    ...
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import loom

__all__ = ["info_lines", "main"]


def _distributed_backends() -> list[str]:
    import torch.distributed as dist

    if not dist.is_available():
        return []
    checks = {
        "gloo": dist.is_gloo_available,
        "nccl": dist.is_nccl_available,
        "mpi": dist.is_mpi_available,
        "ucc": getattr(dist, "is_ucc_available", lambda: False),
    }
    return [name for name, available in checks.items() if available()]


def info_lines() -> list[str]:
    """What ``loom info`` prints: versions, devices and distributed backends, one per line."""
    import torch

    lines = [
        f"loom {loom.__version__}",
        f"python {platform.python_version()} ({sys.executable})",
        f"torch {torch.__version__}",
        f"cuda available: {torch.cuda.is_available()}",
    ]
    if torch.cuda.is_available():
        lines.append(f"cuda version: {torch.version.cuda}")
        for i in range(torch.cuda.device_count()):
            lines.append(f"gpu {i}: {torch.cuda.get_device_name(i)}")
    backends = _distributed_backends()
    lines.append(f"distributed backends: {', '.join(backends) if backends else 'none'}")
    return lines


def _cmd_info(args: argparse.Namespace) -> int:
    print("\n".join(info_lines()))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    # The end-to-end demo lands with its issue; until then the demo shows the environment.
    print("loom demo: the end-to-end demo is not built yet; showing `loom info` instead.\n")
    return _cmd_info(args)


def _benchmarks_dir() -> Path:
    # Benchmarks live in the source checkout, beside src/ (they import the anchors, which the package must not).
    return Path(loom.__file__).resolve().parents[2] / "benchmarks"


def _cmd_bench(args: argparse.Namespace) -> int:
    bench_dir = _benchmarks_dir()
    available = {p.stem.removeprefix("bench_"): p for p in sorted(bench_dir.glob("bench_*.py"))}
    if not available:
        print(
            f"loom bench: no benchmarks found in {bench_dir} (run it from a source checkout)", file=sys.stderr
        )
        return 2
    unknown = [s for s in args.suite if s not in available]
    if unknown:
        print(
            f"loom bench {' '.join(args.suite)}: unknown suite(s) {unknown}; have {sorted(available)}",
            file=sys.stderr,
        )
        return 2
    chosen = args.suite or sorted(available)
    records: list[object] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for suite in chosen:
            out = Path(tmp) / f"{suite}.json"
            cmd = [
                sys.executable,
                str(available[suite]),
                "--json",
                str(out),
                *(["--quick"] if args.quick else []),
            ]
            if subprocess.run(cmd, cwd=bench_dir).returncode != 0 or not out.exists():
                failed.append(suite)
                continue
            records.append(json.loads(out.read_text()))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2))
    if failed:
        print(f"loom bench: suite(s) failed: {failed}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loom", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"loom {loom.__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("info", help="versions, CUDA devices and distributed backends").set_defaults(
        func=_cmd_info
    )
    sub.add_parser("demo", help="the end-to-end demo").set_defaults(func=_cmd_demo)
    bench = sub.add_parser("bench", help="run the benchmark suites (Loom vs its anchors)")
    bench.add_argument("suite", nargs="*", help="suite names (default: all available)")
    bench.add_argument("--json", default=None, help="write the results as JSON to this file")
    bench.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loom`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
