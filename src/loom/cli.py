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
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import loom

__all__ = ["info_lines", "main", "summary_table"]


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
    from loom._demo import DemoOptions, run_demo

    opts = DemoOptions(
        epochs=args.epochs,
        workers=args.workers,
        processes=args.processes,
        device=args.device,
        out=args.out,
        quick=args.quick,
        min_accuracy=args.min_accuracy,
    )
    return run_demo(opts)


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
    if args.plot is not None:
        problem = _plot_problem(args.plot)
        if problem:  # before minutes of benchmarks, not after
            print(f"loom bench --plot {args.plot}: {problem}", file=sys.stderr)
            return 2
    chosen = args.suite or sorted(available)
    records: list[dict[str, Any]] = []
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
    if records:
        print("\n== summary: baseline median / Loom median (above 1: Loom is faster) ==")
        print(summary_table(records))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2))
    if args.plot is not None and records:
        _plot_ratios(records, Path(args.plot))
        print(f"bar chart written to {args.plot}")
    if failed:
        print(f"loom bench: suite(s) failed: {failed}", file=sys.stderr)
        return 1
    return 0


def _ratios(records: list[dict[str, Any]]) -> list[tuple[str, str, str, float]]:
    """(suite, benchmark, baseline, baseline/Loom ratio) for every comparison in the suites' JSON."""
    rows = []
    for suite in records:
        for rec in suite.get("records", []):
            for who, ratio in rec.get("ratio_vs_loom", {}).items():
                rows.append((str(suite.get("suite", "?")), str(rec.get("name", "?")), str(who), float(ratio)))
    return rows


def summary_table(records: list[dict[str, Any]]) -> str:
    """One line per comparison of the suites' JSON records: suite, benchmark, baseline and ratio.

    Args:
        records: what ``loom bench --json`` writes: one ``{"suite", "machine", "records"}`` dict per suite.

    Returns:
        A fixed-width table; the ratio is the baseline's median time over Loom's (above 1: Loom is faster).

    Example:
        >>> from loom.cli import summary_table
        >>> rec = {"name": "sum", "ratio_vs_loom": {"python_loop": 2.5}}
        >>> print(summary_table([{"suite": "overhead", "records": [rec]}]))
        suite     benchmark  baseline     baseline/loom
        overhead  sum        python_loop  2.50x
    """
    rows = [("suite", "benchmark", "baseline", "baseline/loom")]
    rows += [(suite, name, who, f"{ratio:.2f}x") for suite, name, who, ratio in _ratios(records)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def _plot_problem(path: str) -> str | None:
    """Why ``--plot path`` cannot work, or None."""
    target = Path(path)
    if target.suffix.lower() not in (".png", ".svg", ".pdf"):
        return f"the file must end in .png, .svg or .pdf, got {target.suffix or 'no suffix'!r}"
    if not target.parent.is_dir():
        return f"directory {str(target.parent)!r} does not exist"
    try:
        import matplotlib  # noqa: F401  (imported only when a chart is asked for)
    except ImportError:
        return "matplotlib is not installed (pip install 'loom[plot]')"
    return None


def _plot_ratios(records: list[dict[str, Any]], path: Path) -> None:
    """A horizontal bar per comparison: baseline time / Loom time, on a log scale around 1."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = _ratios(records)
    labels = [f"{suite}: {name}\nvs {who}" for suite, name, who, _ in rows]
    ratios = [ratio for *_, ratio in rows]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.5))
    colors = ["tab:green" if r >= 1 else "tab:red" for r in ratios]
    # Bars start at 1 (parity): right for Loom faster, left for Loom slower.
    ax.barh(range(len(rows)), [r - 1 for r in ratios], left=1, color=colors)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_xlim(min(0.5, min(ratios) / 1.5), max(2.0, max(ratios) * 1.5))
    ax.axvline(1.0, color="black", linewidth=1)
    for i, r in enumerate(ratios):
        offset, align = (4, "left") if r >= 1 else (-4, "right")
        ax.annotate(
            f"{r:.2f}x",
            (r, i),
            xytext=(offset, 0),
            textcoords="offset points",
            va="center",
            ha=align,
            fontsize=8,
        )
    ax.set_xlabel("baseline time / Loom time (log scale; right of 1: Loom is faster)")
    machine = records[0].get("machine", {})
    ax.set_title(
        f"loom bench: torch {machine.get('torch')}, {machine.get('gpu') or 'CPU'}, {machine.get('date')}"
    )
    fig.tight_layout()
    # Write beside the target, then rename: an interrupted run leaves no half-written chart.
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    try:
        fig.savefig(partial, dpi=120)
        os.replace(partial, path)
    finally:
        plt.close(fig)
        partial.unlink(missing_ok=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loom", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"loom {loom.__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("info", help="versions, CUDA devices and distributed backends").set_defaults(
        func=_cmd_info
    )
    demo = sub.add_parser("demo", help="the end-to-end demo: digits, DP-SGD, DDP, exact resume")
    demo.add_argument("--epochs", type=int, default=None, help="training epochs (default 8; 2 with --quick)")
    demo.add_argument("--workers", type=int, default=1, help="DataLoader2 worker processes per rank")
    demo.add_argument("--processes", type=int, default=2, choices=(1, 2), help="DDP ranks (local processes)")
    demo.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cuda: one GPU per rank, NCCL")
    demo.add_argument(
        "--out", default=None, metavar="DIR", help="shards, checkpoints, loss.png (default: TMP/loom-demo)"
    )
    demo.add_argument("--quick", action="store_true", help="a short run (the test suite's)")
    demo.add_argument(
        "--min-accuracy",
        type=float,
        default=None,
        help="fail below this test accuracy (default 0.85; 0.5 with --quick)",
    )
    demo.set_defaults(func=_cmd_demo)
    bench = sub.add_parser("bench", help="run the benchmark suites (Loom vs its anchors)")
    bench.add_argument("suite", nargs="*", help="suite names (default: all available)")
    bench.add_argument("--json", default=None, help="write the results as JSON to this file")
    bench.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    bench.add_argument(
        "--plot", default=None, metavar="OUT.png", help="draw the ratios as a bar chart (needs matplotlib)"
    )
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
