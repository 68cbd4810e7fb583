"""Model ensembling: run several models of the same architecture as one vectorized model.

The PyTorch 1.11 announcement's ensembling example. ``stack_module_state`` stacks the parameters of N
models into tensors with a leading dimension of N; ``functional_call`` runs the architecture with given
parameters; ``vmap`` maps over the stacked models. Two variants: every model sees the same minibatch
(``in_dims=(0, 0, None)``), or each model gets its own minibatch (``in_dims=0``).

Check: both variants equal running the models one by one in a Python loop (the plain-PyTorch way),
within 1e-10 in float64; and the ensemble's gradient equals the models' own gradients.

Run: ``python examples/model_ensembling.py [--models N] [--quick]``
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch
from torch import nn

from loom.func import functional_call, grad, stack_module_state, vmap


def make_model(features: int, hidden: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes)).double()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="small sizes (the test suite's run)")
    args = parser.parse_args()
    n_models, batch = (3, 8) if args.quick else (args.models, args.batch)
    features, hidden, classes = 32, 64, 10
    torch.manual_seed(0)
    models = [make_model(features, hidden, classes) for _ in range(n_models)]
    params, buffers = stack_module_state(models)
    # A stateless copy of the architecture on the meta device: functional_call supplies the tensors.
    base = copy.deepcopy(models[0]).to("meta")

    def run(params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (params, buffers), (x,))

    ok = True
    x = torch.randn(batch, features, dtype=torch.float64)
    same = vmap(run, in_dims=(0, 0, None))(params, buffers, x)
    loop_same = torch.stack([m(x) for m in models]).detach()
    err = (same - loop_same).abs().max().item()
    ok &= same.shape == (n_models, batch, classes) and err < 1e-10
    print(f"same minibatch for all {n_models} models: {tuple(same.shape)}, max |diff| vs loop {err:.1e}")

    xs = torch.randn(n_models, batch, features, dtype=torch.float64)
    own = vmap(run)(params, buffers, xs)
    loop_own = torch.stack([m(xi) for m, xi in zip(models, xs)]).detach()
    err = (own - loop_own).abs().max().item()
    ok &= err < 1e-10
    print(f"one minibatch per model: {tuple(own.shape)}, max |diff| vs loop {err:.1e}")

    # Training an ensemble: the gradient of every model's loss, in one call.
    targets = torch.randint(classes, (n_models, batch))

    def loss(params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(run(params, buffers, x), y)

    grads = vmap(grad(loss))(params, buffers, xs, targets)
    worst = 0.0
    for i, m in enumerate(models):
        m.zero_grad()
        nn.functional.cross_entropy(m(xs[i]), targets[i]).backward()
        for k, p in m.named_parameters():
            worst = max(worst, (grads[k][i] - p.grad).abs().max().item())  # type: ignore[operator]
    ok &= worst < 1e-10
    print(f"ensemble gradients vs each model's backward(): max |diff| {worst:.1e}")
    print("check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
