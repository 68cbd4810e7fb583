"""DDP host overhead: the CPU time a DDP wrapper adds to a training step, Loom vs torch, world size 1.

On the 2-core machine two training processes share the cores with their Gloo threads, and the
2-process throughput of Loom DDP and torch DDP cannot be told apart at the 1% level (BENCHMARKS.md: two
torch DDPs against each other spread 0.95-1.05x). What each wrapper adds to a step is measured here
instead, on the calling thread's CPU clock (``time.thread_time``), which scheduling barely disturbs: a
plain module, Loom DDP and torch DDP (same weights, same batch) take training steps in turns, in a new
shuffled order each round, and each step's forward and backward are timed. Overhead = median DDP phase
- median plain phase. At world size 1 over Gloo the buckets, hooks, all-reduce launches, waits and
write-backs all run on this thread (backward on CPU runs on the caller's thread); the all-reduce itself
runs on Gloo's thread and is the same work for both.

With ``--world 2`` the same runs on two spawned ranks, where the all-reduces are real and the two
processes and their Gloo threads share the cores (the setting of bench_parallel.py); ``--bench-sizes``
takes bench_parallel.py's model sizes and batch. The thread clock stays steadier there than the wall
clock: two torch DDPs against each other (mlp) came out within 0.5% per step and 80 us per backward of
about 8 ms, where their wall times were up to 4% apart.

    python benchmarks/ddp_host_overhead.py [--steps 3000] [--json out.json]
    python benchmarks/ddp_host_overhead.py --world 2 --bench-sizes --steps 400 --only mlp
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as TorchDDP

from bench_parallel import MLP, RecModel, built
from harness import format_rows, machine_info
from loom.parallel import DistributedDataParallel as LoomDDP

Batch = tuple[torch.Tensor, ...]


def cases(batch: int, bench_sizes: bool) -> list[tuple[str, Callable[[], nn.Module], dict[str, Any], Batch]]:
    rows = 2000 if bench_sizes else 200
    g = torch.Generator().manual_seed(0)
    mlp_batch = (torch.randn(batch, 256, generator=g),)
    rec_batch = (torch.randn(batch, 13, generator=g), torch.randint(0, rows, (batch, 8, 4), generator=g))
    # small layers by default: the wrapper's share of the step is large
    mlp = lambda: MLP(width=512 if bench_sizes else 64)  # noqa: E731
    rec = lambda: RecModel(rows=rows)  # noqa: E731
    return [
        ("mlp default", mlp, {}, mlp_batch),
        ("mlp gradient_as_bucket_view", mlp, {"gradient_as_bucket_view": True}, mlp_batch),
        ("mlp static_graph", mlp, {"static_graph": True}, mlp_batch),
        ("rec find_unused_parameters", rec, {"find_unused_parameters": True}, rec_batch),
        ("rec static_graph", rec, {"static_graph": True}, rec_batch),
    ]


def timed_step(model: nn.Module, batch: Batch) -> Callable[[], tuple[float, float]]:
    """One SGD step; returns the forward and backward CPU seconds of this thread."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> tuple[float, float]:
        opt.zero_grad(set_to_none=True)
        t0 = time.thread_time()
        out = model(*batch)
        t1 = time.thread_time()
        out.float().pow(2).mean().backward()
        t2 = time.thread_time()
        opt.step()
        return t1 - t0, t2 - t1

    return step


def measure_case(
    make: Callable[[], nn.Module], kwargs: dict[str, Any], batch: Batch, steps: int
) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    weights = make().state_dict()

    contenders = {
        "plain": built(lambda m: m, make, weights, {}),
        "loom": built(LoomDDP, make, weights, kwargs),
        "torch": built(TorchDDP, make, weights, kwargs),
    }
    step_of = {who: timed_step(model, batch) for who, model in contenders.items()}
    for _ in range(20):  # past the first iterations (static graph record, bucket rebuilds)
        for step in step_of.values():
            step()
    times: dict[str, list[tuple[float, float]]] = {who: [] for who in contenders}
    order = list(contenders)
    shuffle = random.Random(0).shuffle
    for _ in range(steps):
        shuffle(order)
        for who in order:
            times[who].append(step_of[who]())
    return {
        who: {
            "forward_us": statistics.median(f for f, _ in ts) * 1e6,
            "backward_us": statistics.median(b for _, b in ts) * 1e6,
        }
        for who, ts in times.items()
    }


def overhead(result: dict[str, dict[str, float]], who: str) -> tuple[float, float]:
    plain = result["plain"]
    return (
        result[who]["forward_us"] - plain["forward_us"],
        result[who]["backward_us"] - plain["backward_us"],
    )


def run_rank(rank: int, world: int, port: int, args: argparse.Namespace) -> None:
    """Every case on this rank (all ranks take the same steps in the same order); rank 0 reports."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    batch_size = args.batch or (128 if args.bench_sizes else 32)
    results = {}
    rows = [
        ("case", "plain fwd+bwd us", "Loom adds (fwd / bwd) us", "torch adds (fwd / bwd) us", "torch/Loom")
    ]
    for name, make, kwargs, batch in cases(batch_size, args.bench_sizes):
        if args.only is not None and args.only not in name:
            continue
        result = measure_case(make, kwargs, batch, args.steps)
        results[name] = result
        loom_f, loom_b = overhead(result, "loom")
        torch_f, torch_b = overhead(result, "torch")
        plain = result["plain"]["forward_us"] + result["plain"]["backward_us"]
        rows.append(
            (
                name,
                f"{plain:.0f}",
                f"{loom_f + loom_b:.0f} ({loom_f:.0f} / {loom_b:.0f})",
                f"{torch_f + torch_b:.0f} ({torch_f:.0f} / {torch_b:.0f})",
                f"{(torch_f + torch_b) / (loom_f + loom_b):.2f}x",
            )
        )
        if rank == 0:
            print(rows[-1], flush=True)
    if rank == 0:
        print(
            f"\n== DDP host overhead per step, world size {world}, Gloo, rank 0 (median thread CPU time; "
            "> 1: Loom adds less) =="
        )
        print(format_rows(rows))
        if args.json:
            with open(args.json, "w") as f:
                summary = {"steps": args.steps, "batch": batch_size, "world": world, "cases": results}
                json.dump({"machine": machine_info(), **summary}, f)
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)  # see the Gloo shutdown note in examples/ddp_static_graph.py


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3000, help="timed steps per contender and case")
    parser.add_argument(
        "--batch", type=int, default=None, help="per rank (default 32, 128 with --bench-sizes)"
    )
    parser.add_argument("--world", type=int, default=1, help="ranks (spawned here, Gloo on this machine)")
    parser.add_argument(
        "--bench-sizes", action="store_true", help="bench_parallel.py's model sizes and batch"
    )
    parser.add_argument("--only", default=None, help="run only cases whose name contains this text")
    parser.add_argument("--json", default=None, help="write results as JSON to this file")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if args.world == 1:
        run_rank(0, 1, port, args)  # in this process; it leaves through os._exit
        return
    import torch.multiprocessing as mp

    mp.start_processes(run_rank, args=(args.world, port, args), nprocs=args.world, start_method="spawn")


if __name__ == "__main__":
    main()
