"""Small models and a training driver shared by the multi-process parity cases.

Each parity case trains three copies of one model from the same weights on the same data: Loom DDP and
torch DDP on two Gloo ranks (each rank sees its slice of the global batch) and a single-process reference
whose loss is the mean over ranks of each rank's loss, computed in one process.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

D_IN, D_HID, D_OUT, B = 8, 16, 4, 6


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(D_IN, D_HID)
        self.fc2 = nn.Linear(D_HID, D_HID)
        self.fc3 = nn.Linear(D_HID, D_OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


class Unused(nn.Module):
    """``never`` is unused everywhere; ``branch`` only on rank 0 (locally unused on rank 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(D_IN, D_HID)
        self.never = nn.Linear(D_HID, D_HID)
        self.branch = nn.Linear(D_HID, D_HID)
        self.fc2 = nn.Linear(D_HID, D_OUT)

    def forward(self, x: torch.Tensor, rank: int) -> torch.Tensor:
        h = torch.tanh(self.fc1(x))
        if rank == 0:
            h = h + torch.tanh(self.branch(h))
        return self.fc2(h)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(D_HID, D_HID)
        self.spare = nn.Linear(D_HID, D_HID)  # unused inside the checkpointed region

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(h))


class CheckpointLast(nn.Module):
    """The last layer checkpointed (reentrant): the first hooks of backward fire inside its inner backward."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(D_IN, D_HID)
        self.fc2 = nn.Linear(D_HID, D_OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return checkpoint(self.fc2, torch.tanh(self.fc1(x)), use_reentrant=True)


class CheckpointTwice(nn.Module):
    """The same block checkpointed (reentrant) twice: its hooks fire twice per backward."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(D_IN, D_HID)
        self.block = Block()
        self.fc2 = nn.Linear(D_HID, D_OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc1(x))
        h = checkpoint(self.block, h, use_reentrant=True)
        h = checkpoint(self.block, h, use_reentrant=True)
        return self.fc2(h)


class TwoHeads(nn.Module):
    """Returns (main, aux); losses may leave aux out."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(D_IN, D_HID)
        self.main = nn.Linear(D_HID, D_OUT)
        self.aux = nn.Linear(D_HID, D_OUT)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.body(x))
        return self.main(h), self.aux(h)


class WithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(D_IN, D_HID)
        self.bn = nn.BatchNorm1d(D_HID)
        self.fc2 = nn.Linear(D_HID, D_OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.bn(self.fc1(x))))


class ChannelsLastConv(nn.Module):
    """Conv weights in channels_last: bucket views must follow their strides."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 6, 2, padding=1)
        self.conv2 = nn.Conv2d(6, 5, 2)
        self.fc = nn.Linear(5 * 2 * 2, D_OUT)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img = x.view(-1, 2, 2, 2).contiguous(memory_format=torch.channels_last)
        h = torch.tanh(self.conv2(torch.tanh(self.conv1(img))))
        return self.fc(h.flatten(1))


@dataclass
class Heads:
    main: torch.Tensor
    aux: torch.Tensor


class DataclassOutput(nn.Module):
    """Returns a dataclass (opaque to pytree flattening); ``never`` is unused."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(D_IN, D_HID)
        self.main = nn.Linear(D_HID, D_OUT)
        self.aux = nn.Linear(D_HID, D_OUT)
        self.never = nn.Linear(D_HID, D_OUT)

    def forward(self, x: torch.Tensor) -> Heads:
        h = torch.tanh(self.body(x))
        return Heads(self.main(h), self.aux(h))


def dataclass_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rank: int) -> torch.Tensor:
    heads = model(x)
    return mse(heads.main, y) + 0.5 * mse(heads.aux, y)


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out - y) ** 2).mean()


# a loss takes (model, x, y, rank) and returns a scalar; it sees one rank's slice
Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]


def plain_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rank: int) -> torch.Tensor:
    return mse(model(x), y)


def unused_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rank: int) -> torch.Tensor:
    return mse(model(x, rank), y)


def main_head_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rank: int) -> torch.Tensor:
    main, _aux = model(x)
    return mse(main, y)


def two_forwards_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rank: int) -> torch.Tensor:
    half = x.shape[0] // 2
    return 0.5 * (mse(model(x[:half]), y[:half]) + mse(model(x[half:]), y[half:]))


@dataclass
class Case:
    model: Callable[[], nn.Module]
    loss: Loss = plain_loss
    kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 4
    micro: int = 1  # micro-batches per step; all but the last run under no_sync()
    torch_ok: bool = True  # whether torch DDP supports the case (else compare with the reference only)
    hook: Callable[[Any], Any] | None = None  # (ddp) -> None, registers a comm hook
    torch_hook: Callable[[Any], Any] | None = None


def batches(step: int, micro: int, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 * step + micro)
    return torch.randn(world * B, D_IN, generator=g), torch.randn(world * B, D_OUT, generator=g)


def fresh(case: Case) -> nn.Module:
    torch.manual_seed(0)
    return case.model()


def train_ddp(ddp: nn.Module, case: Case, rank: int, world: int) -> None:
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    for step in range(case.steps):
        opt.zero_grad(set_to_none=True)
        for m in range(case.micro):
            x, y = batches(step, m, world)
            xs, ys = x[rank * B : (rank + 1) * B], y[rank * B : (rank + 1) * B]
            if m < case.micro - 1:
                with ddp.no_sync():  # type: ignore[operator]
                    case.loss(ddp, xs, ys, rank).backward()
            else:
                case.loss(ddp, xs, ys, rank).backward()
        opt.step()


def train_reference(model: nn.Module, case: Case, world: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(case.steps):
        opt.zero_grad(set_to_none=True)
        for m in range(case.micro):
            x, y = batches(step, m, world)
            losses = [
                case.loss(model, x[r * B : (r + 1) * B], y[r * B : (r + 1) * B], r) for r in range(world)
            ]
            (sum(losses) / world).backward()
        opt.step()


def max_diff(a: nn.Module, b: nn.Module) -> float:
    diffs = [(p - q).abs().max().item() for p, q in zip(a.state_dict().values(), b.state_dict().values())]
    return max(diffs)


def clone(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def two_forwards_unused_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rank: int) -> torch.Tensor:
    half = x.shape[0] // 2
    return 0.5 * (mse(model(x[:half], rank), y[:half]) + mse(model(x[half:], rank), y[half:]))
