"""Per-sample gradients of a CNN with ``vmap(grad(...))`` and ``functional_call``.

The PyTorch 1.11 announcement's per-sample-gradients example: a small CNN on MNIST-shaped inputs. The
plain-PyTorch way runs one forward and backward pass per example; Loom computes every example's gradient
in one vectorized call: ``vmap(grad(loss), in_dims=(None, None, 0, 0))(params, buffers, data, targets)``.
Per-sample gradients are what differentially-private SGD clips and noises, so the example finishes with
one DP-SGD step built on them.

Check: the per-sample gradients equal the loop's (float64, tolerance 1e-10), and their mean equals the
ordinary minibatch gradient.

Run: ``python examples/per_sample_grads.py [--batch N] [--quick]``
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from loom.func import functional_call, grad, vmap


class SimpleCNN(nn.Module):
    def __init__(self, image: int = 28) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.fc1 = nn.Linear(16 * ((image - 4) // 2) ** 2, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(x), dim=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="small sizes (the test suite's run)")
    args = parser.parse_args()
    batch, image = (4, 12) if args.quick else (args.batch, 28)
    torch.manual_seed(0)
    model = SimpleCNN(image).double()
    data = torch.randn(batch, 1, image, image, dtype=torch.float64)
    targets = torch.randint(10, (batch,))
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss_of_one(params: dict, buffers: dict, sample: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prediction = functional_call(model, (params, buffers), (sample.unsqueeze(0),))
        return F.nll_loss(prediction, target.unsqueeze(0))

    per_sample_grads = vmap(grad(loss_of_one), in_dims=(None, None, 0, 0))
    per_sample = per_sample_grads(params, buffers, data, targets)  # the first call also warms up
    start = time.perf_counter()
    per_sample_grads(params, buffers, data, targets)
    vmap_s = time.perf_counter() - start

    # The plain-PyTorch way: one backward pass per example.
    start = time.perf_counter()
    loop: dict[str, list[torch.Tensor]] = {k: [] for k in params}
    for x, y in zip(data, targets):
        model.zero_grad()
        F.nll_loss(model(x.unsqueeze(0)), y.unsqueeze(0)).backward()
        for k, p in model.named_parameters():
            loop[k].append(p.grad.clone())  # type: ignore[union-attr]
    loop_s = time.perf_counter() - start

    ok = True
    for k in params:
        err = (per_sample[k] - torch.stack(loop[k])).abs().max().item()
        ok &= per_sample[k].shape == (batch, *params[k].shape) and err < 1e-10
        print(f"{k:>12}: per-sample grads {tuple(per_sample[k].shape)}, max |diff| vs loop {err:.1e}")
    print(f"vmap(grad): {vmap_s * 1e3:.1f} ms; loop of {batch} backward passes: {loop_s * 1e3:.1f} ms")

    model.zero_grad()
    F.nll_loss(model(data), targets).backward()
    mean_err = max((per_sample[k].mean(0) - p.grad).abs().max().item() for k, p in model.named_parameters())  # type: ignore[operator]
    print(f"mean of per-sample grads vs the minibatch gradient: max |diff| {mean_err:.1e}")
    ok &= mean_err < 1e-10

    # One DP-SGD step: clip each example's gradient to norm <= C, sum, add Gaussian noise, average.
    clip, noise_multiplier = 1.0, 1.1
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in per_sample.values()]).norm(dim=0)
    scale = (clip / (norms + 1e-12)).clamp(max=1.0)
    clipped = {k: g * scale.view(-1, *[1] * (g.dim() - 1)) for k, g in per_sample.items()}
    noisy = {
        k: (g.sum(0) + noise_multiplier * clip * torch.randn_like(g[0])) / batch for k, g in clipped.items()
    }
    clipped_norms = torch.stack([g.flatten(1).norm(dim=1) for g in clipped.values()]).norm(dim=0)
    ok &= bool((clipped_norms <= clip + 1e-9).all()) and all(
        noisy[k].shape == params[k].shape for k in params
    )
    print(f"DP-SGD step: per-sample norms {norms.min():.3f}..{norms.max():.3f} clipped to <= {clip}")
    print("check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
