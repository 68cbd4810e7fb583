"""GPU smoke check (world size 1, NCCL): Loom DDP and torch DDP train a channels_last CNN identically.

PYTHONPATH=src python benchmarks/ddp_cuda_parity.py
"""

from __future__ import annotations

import copy
import os
import socket

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as TorchDDP

from loom.parallel import DistributedDataParallel as LoomDDP


def net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip


class WithUnusedHead(nn.Module):
    """``net()`` plus a head forward never calls: it must keep ``grad=None`` (find_unused / static graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = net()
        self.unused = nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def train(model: nn.Module, steps: int = 4) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(steps):
        g = torch.Generator(device="cuda").manual_seed(step)
        x = torch.randn(16, 3, 32, 32, device="cuda", generator=g).to(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (16,), device="cuda", generator=g)
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x)
        nn.functional.cross_entropy(out.float(), y).backward()
        opt.step()


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=0, world_size=1)
    torch.cuda.set_device(0)
    modes = {
        "default": {},
        "gradient_as_bucket_view": {"gradient_as_bucket_view": True},
        "find_unused_parameters": {"find_unused_parameters": True},
        "static_graph": {"static_graph": True},
        "static_graph+view": {"static_graph": True, "gradient_as_bucket_view": True},
        # with a head no rank uses: the used map is staged to the GPU and read back
        "find_unused_parameters, unused head": {"find_unused_parameters": True},
        "find_unused_parameters+view, unused head": {
            "find_unused_parameters": True,
            "gradient_as_bucket_view": True,
        },
        "static_graph, unused head": {"static_graph": True},
    }
    worst = 0.0
    for name, kwargs in modes.items():
        torch.manual_seed(0)
        base = (
            (WithUnusedHead() if "unused head" in name else net())
            .cuda()
            .to(memory_format=torch.channels_last)
        )
        loom = LoomDDP(copy.deepcopy(base), device_ids=[0], **kwargs)
        anchor = TorchDDP(copy.deepcopy(base), device_ids=[0], **kwargs)
        train(loom)
        train(anchor)
        diff = max(
            (p - q).abs().max().item()
            for p, q in zip(loom.state_dict().values(), anchor.state_dict().values())
        )
        strides_ok = all(p.grad is None or p.grad.stride() == p.stride() for p in loom.module.parameters())
        none_same = [p.grad is None for p in loom.module.parameters()] == [
            p.grad is None for p in anchor.module.parameters()
        ]
        worst = max(worst, diff if strides_ok and none_same else float("inf"))
        print(
            f"{name}: max |loom - torch| = {diff:.3g}; grad strides match params: {strides_ok}; "
            f"same grads left None as torch: {none_same}"
        )
    dist.destroy_process_group()
    print("OK" if worst <= 1e-5 else "MISMATCH")


if __name__ == "__main__":
    main()
