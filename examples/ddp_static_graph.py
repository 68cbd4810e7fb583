"""Data-parallel training with ``static_graph=True`` and activation checkpointing, launched with ``torchrun``.

The model's blocks run under reentrant activation checkpointing (``torch.utils.checkpoint`` with
``use_reentrant=True``): their backward recomputes the forward, so gradient hooks fire in an order
autograd only learns during backward. That is the case ``static_graph=True`` exists for: Loom's
``DistributedDataParallel`` records the first iteration (which parameters are used, how often each hook
fires, the order gradients become ready) and reuses it. The model also has a parameter that forward never
uses, which static graph handles without ``find_unused_parameters``.

Each rank trains on its own slice of every global batch. Checks, printed by rank 0:
- the parameters after training equal a single-process run of plain PyTorch on the whole global batch
  (float64, tolerance 1e-9): data parallelism changes nothing but the speed;
- every rank holds the same parameters;
- the same training with ``torch.nn.parallel.DistributedDataParallel`` gives the same parameters;
- the loss went down (the last 5 steps' mean below half the first 5 steps').

Run (2 processes on CPU with Gloo; NCCL and one GPU per process when CUDA is available):

    torchrun --nproc-per-node=2 examples/ddp_static_graph.py [--steps N] [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.checkpoint import checkpoint

from loom.parallel import DistributedDataParallel


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.tanh(self.fc1(x)))


class CheckpointedNet(nn.Module):
    def __init__(self, features: int, width: int, depth: int, checkpointing: bool = True) -> None:
        super().__init__()
        self.embed = nn.Linear(features, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.head = nn.Linear(width, 1)
        self.unused = nn.Linear(width, width)  # never called in forward
        self.checkpointing = checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=True) if self.checkpointing else block(x)
        return self.head(x)


def make_data(
    steps: int, global_batch: int, features: int, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same global batches on every rank (seeded); each rank then takes its slice."""
    gen = torch.Generator().manual_seed(1234)
    true_w = torch.randn(features, 1, generator=gen, dtype=torch.float64) / features**0.5
    batches = []
    for _ in range(steps):
        x = torch.randn(global_batch, features, generator=gen, dtype=torch.float64)
        y = torch.sin(x @ true_w) + 0.1 * torch.randn(global_batch, 1, generator=gen, dtype=torch.float64)
        batches.append((x.to(device), y.to(device)))
    return batches


def train(models: list[nn.Module], batches, rank: int, world: int, lr: float):  # type: ignore[no-untyped-def]
    """Trains each model on the same batches (this rank's slice), step by step in turn.

    Returns each model's losses and seconds spent; taking turns every step lets a busy machine's
    noise hit all models alike.
    """
    optimizers = [torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9) for m in models]
    losses: list[list[float]] = [[] for _ in models]
    seconds = [0.0 for _ in models]
    for x, y in batches:
        shard = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
        for i, (model, optimizer) in enumerate(zip(models, optimizers)):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(x[shard]), y[shard])
            loss.backward()
            optimizer.step()
            losses[i].append(loss.item())
            seconds[i] += time.perf_counter() - start
    return losses, seconds


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64, help="global batch (split across ranks)")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (the test suite's run)")
    args = parser.parse_args()
    if "RANK" not in os.environ:
        print(
            "launch with torchrun: torchrun --nproc-per-node=2 examples/ddp_static_graph.py", file=sys.stderr
        )
        return 2
    steps = 20 if args.quick else args.steps
    features, width, depth, lr = 16, 32, 3, 0.05
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    device_ids = [local_rank] if device.type == "cuda" else None
    # Keep one-time costs out of the timings: the first collective sets up connections, and torch's
    # first optimizer step imports its compiler machinery (seconds on a busy machine).
    dist.barrier()
    warm = torch.zeros(1, requires_grad=True)
    warm.grad = torch.zeros(1)
    torch.optim.SGD([warm], lr=0.1, momentum=0.9).step()

    torch.manual_seed(0)  # the same initial model everywhere (DDP broadcasts rank 0's anyway)
    initial = CheckpointedNet(features, width, depth).double().to(device)
    batches = make_data(steps, args.batch, features, device)

    model = DistributedDataParallel(copy.deepcopy(initial), device_ids=device_ids, static_graph=True)
    anchor = torch.nn.parallel.DistributedDataParallel(
        copy.deepcopy(initial), device_ids=device_ids, static_graph=True
    )
    (losses, _), (loom_s, torch_s) = train([model, anchor], batches, rank, world, lr)

    # Every rank's parameters, gathered for comparison.
    mine = flat_params(model.module)
    gathered = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    same_everywhere = all(torch.equal(g, gathered[0]) for g in gathered)

    # The plain-PyTorch way: one process, the whole global batch, no checkpointing.
    reference = CheckpointedNet(features, width, depth, checkpointing=False).double().to(device)
    reference.load_state_dict(initial.state_dict())
    train([reference], batches, 0, 1, lr)
    err = (mine - flat_params(reference)).abs().max().item()
    err_torch = (mine - flat_params(anchor.module)).abs().max().item()
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    ok = same_everywhere and err < 1e-9 and err_torch < 1e-9 and last < 0.5 * first
    if rank == 0:
        print(
            f"{world} processes on {device.type} ({dist.get_backend()}), {steps} steps, static_graph=True, checkpointed blocks"
        )
        print(f"loss (mean of 5 steps): {first:.4f} at the start -> {last:.4f} at the end")
        print(f"parameters identical on every rank: {same_everywhere}")
        print(f"vs single-process plain PyTorch on the global batch: max |diff| {err:.1e}")
        print(f"vs torch.nn.parallel.DistributedDataParallel: max |diff| {err_torch:.1e}")
        print(f"time: Loom DDP {loom_s:.2f} s, torch DDP {torch_s:.2f} s")
    flag = torch.tensor([1.0 if ok else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    ok = bool(flag.item() == 1.0)
    if rank == 0:
        print("check:", "OK" if ok else "FAILED")
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    code = main()
    # Leave without Python's interpreter shutdown. On torch 2.13 a Gloo worker thread can still be
    # releasing its last reference to a tensor of a finished collective while Python shuts down; it then
    # needs the GIL, is stopped by the shutting-down interpreter inside a C++ destructor, and the process
    # aborts ("terminate called without an active exception"), in a fifth to a third of 2-process runs
    # here, with torch's DDP as with Loom's and with no DDP at all (plain training plus dist.all_reduce).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
