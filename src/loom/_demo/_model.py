"""The demo's model and its DP-SGD step: per-sample gradients (loom.func), clipping, noise, DDP averaging."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from loom.func import functional_call, grad, vmap


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool and two linear layers, for 1 x 8 x 8 digits (about 37k weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        logits: torch.Tensor = self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))
        return logits


def per_sample_grads_fn(model: nn.Module) -> Any:
    """``(params, images, labels) -> {name: B x param shape}``: ``vmap(grad(loss), in_dims=(None, 0, 0))``."""

    def loss_of_one(
        params: dict[str, torch.Tensor], image: torch.Tensor, label: torch.Tensor
    ) -> torch.Tensor:
        logits = functional_call(model, params, (image.unsqueeze(0),))
        loss: torch.Tensor = F.cross_entropy(logits, label.unsqueeze(0))
        return loss

    return vmap(grad(loss_of_one), in_dims=(None, 0, 0))


def clip_factors(per_sample: dict[str, torch.Tensor], clip: float) -> torch.Tensor:
    """``min(1, C / ||g_i||)`` per example, from the norm of its gradient over every parameter."""
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in per_sample.values()]).norm(dim=0)
    factors: torch.Tensor = (clip / (norms + 1e-6)).clamp(max=1.0)
    return factors


# NOTE [DP-SGD under DDP: the reweighted loss goes through the wrapped module]
# DP-SGD needs each example's gradient clipped to norm C, summed, noised once per global batch and
# averaged. Loom's DDP averages what backward accumulates into ``.grad`` (its hooks fire during backward);
# writing a gradient into ``.grad`` by hand would bypass it, and we would be all-reducing ourselves while
# DDP only broadcast the initial weights. So each step:
#   1. per-sample gradients with loom.func (vmap(grad) over functional_call of the bare module) give each
#      example's norm and clip factor s_i = min(1, C / ||g_i||);
#   2. the loss sum_i s_i * loss_i / B_local (s_i constants) goes forward and backward through the DDP
#      wrapper: its gradient is exactly the clipped sum over this rank's examples / B_local, and DDP's
#      bucketed all-reduce averages it over the ranks: sum over the global batch / B_global;
#   3. Gaussian noise N(0, (sigma C)^2) / B_global is added to the averaged gradient, drawn from a
#      generator seeded alike on every rank: the noise is added once for the global batch (not once per
#      rank) and the replicas stay identical.
# The first step checks 2. against the clipped mean of the vmap gradients, all-reduced by hand.


def dp_sgd_step(
    ddp: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    per_sample_grads: Any,
    batch: tuple[torch.Tensor, torch.Tensor],
    *,
    clip: float,
    noise_multiplier: float,
    global_batch: int,
    noise_gen: torch.Generator,
    check: bool = False,
) -> tuple[float, float | None]:
    """One DP-SGD step; see NOTE [DP-SGD under DDP: the reweighted loss goes through the wrapped module].

    Returns the batch's mean (unweighted) loss and, when ``check``, the largest difference between DDP's
    averaged gradient and the all-reduced clipped mean of the per-sample gradients.
    """
    images, labels = batch
    params = {k: p.detach() for k, p in model.named_parameters()}
    per_sample = per_sample_grads(params, images, labels)
    scale = clip_factors(per_sample, clip)
    optimizer.zero_grad(set_to_none=True)
    losses = F.cross_entropy(ddp(images), labels, reduction="none")
    weighted: torch.Tensor = (losses * scale).sum() / len(labels)
    weighted.backward()  # type: ignore[no-untyped-call]
    diff = _check_against_vmap(model, per_sample, scale) if check else None
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=noise_gen, dtype=p.dtype)
            p.grad.add_(noise.to(p.device), alpha=noise_multiplier * clip / global_batch)  # type: ignore[union-attr]
    optimizer.step()
    return float(losses.detach().mean()), diff


def _check_against_vmap(model: nn.Module, per_sample: dict[str, torch.Tensor], scale: torch.Tensor) -> float:
    import torch.distributed as dist

    worst = 0.0
    for name, p in model.named_parameters():
        g = per_sample[name]
        expected = (g * scale.view(-1, *[1] * (g.dim() - 1))).mean(0)
        if dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(expected)
            expected /= dist.get_world_size()
        worst = max(worst, float((p.grad - expected).abs().max()))  # type: ignore[operator]
    return worst


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` classified as ``labels``."""
    model.eval()
    correct = int((model(images).argmax(1) == labels).sum())
    model.train()
    return correct / len(labels)
