"""``loom demo``: the three subsystems end to end on the bundled handwritten digits.

Data (loom.data): the digits are written as webdataset-style tar shards, then read back through
FileLister -> FileOpener -> load_from_tar -> webdataset -> decode -> shuffle -> sharding_filter -> batch ->
collate by a DataLoader2 with worker processes on every rank. Model (loom.func): a small CNN trained with
DP-SGD, per-sample gradients from ``vmap(grad(loss))`` over ``functional_call``. Training (loom.parallel):
DistributedDataParallel across 1 or 2 local processes. Then a mid-epoch checkpoint is resumed in a fresh
loader and model and compared with the uninterrupted run, and the loss curve is drawn.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loom._demo import _data, _launch, _plot

_SEED = 0
_TEST_FRACTION = 0.2


@dataclass
class DemoOptions:
    """What ``loom demo`` runs; ``quick`` is the test suite's small run."""

    epochs: int | None = None
    workers: int = 1
    processes: int = 2
    device: str = "cpu"
    out: str | None = None
    quick: bool = False
    min_accuracy: float | None = None


def _config(opts: DemoOptions, out: Path, n_train: int) -> dict[str, Any]:
    epochs = opts.epochs if opts.epochs is not None else (2 if opts.quick else 8)
    return {
        "epochs": epochs,
        "workers": opts.workers,
        "device": opts.device,
        "out": str(out),
        "shards": str(out / "shards"),
        "seed": _SEED,
        "test_fraction": _TEST_FRACTION,
        "batch_size": 64 // opts.processes,  # a global batch of 64
        "lr": 0.15,
        "total_steps": epochs * math.ceil(n_train / 64),  # for the learning-rate decay
        "clip": 1.0,
        "noise_multiplier": 1.0,
        "collective_timeout": 120,
    }


def _check_options(opts: DemoOptions) -> str | None:
    if opts.processes not in (1, 2):
        return f"--processes must be 1 or 2, got {opts.processes}"
    if opts.workers < 0:
        return f"--workers must be >= 0, got {opts.workers}"
    if opts.epochs is not None and opts.epochs < 1:
        return f"--epochs must be >= 1, got {opts.epochs}"
    if opts.device not in ("cpu", "cuda"):
        return f"--device must be cpu or cuda, got {opts.device!r}"
    if opts.device == "cuda":
        import torch

        if torch.cuda.device_count() < opts.processes:
            return f"--device cuda needs {opts.processes} GPU(s), found {torch.cuda.device_count()}"
    return None


def run_demo(opts: DemoOptions) -> int:
    """Run the demo; 0 if every check passed, 1 if one failed, 2 for bad options."""
    problem = _check_options(opts)
    if problem:
        print(f"loom demo: {problem}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    out = Path(opts.out) if opts.out else Path(tempfile.gettempdir()) / "loom-demo"
    out.mkdir(parents=True, exist_ok=True)
    threshold = opts.min_accuracy if opts.min_accuracy is not None else (0.5 if opts.quick else 0.85)

    images, labels = _data.load_digits()
    (train_x, train_y), (test_x, _) = _data.split(images, labels, _TEST_FRACTION, _SEED)
    cfg = _config(opts, out, len(train_y))
    # what an earlier run left (only the demo's own file names: --out may be a folder with other files)
    for stale in [
        *Path(cfg["shards"]).glob("shard-*.tar"),
        *out.glob("rank-*.json"),
        *out.glob("checkpoint-rank*.pt"),
    ]:
        stale.unlink()
    shards = _data.write_shards(Path(cfg["shards"]), train_x, train_y, num_shards=8)
    world = opts.processes
    backend = "nccl, gloo for CPU tensors" if opts.device == "cuda" else "gloo"
    print(
        f"data: {len(labels):,} handwritten digits (8x8, bundled: UCI via scikit-learn, BSD-3), "
        f"{len(train_y):,} train / {len(test_x):,} test; {len(shards)} tar shards in {cfg['shards']}"
    )
    print(
        "pipeline: FileLister -> FileOpener -> load_from_tar -> webdataset -> map(decode) -> shuffle -> "
        f"sharding_filter -> batch({cfg['batch_size']}) -> collate; DataLoader2, {opts.workers} worker(s) "
        f"per rank"
    )
    print(
        f"training: CNN, DP-SGD (clip C={cfg['clip']}, noise sigma={cfg['noise_multiplier']}, global batch "
        f"{cfg['batch_size'] * world}) with loom.func per-sample gradients, loom.parallel DDP over {world} "
        f"process(es) ({backend}, {opts.device}), {cfg['epochs']} epoch(s)",
        flush=True,
    )
    config_path = out / "config.json"
    config_path.write_text(json.dumps(cfg))
    codes = _launch.launch(config_path, world, timeout=170 if opts.quick else 600)
    if any(codes):
        print(f"loom demo: FAILED: rank exit codes {codes}", file=sys.stderr)
        return 1
    results = [json.loads((out / f"rank-{r}.json").read_text()) for r in range(world)]
    return _report(results, cfg, threshold, out, began)


def _report(
    results: list[dict[str, Any]], cfg: dict[str, Any], threshold: float, out: Path, began: float
) -> int:
    head = results[0]
    ok = True
    grad_ok = head["grad_check_max_diff"] < 1e-5
    ok &= grad_ok
    print(
        f"check: DDP's averaged gradient of the reweighted loss = the clipped mean of the vmap(grad) per-sample "
        f"gradients (max |diff| {head['grad_check_max_diff']:.1e}): {'OK' if grad_ok else 'FAILED'}"
    )
    acc = head["test_accuracy"]
    acc_ok = acc > threshold
    ok &= acc_ok
    print(
        f"test accuracy: {acc:.2%} on {head['test_size']} held-out digits (chance 10%, threshold "
        f"{threshold:.0%}): {'OK' if acc_ok else 'FAILED'}"
    )
    batches_ok = all(r["resume_batches_identical"] and r["batches_after_resume"] > 0 for r in results)
    weights = max(r["resume_weights_max_diff"] for r in results)
    weights_ok = weights < 1e-6
    ok &= batches_ok and weights_ok
    per_rank = ", ".join(f"rank {r['rank']}: {r['batches_after_resume']}" for r in results)
    print(
        f"checkpoint: epoch {cfg['epochs']}, after step {head['checkpoint_step']} of {head['steps_per_epoch']}: "
        f"model, optimizer, noise generator and DataLoader2 state_dict() in {out}/checkpoint-rank*.pt"
    )
    print(
        f"resume check: batches after resume identical to the uninterrupted run's ({per_rank}): "
        f"{'OK' if batches_ok else 'FAILED'}; weights at the end of the epoch max |diff| {weights:.1e}: "
        f"{'OK' if weights_ok else 'FAILED'}"
    )
    png = out / "loss.png"
    why = _plot.plot_losses(head["losses"], head["steps_per_epoch"], acc, png)
    print(f"loss curve: {png}" if why is None else f"loss curve: skipped, {why}")
    print(
        f"loom demo: {'all checks passed' if ok else 'FAILED'} in {time.perf_counter() - began:.0f} s "
        f"(training {head['train_seconds']:.0f} s)"
    )
    return 0 if ok else 1


__all__ = ["DemoOptions", "run_demo"]
